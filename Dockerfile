# syntax=docker/dockerfile:1
# The afluente service images. Node 24 runs the TypeScript sources directly (type stripping), so an image holds
# sources and production dependencies; the one thing built is the web app (ui/dist), in a stage of its own. Both
# images also run the embedded transform and load engine (DuckDB, no JVM): a Python child process of the worker,
# for runs up to AFLUENTE_EMBEDDED_MAX_BYTES.
#
#   deps ────────────────┐          production node_modules (npm ci --omit=dev)
#   web ─────────────────┤          the web app served at /ui/, built by Vite: only ui/dist leaves the stage
#   base ───┬─ venv ─────┤          the embedded engine's venv: exactly spark/requirements-embedded.txt
#           └─ app ◄─────┘ ─┬─ local     docker compose only: app + what the local Spark step runner needs
#                           │            (pyspark, Java 17, the JDBC driver) and the demo
#                           └─ runtime   production (ECS Fargate): app alone. The LAST stage, so `docker build .`
#                                        builds it (the CDK app names it too: target 'runtime'); it never needs
#                                        the local stage.
#
# One base image for every stage, pinned by tag to Node 24 and to Debian 12: the images use Debian's python3 (3.11,
# which duckdb and psycopg ship wheels for, and in pyspark 3.5's supported range), the local stage needs Debian's
# openjdk-17 (Spark 3.5, like EMR 7, runs on Java 17; Debian 13 ships no JDK 17), and production runs on the very
# image layers the compose stack exercises.
#
# What runtime holds for the embedded engine, and nothing more: Debian's python3 alone (python3-venv stays in the
# venv stage), the venv /app/.venv with the pinned packages and their dependencies (AFLUENTE_EMBEDDED_VENV; the
# venv's own pip and setuptools come along, local uses them), the plain-Python packages
# spark/afluente_spark and spark/afluente_embedded (AFLUENTE_SPARK_SCRIPTS is their PYTHONPATH), and a folder
# the node user may write for the engine's logs, its staging of an s3:// lake and DuckDB's spill
# (AFLUENTE_SPARK_TEMP_DIR). No pyspark, no Java, no Spark mains or tests: on AWS the big runs go to EMR.
# test/integration/production-start.test.ts follows this file by hand (there is no Docker engine in CI).

# deps: the production dependencies, installed from the lockfile in a stage of their own so the npm cache and
# package.json churn never reach the final images. devDependencies (TypeScript, vitest, the CDK, the `node`
# binary package) stay out.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# web: the web app (ui/), built with the full dependencies (Vite, Preact) from the lockfile; the images get its
# output, ui/dist, and none of those packages. --ignore-scripts: the build needs no install script (the `node`
# package's would download a second Node), so Vite runs on the image's own node rather than through npm run.
FROM node:24-bookworm-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY ui ./ui
RUN node node_modules/vite/bin/vite.js build ui

# base: the Node base image with Debian's python3 (the interpreter and its standard library only). The venv
# stage builds on this same layer, so the venv's python (a link to /usr/bin/python3) is the one app runs.
# ca-certificates: the embedded load verifies Redshift's certificate against the system's CAs (sslrootcert=system).
FROM node:24-bookworm-slim AS base
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# venv: the embedded engine's packages, exactly spark/requirements-embedded.txt (duckdb, psycopg with its bundled
# libpq; all binary wheels, nothing compiled), in a stage of its own so python3-venv and the requirements file
# stay out of the final images. No pip cache.
FROM base AS venv
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY spark/requirements-embedded.txt /tmp/requirements-embedded.txt
RUN python3 -m venv /app/.venv \
 && /app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements-embedded.txt

# app: what both images run: production node_modules, the service's sources and its command line, and the
# embedded engine. Files stay owned by root, so the `node` user the images run as can read the code but not
# change it.
FROM base AS app
ENV NODE_ENV=production \
    AFLUENTE_HOST=0.0.0.0 \
    AFLUENTE_PORT=8080
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=venv /app/.venv ./.venv
COPY --from=web /app/ui/dist ./ui/dist
COPY package.json ./
COPY contract ./contract
COPY lib ./lib
COPY service ./service
# The local Lambda invoker runs the handlers from here (docker compose); on AWS they run as Lambdas.
COPY lambdas ./lambdas
COPY config ./config
# The embedded engine's code: afluente_embedded, and the plain-Python spec, SQL and errors modules of
# afluente_spark it imports (the package's Spark modules come along unused: pyspark is not installed).
COPY spark/afluente_spark ./spark/afluente_spark
COPY spark/afluente_embedded ./spark/afluente_embedded
# The `afluente` command line (package.json "bin"), on PATH for `docker exec -e AFLUENTE_TOKEN=… <container>
# afluente runs`: it talks to the API on 127.0.0.1:8080. A root-owned link, not npx: npx chmods a project's own
# bin, which only the file's owner may do, and the code stays root's.
COPY cli ./cli
RUN ln -s /app/cli/afluente.mjs /usr/local/bin/afluente
# The engines' logs, their staging of an s3:// lake, and DuckDB's spill go under AFLUENTE_SPARK_TEMP_DIR: the
# only folder the node user writes. On ECS it lives on the task's ephemeral storage (sized by the CDK app);
# compose mounts a volume here, which starts out with this folder's owner.
RUN mkdir -p /var/lib/afluente/spark && chown node:node /var/lib/afluente/spark
ENV AFLUENTE_EMBEDDED_VENV=/app/.venv \
    AFLUENTE_SPARK_SCRIPTS=/app/spark \
    AFLUENTE_SPARK_TEMP_DIR=/var/lib/afluente/spark

# local: the image docker compose runs (`target: local`). The service runs the transform and load stages itself
# here (AFLUENTE_STEP_RUNNER=local): a run that fits goes to the embedded engine (app's), a bigger one to
# spark-submit with pyspark (added to the same venv), a Java 17 runtime, and PostgreSQL's JDBC driver for the
# load into the warehouse. The same image serves the demo source API and runs the one-shot demo trigger, so it
# also holds demo/ and scripts/compose-demo.ts. Never deployed.
FROM app AS local
USER root
# The man folder: the JRE's postinst registers man pages there, and slim images drop it.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java \
 && rm -rf /var/lib/apt/lists/*
# pyspark at the version requirements.txt pins (the same Spark the tests run), and nothing else from that file:
# the rest is test tooling (and the embedded engine's packages, already in the venv).
COPY requirements.txt /tmp/requirements.txt
RUN grep -E '^pyspark==' /tmp/requirements.txt > /tmp/pyspark.txt \
 && /app/.venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/pyspark.txt \
 && rm /tmp/requirements.txt /tmp/pyspark.txt
# The Spark mains (split_tables.py, load_warehouse.py) next to the packages app already holds.
COPY spark ./spark
COPY demo ./demo
COPY scripts/compose-demo.ts ./scripts/compose-demo.ts
ENV AFLUENTE_SPARK_VENV=/app/.venv \
    AFLUENTE_SPARK_JARS=/usr/share/java/postgresql.jar
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AFLUENTE_PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "service/main.ts"]

# runtime: the production image (ECS Fargate): app as it is, with no Java, pyspark, Spark mains or demo/ (on AWS
# the runs too big for the embedded engine run on EMR). Keep it the last stage.
FROM app AS runtime
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.AFLUENTE_PORT||8080)+'/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# Exec form: node runs as PID 1, so SIGTERM reaches it directly and the workers drain. (The worker's ECS task puts
# an init process in front, as compose does with `init: true`: it forwards the signal, and reaps the engine's
# orphaned processes.)
ENTRYPOINT ["node", "service/main.ts"]
