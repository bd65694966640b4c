# syntax=docker/dockerfile:1
# The afluente service images. Node 24 runs the TypeScript sources directly (type stripping), so an image holds
# sources and production dependencies, nothing built.
#
#   deps → app ─┬─ local     docker compose only: app + what the local Spark step runner needs, and the demo
#               └─ runtime   production (ECS Fargate): app alone. The LAST stage, so `docker build .` builds it
#                            (the CDK app names it too: target 'runtime'); it never needs the local stage.
#
# One base image for every stage, pinned by tag to Node 24 and to Debian 12: the local stage needs Debian's
# openjdk-17 (Spark 3.5, like EMR 7, runs on Java 17; Debian 13 ships no JDK 17) and Python 3.11 (in pyspark
# 3.5's supported range), and production runs on the very image layers the compose stack exercises.

# deps: the production dependencies, installed from the lockfile in a stage of their own so the npm cache and
# package.json churn never reach the final images. devDependencies (TypeScript, vitest, the CDK, the `node`
# binary package) stay out.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# app: what both images run: production node_modules, the service's sources and its command line. Files stay
# owned by root, so the `node` user the images run as can read the code but not change it.
FROM node:24-bookworm-slim AS app
ENV NODE_ENV=production \
    AFLUENTE_HOST=0.0.0.0 \
    AFLUENTE_PORT=8080
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY contract ./contract
COPY lib ./lib
COPY service ./service
# The local Lambda invoker runs the handlers from here (docker compose); on AWS they run as Lambdas.
COPY lambdas ./lambdas
COPY config ./config
# The `afluente` command line (package.json "bin"), on PATH for `docker exec -e AFLUENTE_TOKEN=… <container>
# afluente runs`: it talks to the API on 127.0.0.1:8080. A root-owned link, not npx: npx chmods a project's own
# bin, which only the file's owner may do, and the code stays root's.
COPY cli ./cli
RUN ln -s /app/cli/afluente.mjs /usr/local/bin/afluente

# local: the image docker compose runs (`target: local`). The service runs the transform and load stages itself
# here (AFLUENTE_STEP_RUNNER=local): spark-submit from a venv holding only pyspark, a Java 17 runtime, and
# PostgreSQL's JDBC driver for the load into the warehouse. The same image serves the demo source API and runs
# the one-shot demo trigger, so it also holds demo/ and scripts/compose-demo.ts. Never deployed.
FROM app AS local
USER root
# The man folder: the JRE's postinst registers man pages there, and slim images drop it.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv openjdk-17-jre-headless libpostgresql-jdbc-java \
 && rm -rf /var/lib/apt/lists/*
# pyspark at the version requirements.txt pins (the same Spark the tests run), and nothing else from that file:
# the rest is test tooling.
COPY requirements.txt /tmp/requirements.txt
RUN grep -E '^pyspark==' /tmp/requirements.txt > /tmp/pyspark.txt \
 && python3 -m venv /app/.venv \
 && /app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/pyspark.txt \
 && rm /tmp/requirements.txt /tmp/pyspark.txt
COPY spark ./spark
COPY demo ./demo
COPY scripts/compose-demo.ts ./scripts/compose-demo.ts
# Local steps log and stage an s3:// lake under AFLUENTE_SPARK_TEMP_DIR; compose mounts a volume here, which
# starts out with this folder's owner.
RUN mkdir -p /var/lib/afluente/spark && chown node:node /var/lib/afluente/spark
ENV AFLUENTE_SPARK_VENV=/app/.venv \
    AFLUENTE_SPARK_SCRIPTS=/app/spark \
    AFLUENTE_SPARK_JARS=/usr/share/java/postgresql.jar \
    AFLUENTE_SPARK_TEMP_DIR=/var/lib/afluente/spark
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AFLUENTE_PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "service/main.ts"]

# runtime: the production image (ECS Fargate): app as it is, with no Python, Java, spark/ or demo/ (on AWS the
# Spark steps run on EMR). Keep it the last stage.
FROM app AS runtime
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AFLUENTE_PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# Exec form: node runs as PID 1, so SIGTERM reaches it directly and the workers drain.
ENTRYPOINT ["node", "service/main.ts"]
