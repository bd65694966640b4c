import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactUrl } from '../../service/config/env.ts';

const TOKENS = { AFLUENTE_API_TOKENS: 'ops=0123456789abcdef0123' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected loadConfig to throw');
}

describe('config from AFLUENTE_* variables', () => {
  it('defaults to the local services on this machine', () => {
    const config = loadConfig(TOKENS);
    expect(config.mysql.url).toBe('mysql://root@127.0.0.1:3306/afluente');
    expect(config.redis.url).toBe('redis://127.0.0.1:6379');
    expect(config.http.port).toBe(8080);
    expect(config.lake.uri).toBe('file://./.data/lake');
    expect(config.sourcesFile).toBe('config/sources.yaml');
    expect([...config.roles]).toEqual(['api', 'scheduler', 'worker']);
    expect(config.auth.tokens).toEqual([{ label: 'ops', token: '0123456789abcdef0123' }]);
  });

  it('keeps the MySQL and Redis passwords out of their URLs, and TLS for RDS on request', () => {
    const config = loadConfig({
      ...TOKENS,
      AFLUENTE_MYSQL_URL: 'mysql://afluente@db.internal:3307/afluente',
      AFLUENTE_MYSQL_PASSWORD: 'p@ss:word/1',
      AFLUENTE_MYSQL_TLS: 'rds',
      AFLUENTE_REDIS_URL: 'rediss://cache.internal:6380',
      AFLUENTE_REDIS_PASSWORD: 'auth-token',
    });
    expect(config.mysql).toEqual({
      url: 'mysql://afluente@db.internal:3307/afluente',
      password: 'p@ss:word/1',
      tls: 'rds',
    });
    expect(config.redis).toEqual({ url: 'rediss://cache.internal:6380', password: 'auth-token' });
    expect(loadConfig(TOKENS).mysql).toEqual({ url: 'mysql://root@127.0.0.1:3306/afluente', tls: 'off' });
  });

  it('refuses a password in both the URL and its variable without echoing either', () => {
    const problems = problemsOf({
      ...TOKENS,
      AFLUENTE_MYSQL_URL: 'mysql://afluente:inurl-secret@db:3306/afluente',
      AFLUENTE_MYSQL_PASSWORD: 'var-secret',
      AFLUENTE_REDIS_URL: 'redis://:inurl-secret@cache:6379',
      AFLUENTE_REDIS_PASSWORD: 'var-secret',
      AFLUENTE_MYSQL_TLS: 'yes',
    });
    expect(problems).toEqual([
      `AFLUENTE_MYSQL_TLS must be off, or rds (TLS verified against Amazon RDS's certificate authorities) (got "yes")`,
    ]);
    const both = problemsOf({
      ...TOKENS,
      AFLUENTE_MYSQL_URL: 'mysql://afluente:inurl-secret@db:3306/afluente',
      AFLUENTE_MYSQL_PASSWORD: 'var-secret',
      AFLUENTE_REDIS_URL: 'redis://:inurl-secret@cache:6379',
      AFLUENTE_REDIS_PASSWORD: 'var-secret',
    });
    expect(both).toEqual([
      'AFLUENTE_MYSQL_URL holds a password and AFLUENTE_MYSQL_PASSWORD is set too: keep only AFLUENTE_MYSQL_PASSWORD',
      'AFLUENTE_REDIS_URL holds a password and AFLUENTE_REDIS_PASSWORD is set too: keep only AFLUENTE_REDIS_PASSWORD',
    ]);
    expect(both.join('\n')).not.toMatch(/secret/);
  });

  it('coerces and groups typed values', () => {
    const config = loadConfig({
      ...TOKENS,
      AFLUENTE_PORT: '9090',
      AFLUENTE_TRUST_PROXY: 'true',
      AFLUENTE_ROLES: 'worker',
    });
    expect(config.http.port).toBe(9090);
    expect(config.http.trustProxy).toBe(true);
    expect([...config.roles]).toEqual(['worker']);
  });

  it('names the variable, what it expects, and what it got', () => {
    const problems = problemsOf({ ...TOKENS, AFLUENTE_PORT: 'eighty' });
    expect(problems).toEqual(['AFLUENTE_PORT must be a TCP port from 1 to 65535 (got "eighty")']);
  });

  it('reports every bad variable at once', () => {
    const problems = problemsOf({
      ...TOKENS,
      AFLUENTE_MYSQL_URL: 'postgres://x/y',
      AFLUENTE_ROLES: 'api,cook',
      AFLUENTE_LOG_LEVEL: 'loud',
    });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toContain('AFLUENTE_MYSQL_URL must be a URL like mysql://');
    expect(problems.join('\n')).toContain(
      'AFLUENTE_ROLES must be a comma-separated subset of api, scheduler, worker (got "api,cook")',
    );
    expect(problems.join('\n')).toContain(
      'AFLUENTE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent',
    );
  });

  it('rejects an unknown AFLUENTE_ variable, so a typo is not silently ignored', () => {
    expect(problemsOf({ ...TOKENS, AFLUENTE_PROT: '1' })).toEqual([
      'AFLUENTE_PROT is not a known setting (check the spelling; see README "Configuration")',
    ]);
  });

  it('leaves the CLI’s own AFLUENTE_URL and AFLUENTE_TOKEN alone, set in the same shell, but not a typo of them', () => {
    const cli = { AFLUENTE_URL: 'http://127.0.0.1:8080', AFLUENTE_TOKEN: 'test-token-0123456789abcdef' };
    expect(loadConfig({ ...TOKENS, ...cli }).auth.tokens).toHaveLength(1);
    expect(problemsOf({ ...TOKENS, ...cli, AFLUENTE_TOKENS: 'x', AFLUENTE_URLS: 'y' })).toEqual([
      'AFLUENTE_TOKENS is not a known setting (check the spelling; see README "Configuration")',
      'AFLUENTE_URLS is not a known setting (check the spelling; see README "Configuration")',
    ]);
  });

  it('requires API tokens: auth is always on', () => {
    const [problem] = problemsOf({});
    expect(problem).toMatch(/^AFLUENTE_API_TOKENS must be set/);
  });

  it('rejects a short token without echoing it', () => {
    const problems = problemsOf({ AFLUENTE_API_TOKENS: 'ops=short-secret' });
    expect(problems).toEqual(['AFLUENTE_API_TOKENS entry 1 (ops) must be at least 16 characters long']);
    expect(problems.join()).not.toContain('short-secret');
  });

  it('lets tools that never serve the API run without tokens', () => {
    expect(loadConfig({}, { requireTokens: false }).auth.tokens).toEqual([]);
  });

  it('redacts passwords from URLs it logs', () => {
    expect(redactUrl('mysql://app:s3cret@db:3306/afluente')).toBe('mysql://app:***@db:3306/afluente');
  });

  it('picks the Lambda invoker: local by default, aws with its functions and events queue', () => {
    expect(loadConfig(TOKENS).lambda.invoker).toBe('local');
    const aws = loadConfig({
      ...TOKENS,
      AFLUENTE_LAMBDA_INVOKER: 'aws',
      AFLUENTE_LAMBDA_FUNCTIONS:
        'ingest=afluente-ingest,validate=arn:aws:lambda:eu-west-1:123456789012:function:afluente-validate',
      AFLUENTE_EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/afluente-events',
    });
    expect(aws.lambda).toMatchObject({
      invoker: 'aws',
      functions: {
        ingest: 'afluente-ingest',
        validate: 'arn:aws:lambda:eu-west-1:123456789012:function:afluente-validate',
      },
      eventsQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/afluente-events',
    });
    expect(
      problemsOf({ ...TOKENS, AFLUENTE_LAMBDA_INVOKER: 'aws', AFLUENTE_LAMBDA_FUNCTIONS: 'ingest=f' }),
    ).toEqual([
      'AFLUENTE_LAMBDA_FUNCTIONS must name the validate function when AFLUENTE_LAMBDA_INVOKER=aws (e.g. validate=afluente-validate)',
      'AFLUENTE_EVENTS_QUEUE_URL must be set when AFLUENTE_LAMBDA_INVOKER=aws',
    ]);
  });
});

describe('config of the warehouse and the Spark steps', () => {
  const EMR = {
    ...TOKENS,
    AFLUENTE_STEP_RUNNER: 'emr',
    AFLUENTE_LAKE_URI: 's3://lake-bucket/lake',
    AFLUENTE_EMR_SCRIPTS_URI: 's3://code-bucket/spark/',
  };

  it('defaults to local Spark from .venv and the local PostgreSQL as the warehouse', () => {
    const config = loadConfig(TOKENS);
    expect(config.steps.runner).toBe('local');
    expect(config.steps.spark).toMatchObject({
      venv: resolve('.venv'),
      scripts: resolve('spark'),
      master: 'local[*]',
      driverMemory: '4g',
      jars: '/usr/share/java/postgresql.jar',
      tempDir: resolve(tmpdir()),
    });
    expect(config.steps.emr).toEqual({
      releaseLabel: 'emr-7.5.0',
      instanceType: 'm5.xlarge',
      instanceCount: 3,
      pollMs: 15_000,
      idleTimeoutS: 3600,
    });
    expect(config.warehouse).toEqual({
      url: 'postgres://postgres@127.0.0.1:5432/afluente',
      dialect: 'postgres',
      jdbcUrl: 'jdbc:postgresql://127.0.0.1:5432/afluente',
      user: 'postgres',
      schema: 'public',
      copyRoleArn: null,
    });
  });

  it('gives Redshift an IAM JDBC URL and its COPY role, and keeps the password out of every URL', () => {
    const config = loadConfig({
      ...TOKENS,
      AFLUENTE_WAREHOUSE_URL: 'redshift://loader@wh.abc123.eu-west-1.redshift.amazonaws.com/analytics',
      AFLUENTE_WAREHOUSE_SCHEMA: 'lake_loads',
      AFLUENTE_WAREHOUSE_COPY_ROLE_ARN: 'arn:aws:iam::123456789012:role/afluente-copy',
    });
    expect(config.warehouse).toMatchObject({
      dialect: 'redshift',
      jdbcUrl: 'jdbc:redshift:iam://wh.abc123.eu-west-1.redshift.amazonaws.com:5439/analytics',
      user: 'loader',
      schema: 'lake_loads',
      copyRoleArn: 'arn:aws:iam::123456789012:role/afluente-copy',
    });
    const local = loadConfig({ ...TOKENS, AFLUENTE_WAREHOUSE_PASSWORD: 'pg-s3cret' });
    expect(local.warehouse.password).toBe('pg-s3cret');
    expect(local.warehouse.jdbcUrl).not.toContain('s3cret');
  });

  it('refuses a password in the warehouse URL without echoing it, and points to AFLUENTE_WAREHOUSE_PASSWORD', () => {
    const problems = problemsOf({
      ...TOKENS,
      AFLUENTE_WAREHOUSE_URL: 'postgres://app:hunter22@db:5432/afluente',
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(
      /^AFLUENTE_WAREHOUSE_URL must not hold a password: set it in AFLUENTE_WAREHOUSE_PASSWORD/,
    );
    expect(problems.join()).not.toContain('hunter22');
  });

  it('requires the COPY role for Redshift, and checks the schema name and the warehouse URL', () => {
    const problems = problemsOf({
      ...TOKENS,
      AFLUENTE_WAREHOUSE_URL: 'redshift://wh.example.com:5439/',
      AFLUENTE_WAREHOUSE_SCHEMA: 'drop table;',
    });
    expect(problems).toEqual([
      'AFLUENTE_WAREHOUSE_SCHEMA must be a schema name: a letter or _, then letters, digits or _ (at most 63) (got "drop table;")',
    ]);
    expect(problemsOf({ ...TOKENS, AFLUENTE_WAREHOUSE_URL: 'redshift://wh.example.com:5439/' })).toEqual([
      'AFLUENTE_WAREHOUSE_URL must name a host and a database, like redshift://user@host:5439/afluente',
      'AFLUENTE_WAREHOUSE_COPY_ROLE_ARN must be set when AFLUENTE_WAREHOUSE_URL is redshift://: it is the role Redshift COPY assumes to read the curated Parquet from S3',
    ]);
  });

  it('names each bad Spark or EMR setting and what it expects', () => {
    const problems = problemsOf({
      ...TOKENS,
      AFLUENTE_STEP_RUNNER: 'yarn',
      AFLUENTE_SPARK_DRIVER_MEMORY: 'lots',
      AFLUENTE_EMR_INSTANCE_COUNT: '0',
      AFLUENTE_EMR_IDLE_TIMEOUT_S: '30',
    });
    expect(problems).toEqual([
      'AFLUENTE_STEP_RUNNER must be local (spark-submit from the venv, Spark in local mode) or emr (steps on an EMR cluster) (got "yarn")',
      'AFLUENTE_SPARK_DRIVER_MEMORY must be a JVM memory size such as 4g or 512m (got "lots")',
      'AFLUENTE_EMR_INSTANCE_COUNT must be instances in a transient cluster (one primary, the rest core), from 1 to 256 (got "0")',
      'AFLUENTE_EMR_IDLE_TIMEOUT_S must be seconds a transient cluster may sit idle before it terminates itself, from 60 to 604800 (got "30")',
    ]);
  });

  it('configures the embedded engine: 2 GiB for auto, the project venv, 512MB and every core by default', () => {
    expect(loadConfig(TOKENS).steps.embedded).toEqual({
      maxBytes: 2_147_483_648,
      venv: resolve('.venv'),
      memoryLimit: '512MB',
      threads: 0,
    });
    const set = loadConfig({
      ...TOKENS,
      AFLUENTE_EMBEDDED_MAX_BYTES: '0',
      AFLUENTE_EMBEDDED_VENV: '/opt/afluente/embedded',
      AFLUENTE_EMBEDDED_MEMORY_LIMIT: '1.5GiB',
      AFLUENTE_EMBEDDED_THREADS: '2',
    });
    expect(set.steps.embedded).toEqual({
      maxBytes: 0,
      venv: '/opt/afluente/embedded',
      memoryLimit: '1.5GiB',
      threads: 2,
    });
    // With EMR for Spark, the embedded engine still runs in the worker.
    expect(loadConfig({ ...EMR, AFLUENTE_EMR_CLUSTER_ID: 'j-2AXXXXXXGAPLF' }).steps.embedded.venv).toBe(
      resolve('.venv'),
    );
    expect(
      problemsOf({
        ...TOKENS,
        AFLUENTE_EMBEDDED_MAX_BYTES: '-1',
        AFLUENTE_EMBEDDED_MEMORY_LIMIT: 'lots',
        AFLUENTE_EMBEDDED_THREADS: '2000',
      }),
    ).toEqual([
      'AFLUENTE_EMBEDDED_MAX_BYTES must be validated bytes up to which engine auto runs a run\'s transform and load embedded (DuckDB) instead of on Spark, at least 0 (got "-1")',
      'AFLUENTE_EMBEDDED_MEMORY_LIMIT must be a DuckDB memory limit such as 512MB, 4GB or 1.5GiB (one embedded step\'s memory_limit) (got "lots")',
      'AFLUENTE_EMBEDDED_THREADS must be DuckDB threads per embedded step, from 0 (every core) to 1024 (got "2000")',
    ]);
  });

  it('with the emr runner, requires an s3:// lake, the scripts URI, and what a transient cluster needs', () => {
    expect(problemsOf({ ...TOKENS, AFLUENTE_STEP_RUNNER: 'emr' })).toEqual([
      'AFLUENTE_LAKE_URI must be an s3:// lake when AFLUENTE_STEP_RUNNER=emr: the steps read and write it from the cluster',
      'AFLUENTE_EMR_SCRIPTS_URI must be set when AFLUENTE_STEP_RUNNER=emr: an s3:// URI holding split_tables.py, load_warehouse.py and afluente_spark.zip',
      'AFLUENTE_EMR_SERVICE_ROLE must name the EMR service role when AFLUENTE_STEP_RUNNER=emr and no AFLUENTE_EMR_CLUSTER_ID is set (each run starts its own cluster)',
      "AFLUENTE_EMR_JOB_FLOW_ROLE must name the instance profile of the cluster's EC2 instances when AFLUENTE_STEP_RUNNER=emr and no AFLUENTE_EMR_CLUSTER_ID is set (each run starts its own cluster)",
      "AFLUENTE_EMR_LOG_URI must be an s3:// URI for the cluster's logs when AFLUENTE_STEP_RUNNER=emr and no AFLUENTE_EMR_CLUSTER_ID is set (each run starts its own cluster)",
    ]);
    // A fixed cluster needs no roles: it already has them.
    const fixed = loadConfig({ ...EMR, AFLUENTE_EMR_CLUSTER_ID: 'j-2AXXXXXXGAPLF' });
    expect(fixed.steps.emr).toMatchObject({
      clusterId: 'j-2AXXXXXXGAPLF',
      scriptsUri: 's3://code-bucket/spark',
    });
    const transient = loadConfig({
      ...EMR,
      AFLUENTE_EMR_SERVICE_ROLE: 'EMR_DefaultRole',
      AFLUENTE_EMR_JOB_FLOW_ROLE: 'EMR_EC2_DefaultRole',
      AFLUENTE_EMR_LOG_URI: 's3://logs-bucket/emr/',
      AFLUENTE_EMR_POLL_MS: '200',
    });
    expect(transient.steps).toMatchObject({
      runner: 'emr',
      emr: {
        serviceRole: 'EMR_DefaultRole',
        jobFlowRole: 'EMR_EC2_DefaultRole',
        logUri: 's3://logs-bucket/emr',
        pollMs: 200,
      },
    });
    expect(problemsOf({ ...EMR, AFLUENTE_EMR_CLUSTER_ID: 'cluster-1' })).toEqual([
      'AFLUENTE_EMR_CLUSTER_ID must be empty (a transient cluster per run), or the id of a running EMR cluster to run every step on, e.g. j-2AXXXXXXGAPLF (got "cluster-1")',
    ]);
  });
});
