# syntax=docker/dockerfile:1
# The afluente service image for ECS Fargate. Node 24 runs the TypeScript sources directly (type stripping),
# so the image holds the sources and production dependencies only.

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; dev tools (TypeScript, vitest, the `node` binary package) stay out.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    AFLUENTE_HOST=0.0.0.0 \
    AFLUENTE_PORT=8080
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --chown=node:node package.json ./
COPY --chown=node:node contract ./contract
COPY --chown=node:node lib ./lib
COPY --chown=node:node service ./service
# The local Lambda invoker runs the handlers from here (docker compose); on AWS they run as Lambdas.
COPY --chown=node:node lambdas ./lambdas
COPY --chown=node:node config ./config
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AFLUENTE_PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# Exec form: node runs as PID 1, so SIGTERM reaches it directly and the workers drain.
ENTRYPOINT ["node", "service/main.ts"]
