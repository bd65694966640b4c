import { Ajv, type ErrorObject } from 'ajv';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { Type, type Static } from 'typebox';
import { CLI_ENV } from '../../contract/cli-env.ts';
import type { IngestLimits } from '../../contract/ingest.ts';
import type { WarehouseDialect } from '../../contract/steps.ts';

/** The roles one process can play; `AFLUENTE_ROLES` picks a subset so ECS can split them. */
export const ROLES = ['api', 'scheduler', 'worker'] as const;
export type Role = (typeof ROLES)[number];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

// Each variable's `description` is what the boot error prints as "expected", so it is written for an operator.
const EnvSchema = Type.Object({
  AFLUENTE_HOST: Type.String({
    default: '127.0.0.1',
    minLength: 1,
    description: 'an interface address to bind, e.g. 0.0.0.0',
  }),
  AFLUENTE_PORT: Type.Integer({
    default: 8080,
    minimum: 1,
    maximum: 65535,
    description: 'a TCP port from 1 to 65535',
  }),
  AFLUENTE_MYSQL_URL: Type.String({
    default: 'mysql://root@127.0.0.1:3306/afluente',
    pattern: '^mysql://[^/]+/[A-Za-z0-9_]+$',
    description: 'a URL like mysql://user@host:3306/database (put the password in AFLUENTE_MYSQL_PASSWORD)',
  }),
  AFLUENTE_MYSQL_PASSWORD: Type.String({
    default: '',
    // A secret (an ECS secret on AWS): never echoed in a boot error, never logged.
    description: 'the MySQL password, if the URL holds none',
  }),
  AFLUENTE_MYSQL_TLS: Type.Enum(['off', 'rds'], {
    default: 'off',
    description: "off, or rds (TLS verified against Amazon RDS's certificate authorities)",
  }),
  AFLUENTE_REDIS_URL: Type.String({
    default: 'redis://127.0.0.1:6379',
    pattern: '^rediss?://',
    description: 'a URL like redis://host:6379 or rediss://host:6379 for TLS',
  }),
  AFLUENTE_REDIS_PASSWORD: Type.String({
    default: '',
    // A secret (the ElastiCache AUTH token on AWS): never echoed in a boot error, never logged.
    description: 'the Redis AUTH password, if the URL holds none',
  }),
  AFLUENTE_WAREHOUSE_URL: Type.String({
    default: 'postgres://postgres@127.0.0.1:5432/afluente',
    pattern: '^(postgres|postgresql|redshift)://',
    description: 'a URL like postgres://user@host:5432/database (Redshift: redshift://host:5439/db)',
  }),
  AFLUENTE_WAREHOUSE_SCHEMA: Type.String({
    default: 'public',
    pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$',
    description: 'a schema name: a letter or _, then letters, digits or _ (at most 63)',
  }),
  AFLUENTE_WAREHOUSE_PASSWORD: Type.String({
    default: '',
    // A secret: the boot error must never print it, and nothing in the schema can make it fail.
    description: 'the warehouse password, if it needs one',
  }),
  AFLUENTE_WAREHOUSE_COPY_ROLE_ARN: Type.String({
    default: '',
    pattern: '^(arn:aws[a-z-]*:iam::[0-9]{12}:role/.+)?$',
    description:
      'empty, or the ARN of the IAM role Redshift COPY assumes to read the lake, e.g. arn:aws:iam::123456789012:role/afluente-copy',
  }),
  AFLUENTE_LAKE_URI: Type.String({
    default: 'file://./.data/lake',
    pattern: '^(file|s3)://.+',
    description: 'a lake root like file://./.data/lake or s3://bucket/prefix',
  }),
  AFLUENTE_S3_ENDPOINT: Type.String({
    default: '',
    pattern: '^(https?://.+)?$',
    description: 'empty, or the URL of an S3-compatible server (MinIO, moto) for an s3:// lake',
  }),
  AFLUENTE_LAMBDA_INVOKER: Type.Enum(['local', 'aws'], {
    default: 'local',
    description:
      'local (each Lambda runs in a child process of the service) or aws (Lambda Invoke, results over SQS)',
  }),
  AFLUENTE_LAMBDA_FUNCTIONS: Type.String({
    default: '',
    pattern: '^(((ingest|validate)=[A-Za-z0-9:_./$-]+)(,(ingest|validate)=[A-Za-z0-9:_./$-]+)*)?$',
    description: 'with the aws invoker: ingest=<function name or ARN>,validate=<function name or ARN>',
  }),
  AFLUENTE_EVENTS_QUEUE_URL: Type.String({
    default: '',
    pattern: '^(https?://.+)?$',
    description: 'with the aws invoker: the URL of the SQS queue the Lambda destinations deliver results to',
  }),
  AFLUENTE_AWS_ENDPOINT: Type.String({
    default: '',
    pattern: '^(https?://.+)?$',
    description: 'empty, or one endpoint for Lambda, SQS and EMR (an emulator such as moto)',
  }),
  AFLUENTE_LAMBDA_MEMORY_MB: Type.Integer({
    default: 512,
    minimum: 128,
    maximum: 10240,
    description: 'megabytes of memory per Lambda invocation, from 128 to 10240 (locally it caps the V8 heap)',
  }),
  AFLUENTE_VALIDATE_CONCURRENCY: Type.Integer({
    default: 4,
    minimum: 1,
    maximum: 256,
    description: 'validate invocations run at once per stage, from 1 to 256',
  }),
  AFLUENTE_VALIDATE_PARTS_PER_GROUP: Type.Integer({
    default: 2,
    minimum: 1,
    description: 'raw parts one validate invocation handles, at least 1',
  }),
  AFLUENTE_INGEST_TIME_LIMIT_MS: Type.Integer({
    default: 900_000,
    minimum: 1,
    description: 'milliseconds one ingest invocation may run before it hands over (Lambda: 900000)',
  }),
  AFLUENTE_INGEST_SAFETY_MARGIN_MS: Type.Integer({
    default: 60_000,
    minimum: 0,
    description: 'milliseconds left unused at the end of an ingest invocation',
  }),
  AFLUENTE_INGEST_PART_MAX_RECORDS: Type.Integer({
    default: 100_000,
    minimum: 1,
    description: 'records per raw part, at least 1',
  }),
  AFLUENTE_INGEST_PART_MAX_BYTES: Type.Integer({
    default: 67_108_864,
    minimum: 1024,
    description: 'uncompressed bytes per raw part, at least 1024',
  }),
  AFLUENTE_INGEST_MAX_RESPONSE_BYTES: Type.Integer({
    default: 33_554_432,
    minimum: 1024,
    description: 'the largest page body accepted, in bytes, at least 1024',
  }),
  AFLUENTE_INGEST_MAX_RETRIES: Type.Integer({
    default: 5,
    minimum: 0,
    maximum: 20,
    description: 'an integer from 0 to 20',
  }),
  AFLUENTE_INGEST_RETRY_BASE_MS: Type.Integer({
    default: 500,
    minimum: 1,
    description: 'milliseconds, at least 1',
  }),
  AFLUENTE_INGEST_RETRY_MAX_MS: Type.Integer({
    default: 30_000,
    minimum: 1,
    description: 'milliseconds, at least 1',
  }),
  AFLUENTE_SOURCES_FILE: Type.String({
    default: 'config/sources.yaml',
    minLength: 1,
    description: 'a path to the sources YAML file',
  }),
  AFLUENTE_API_TOKENS: Type.String({
    default: '',
    description:
      'one or more comma-separated bearer tokens of at least 16 characters, each optionally labelled as label=token',
  }),
  AFLUENTE_ROLES: Type.String({
    default: ROLES.join(','),
    pattern: `^(${ROLES.join('|')})(,(${ROLES.join('|')}))*$`,
    description: `a comma-separated subset of ${ROLES.join(', ')}`,
  }),
  AFLUENTE_LOG_LEVEL: Type.Union(
    LOG_LEVELS.map((l) => Type.Literal(l)),
    { default: 'info', description: `one of ${LOG_LEVELS.join(', ')}` },
  ),
  AFLUENTE_QUEUE_PREFIX: Type.String({
    default: 'afluente',
    pattern: '^[A-Za-z0-9_-]+$',
    description: 'letters, digits, _ or -',
  }),
  AFLUENTE_WORKER_CONCURRENCY: Type.Integer({
    default: 2,
    minimum: 1,
    maximum: 64,
    description: 'an integer from 1 to 64',
  }),
  AFLUENTE_MAX_CONCURRENT_STEPS: Type.Integer({
    default: 4,
    minimum: 1,
    maximum: 256,
    description:
      'transform and load steps (Spark or embedded) that run at once across every worker, per stage, from 1 to 256',
  }),
  AFLUENTE_HEARTBEAT_MS: Type.Integer({
    default: 5000,
    minimum: 100,
    maximum: 60000,
    description: 'milliseconds from 100 to 60000',
  }),
  AFLUENTE_LOCK_DURATION_MS: Type.Integer({
    default: 30_000,
    minimum: 1000,
    description: 'milliseconds after which the job of a dead worker is taken over, at least 1000',
  }),
  AFLUENTE_DISPATCH_INTERVAL_MS: Type.Integer({
    default: 15000,
    minimum: 100,
    description: 'milliseconds, at least 100',
  }),
  AFLUENTE_RECONCILE_INTERVAL_MS: Type.Integer({
    default: 60_000,
    minimum: 100,
    description: 'milliseconds between reconciler sweeps, at least 100',
  }),
  AFLUENTE_HEARTBEAT_DEADLINE_MS: Type.Integer({
    default: 600_000,
    minimum: 1000,
    description: 'milliseconds without a heartbeat after which a running job is failed, at least 1000',
  }),
  AFLUENTE_ORPHAN_SWEEP_INTERVAL_MS: Type.Integer({
    default: 300_000,
    minimum: 100,
    description:
      'milliseconds between orphan sweeps (Spark steps and EMR clusters no active run owns), at least 100',
  }),
  AFLUENTE_ORPHAN_GRACE_MS: Type.Integer({
    default: 120_000,
    minimum: 0,
    description:
      'milliseconds an orphaned step or cluster (and a job or run that just ended) is left alone before the sweep stops it, at least 0',
  }),
  AFLUENTE_SHUTDOWN_GRACE_MS: Type.Integer({
    default: 25000,
    minimum: 0,
    maximum: 600000,
    description: 'milliseconds from 0 to 600000',
  }),
  AFLUENTE_BODY_LIMIT_BYTES: Type.Integer({
    default: 65536,
    minimum: 1024,
    maximum: 10485760,
    description: 'bytes from 1024 to 10485760',
  }),
  AFLUENTE_RATE_LIMIT_MAX: Type.Integer({
    default: 300,
    minimum: 1,
    description: 'requests per window per client, at least 1',
  }),
  AFLUENTE_RATE_LIMIT_WINDOW_MS: Type.Integer({
    default: 60000,
    minimum: 1000,
    description: 'milliseconds, at least 1000',
  }),
  AFLUENTE_TRUST_PROXY: Type.Boolean({ default: false, description: 'true or false (true behind the ALB)' }),
  AFLUENTE_MIGRATE_ON_START: Type.Boolean({ default: true, description: 'true or false' }),
  AFLUENTE_METRICS_EMF: Type.Boolean({ default: false, description: 'true or false (emit CloudWatch EMF)' }),
  AFLUENTE_METRICS_INTERVAL_MS: Type.Integer({
    default: 60_000,
    minimum: 1000,
    description:
      'milliseconds between the EMF samples of active runs and queue depth (scheduler role), at least 1000',
  }),
  AFLUENTE_METRICS_NAMESPACE: Type.String({
    default: 'Afluente',
    minLength: 1,
    description: 'a CloudWatch namespace',
  }),
  AFLUENTE_STEP_RUNNER: Type.Enum(['local', 'emr'], {
    default: 'local',
    description: 'local (spark-submit from the venv, Spark in local mode) or emr (steps on an EMR cluster)',
  }),
  AFLUENTE_SPARK_VENV: Type.String({
    default: '.venv',
    minLength: 1,
    description:
      'the Python venv that holds pyspark and bin/spark-submit, relative to the working directory or absolute',
  }),
  AFLUENTE_SPARK_SCRIPTS: Type.String({
    default: 'spark',
    minLength: 1,
    description: 'the folder with split_tables.py, load_warehouse.py and the afluente_spark package',
  }),
  AFLUENTE_SPARK_MASTER: Type.String({
    default: 'local[*]',
    pattern: '^(local(\\[([0-9]+|\\*)(,[0-9]+)?\\])?|(spark|yarn|k8s)(://.+)?)$',
    description: 'a Spark master URL such as local[*], local[2] or spark://host:7077',
  }),
  AFLUENTE_SPARK_DRIVER_MEMORY: Type.String({
    default: '4g',
    pattern: '^[0-9]+[kmgtKMGT]?$',
    description: 'a JVM memory size such as 4g or 512m',
  }),
  AFLUENTE_SPARK_JARS: Type.String({
    default: '/usr/share/java/postgresql.jar',
    description: 'comma-separated jars for the local Spark classpath (the PostgreSQL JDBC driver), or empty',
  }),
  AFLUENTE_SPARK_TEMP_DIR: Type.String({
    default: '',
    description: "a folder for local steps' logs and staging, or empty for the system's temp folder",
  }),
  AFLUENTE_EMBEDDED_MAX_BYTES: Type.Integer({
    default: 2_147_483_648,
    minimum: 0,
    description:
      "validated bytes up to which engine auto runs a run's transform and load embedded (DuckDB) instead of on Spark, at least 0",
  }),
  AFLUENTE_EMBEDDED_VENV: Type.String({
    default: '.venv',
    minLength: 1,
    description:
      'the Python venv that holds duckdb for the embedded engine (bin/python), relative to the working directory or absolute',
  }),
  AFLUENTE_EMBEDDED_MEMORY_LIMIT: Type.String({
    default: '512MB',
    pattern: '^[0-9]+(\\.[0-9]+)?([KMGT]i?B|B)$',
    description: "a DuckDB memory limit such as 512MB, 4GB or 1.5GiB (one embedded step's memory_limit)",
  }),
  AFLUENTE_EMBEDDED_THREADS: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 1024,
    description: 'DuckDB threads per embedded step, from 0 (every core) to 1024',
  }),
  AFLUENTE_EMR_CLUSTER_ID: Type.String({
    default: '',
    pattern: '^(j-[A-Z0-9]+)?$',
    description:
      'empty (a transient cluster per run), or the id of a running EMR cluster to run every step on, e.g. j-2AXXXXXXGAPLF',
  }),
  AFLUENTE_EMR_RELEASE_LABEL: Type.String({
    default: 'emr-7.5.0',
    pattern: '^emr-[0-9]+\\.[0-9]+\\.[0-9]+$',
    description: 'an EMR release label such as emr-7.5.0',
  }),
  AFLUENTE_EMR_INSTANCE_TYPE: Type.String({
    default: 'm5.xlarge',
    pattern: '^[a-z0-9-]+\\.[a-z0-9]+$',
    description: 'an EC2 instance type such as m5.xlarge',
  }),
  AFLUENTE_EMR_INSTANCE_COUNT: Type.Integer({
    default: 3,
    minimum: 1,
    maximum: 256,
    description: 'instances in a transient cluster (one primary, the rest core), from 1 to 256',
  }),
  AFLUENTE_EMR_SERVICE_ROLE: Type.String({
    default: '',
    description: 'the EMR service role (name or ARN) of a transient cluster',
  }),
  AFLUENTE_EMR_JOB_FLOW_ROLE: Type.String({
    default: '',
    description: "the instance profile (name or ARN) of a transient cluster's EC2 instances",
  }),
  AFLUENTE_EMR_LOG_URI: Type.String({
    default: '',
    pattern: '^(s3n?://.+)?$',
    description: 'empty, or an s3:// URI where EMR writes cluster and step logs',
  }),
  AFLUENTE_EMR_SUBNET_ID: Type.String({
    default: '',
    pattern: '^(subnet-[0-9a-f]+)?$',
    description: 'empty, or the subnet a transient cluster runs in, e.g. subnet-0abc1234',
  }),
  AFLUENTE_EMR_SCRIPTS_URI: Type.String({
    default: '',
    pattern: '^(s3://.+)?$',
    description: 'an s3:// URI holding split_tables.py, load_warehouse.py and afluente_spark.zip',
  }),
  AFLUENTE_EMR_SECURITY_CONFIGURATION: Type.String({
    default: '',
    pattern: '^[A-Za-z0-9_.-]*$',
    description:
      'empty, or the EMR security configuration (encryption at rest and in transit) of a transient cluster',
  }),
  AFLUENTE_EMR_SECURITY_GROUP: Type.String({
    default: '',
    pattern: '^(sg-[0-9a-f]+)?$',
    description:
      "empty, or a security group added to a transient cluster's instances (the one the warehouse admits), e.g. sg-0abc1234",
  }),
  AFLUENTE_EMR_POLL_MS: Type.Integer({
    default: 15_000,
    minimum: 50,
    description: 'milliseconds between polls of a running EMR step, at least 50',
  }),
  AFLUENTE_EMR_IDLE_TIMEOUT_S: Type.Integer({
    default: 3600,
    minimum: 60,
    maximum: 604_800,
    description: 'seconds a transient cluster may sit idle before it terminates itself, from 60 to 604800',
  }),
});
type Env = Static<typeof EnvSchema>;

/** An API token and the label that audit fields (such as `cancelledBy`) record instead of the secret. */
export interface ApiToken {
  label: string;
  token: string;
}

/** The service's configuration, validated once at boot and grouped by concern. */
export interface Config {
  http: {
    host: string;
    port: number;
    bodyLimit: number;
    trustProxy: boolean;
    rateLimit: { max: number; windowMs: number };
  };
  auth: { tokens: ApiToken[] };
  mysql: MysqlConfig;
  redis: RedisConfig;
  warehouse: WarehouseConfig;
  lake: { uri: string; s3Endpoint?: string };
  lambda: {
    invoker: 'local' | 'aws';
    memoryMb: number;
    /** The deployed function for each of ours (aws invoker). */
    functions: Partial<Record<'ingest' | 'validate', string>>;
    eventsQueueUrl?: string;
    awsEndpoint?: string;
  };
  /** How ingest invocations page, retry, rotate parts and hand over (see IngestLimits). */
  ingest: Omit<IngestLimits, 'deadline'>;
  validate: { concurrency: number; partsPerGroup: number };
  sourcesFile: string;
  roles: ReadonlySet<Role>;
  log: { level: (typeof LOG_LEVELS)[number] };
  queue: {
    prefix: string;
    concurrency: number;
    /** Global cap on the active jobs of each Spark stage queue (transform, load), whatever the worker count. */
    maxConcurrentSteps: number;
    heartbeatMs: number;
    lockDurationMs: number;
    dispatchIntervalMs: number;
  };
  /** The reconciler (scheduler role): how often it sweeps, and when a silent job counts as orphaned. */
  reconcile: { intervalMs: number; heartbeatDeadlineMs: number };
  /** The orphan sweep (scheduler role): how often it runs, and how old an orphan must be before it is stopped. */
  orphanSweep: { intervalMs: number; graceMs: number };
  shutdownGraceMs: number;
  migrateOnStart: boolean;
  /** `intervalMs`: how often the scheduler pushes its gauge samples (active runs, queue depth) as EMF. */
  metrics: { emf: boolean; namespace: string; intervalMs: number };
  /** Where the transform and load stages run their Spark steps. */
  steps: StepsConfig;
}

/** The state database. */
export interface MysqlConfig {
  /** As configured; never holds the password when it came from AFLUENTE_MYSQL_PASSWORD. */
  url: string;
  /** A secret, kept out of the URL so that nothing that prints the URL can leak it. */
  password?: string;
  /** `rds`: TLS, verified against the Amazon RDS certificate authorities (the RDS parameter group requires it). */
  tls: 'off' | 'rds';
}

/** The Redis that holds the queues. */
export interface RedisConfig {
  /** `rediss://` turns TLS on (ElastiCache in-transit encryption). */
  url: string;
  /** A secret: the AUTH token. */
  password?: string;
}

/** The warehouse the load step writes to, as the step needs it: a JDBC URL without credentials. */
export interface WarehouseConfig {
  /** As configured, e.g. `postgres://postgres@127.0.0.1:5432/afluente`; never holds a password. */
  url: string;
  dialect: WarehouseDialect;
  /** `jdbc:postgresql://host:port/db`, or `jdbc:redshift:iam://host:port/db` (IAM auth, no password). */
  jdbcUrl: string;
  user: string | null;
  /** The schema that holds the target tables, the staging tables and the load ledger. */
  schema: string;
  /** Redshift only: the role COPY assumes to read the curated Parquet from S3. */
  copyRoleArn: string | null;
  /**
   * A secret: it reaches a local load step through its environment only, never a spec, an argument or a log
   * (the logger redacts `password` fields).
   */
  password?: string;
}

export interface StepsConfig {
  runner: 'local' | 'emr';
  /** The local runner: spark-submit from a Python venv, Spark in local mode. */
  spark: {
    /** Absolute. */
    venv: string;
    /** Absolute: the folder with the jobs and the afluente_spark package (put on PYTHONPATH). */
    scripts: string;
    master: string;
    driverMemory: string;
    /** Comma-separated jars for `--jars`; empty for none. */
    jars: string;
    /** Absolute: steps' logs go to `<tempDir>/afluente-steps/<queue prefix>/`, and an s3:// lake is staged under it. */
    tempDir: string;
  };
  /**
   * The embedded engine: `python -m afluente_embedded` (DuckDB) from a venv, a child process of the worker. Its
   * code is in `spark.scripts` and its logs, pid files and spill go under `spark.tempDir`.
   */
  embedded: {
    /** Validated bytes up to which engine `auto` picks the embedded engine. */
    maxBytes: number;
    /** Absolute. */
    venv: string;
    /** DuckDB's memory_limit, e.g. `512MB`. */
    memoryLimit: string;
    /** DuckDB's threads; 0 is every core. */
    threads: number;
  };
  /** The EMR runner. */
  emr: {
    /** Run every step on this cluster; without it, each run starts a transient cluster. */
    clusterId?: string;
    releaseLabel: string;
    instanceType: string;
    instanceCount: number;
    serviceRole?: string;
    jobFlowRole?: string;
    logUri?: string;
    subnetId?: string;
    /** `s3://…` holding split_tables.py, load_warehouse.py and afluente_spark.zip (no trailing slash). */
    scriptsUri?: string;
    /** The EMR security configuration of a transient cluster (encryption at rest and in transit). */
    securityConfiguration?: string;
    /** A security group added to a transient cluster's primary and core instances. */
    securityGroup?: string;
    pollMs: number;
    /** A transient cluster's AutoTerminationPolicy.IdleTimeout. */
    idleTimeoutS: number;
    /** For an emulator (AFLUENTE_AWS_ENDPOINT). */
    endpoint?: string;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true });
const validateEnv = ajv.compile<Env>(EnvSchema);
const schemaProperties = EnvSchema.properties as Record<string, { description?: string }>;

function describe(error: ErrorObject, raw: Record<string, string | undefined>): string {
  const name = error.instancePath.replace(/^\//, '').split('/')[0] ?? '';
  const expected = schemaProperties[name]?.description ?? error.message ?? 'a valid value';
  return `${name} must be ${expected} (got ${JSON.stringify(raw[name])})`;
}

/**
 * Reads `AFLUENTE_*` variables, applies the defaults for the local services, and returns a typed, grouped config.
 * Throws a {@link ConfigError} that names every bad variable and what it expects, and every `AFLUENTE_*` variable
 * it does not know (a typo), the CLI's own ({@link CLI_ENV}) excepted.
 */
export function loadConfig(
  environment: NodeJS.ProcessEnv = process.env,
  { requireTokens = true }: { requireTokens?: boolean } = {},
): Config {
  const raw: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = environment[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const cli: ReadonlySet<string> = new Set(CLI_ENV);
  const unknown = Object.keys(environment).filter(
    (k) => k.startsWith('AFLUENTE_') && !(k in EnvSchema.properties) && !cli.has(k),
  );
  const env: Record<string, unknown> = { ...raw };
  const problems: string[] = [];
  if (!validateEnv(env)) {
    // ajv reports a union per branch; one line per variable is what an operator needs.
    const seen = new Set<string>();
    for (const error of validateEnv.errors ?? []) {
      const line = describe(error, raw);
      const name = line.split(' ')[0] ?? line;
      if (!seen.has(name)) problems.push(line);
      seen.add(name);
    }
  }
  problems.push(
    ...unknown.map((k) => `${k} is not a known setting (check the spelling; see README "Configuration")`),
  );
  if (problems.length > 0) throw new ConfigError(problems);
  const valid = env as Env;

  // Tools that never serve the API (migrate, scripts) need no token; anything that may serve it does.
  const tokens =
    requireTokens || valid.AFLUENTE_API_TOKENS ? parseTokens(valid.AFLUENTE_API_TOKENS, problems) : [];
  if (valid.AFLUENTE_LAMBDA_INVOKER === 'aws') {
    for (const fn of ['ingest', 'validate']) {
      if (!valid.AFLUENTE_LAMBDA_FUNCTIONS.split(',').some((p) => p.startsWith(`${fn}=`))) {
        problems.push(
          `AFLUENTE_LAMBDA_FUNCTIONS must name the ${fn} function when AFLUENTE_LAMBDA_INVOKER=aws (e.g. ${fn}=afluente-${fn})`,
        );
      }
    }
    if (!valid.AFLUENTE_EVENTS_QUEUE_URL)
      problems.push('AFLUENTE_EVENTS_QUEUE_URL must be set when AFLUENTE_LAMBDA_INVOKER=aws');
  }
  for (const [url, password] of [
    ['AFLUENTE_MYSQL_URL', 'AFLUENTE_MYSQL_PASSWORD'],
    ['AFLUENTE_REDIS_URL', 'AFLUENTE_REDIS_PASSWORD'],
  ] as const) {
    // Two passwords would leave it to the driver to pick one; the message never echoes either.
    if (valid[password] && URL.canParse(valid[url]) && new URL(valid[url]).password)
      problems.push(`${url} holds a password and ${password} is set too: keep only ${password}`);
  }
  const warehouse = parseWarehouse(valid, problems);
  if (valid.AFLUENTE_STEP_RUNNER === 'emr') checkEmr(valid, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    http: {
      host: valid.AFLUENTE_HOST,
      port: valid.AFLUENTE_PORT,
      bodyLimit: valid.AFLUENTE_BODY_LIMIT_BYTES,
      trustProxy: valid.AFLUENTE_TRUST_PROXY,
      rateLimit: { max: valid.AFLUENTE_RATE_LIMIT_MAX, windowMs: valid.AFLUENTE_RATE_LIMIT_WINDOW_MS },
    },
    auth: { tokens },
    mysql: {
      url: valid.AFLUENTE_MYSQL_URL,
      tls: valid.AFLUENTE_MYSQL_TLS,
      ...optional('password', valid.AFLUENTE_MYSQL_PASSWORD),
    },
    redis: { url: valid.AFLUENTE_REDIS_URL, ...optional('password', valid.AFLUENTE_REDIS_PASSWORD) },
    warehouse,
    lake: {
      uri: valid.AFLUENTE_LAKE_URI,
      ...(valid.AFLUENTE_S3_ENDPOINT ? { s3Endpoint: valid.AFLUENTE_S3_ENDPOINT } : {}),
    },
    lambda: {
      invoker: valid.AFLUENTE_LAMBDA_INVOKER,
      memoryMb: valid.AFLUENTE_LAMBDA_MEMORY_MB,
      functions: Object.fromEntries(
        valid.AFLUENTE_LAMBDA_FUNCTIONS.split(',')
          .filter(Boolean)
          .map((pair) => pair.split('=') as [string, string]),
      ),
      ...(valid.AFLUENTE_EVENTS_QUEUE_URL ? { eventsQueueUrl: valid.AFLUENTE_EVENTS_QUEUE_URL } : {}),
      ...(valid.AFLUENTE_AWS_ENDPOINT ? { awsEndpoint: valid.AFLUENTE_AWS_ENDPOINT } : {}),
    },
    validate: {
      concurrency: valid.AFLUENTE_VALIDATE_CONCURRENCY,
      partsPerGroup: valid.AFLUENTE_VALIDATE_PARTS_PER_GROUP,
    },
    ingest: {
      timeLimitMs: valid.AFLUENTE_INGEST_TIME_LIMIT_MS,
      safetyMarginMs: valid.AFLUENTE_INGEST_SAFETY_MARGIN_MS,
      partMaxRecords: valid.AFLUENTE_INGEST_PART_MAX_RECORDS,
      partMaxBytes: valid.AFLUENTE_INGEST_PART_MAX_BYTES,
      maxResponseBytes: valid.AFLUENTE_INGEST_MAX_RESPONSE_BYTES,
      maxRetries: valid.AFLUENTE_INGEST_MAX_RETRIES,
      retryBaseMs: valid.AFLUENTE_INGEST_RETRY_BASE_MS,
      retryMaxMs: valid.AFLUENTE_INGEST_RETRY_MAX_MS,
    },
    sourcesFile: valid.AFLUENTE_SOURCES_FILE,
    roles: new Set(valid.AFLUENTE_ROLES.split(',') as Role[]),
    log: { level: valid.AFLUENTE_LOG_LEVEL },
    queue: {
      prefix: valid.AFLUENTE_QUEUE_PREFIX,
      concurrency: valid.AFLUENTE_WORKER_CONCURRENCY,
      maxConcurrentSteps: valid.AFLUENTE_MAX_CONCURRENT_STEPS,
      heartbeatMs: valid.AFLUENTE_HEARTBEAT_MS,
      lockDurationMs: valid.AFLUENTE_LOCK_DURATION_MS,
      dispatchIntervalMs: valid.AFLUENTE_DISPATCH_INTERVAL_MS,
    },
    reconcile: {
      intervalMs: valid.AFLUENTE_RECONCILE_INTERVAL_MS,
      heartbeatDeadlineMs: valid.AFLUENTE_HEARTBEAT_DEADLINE_MS,
    },
    orphanSweep: {
      intervalMs: valid.AFLUENTE_ORPHAN_SWEEP_INTERVAL_MS,
      graceMs: valid.AFLUENTE_ORPHAN_GRACE_MS,
    },
    shutdownGraceMs: valid.AFLUENTE_SHUTDOWN_GRACE_MS,
    migrateOnStart: valid.AFLUENTE_MIGRATE_ON_START,
    metrics: {
      emf: valid.AFLUENTE_METRICS_EMF,
      namespace: valid.AFLUENTE_METRICS_NAMESPACE,
      intervalMs: valid.AFLUENTE_METRICS_INTERVAL_MS,
    },
    steps: {
      runner: valid.AFLUENTE_STEP_RUNNER,
      spark: {
        venv: resolve(valid.AFLUENTE_SPARK_VENV),
        scripts: resolve(valid.AFLUENTE_SPARK_SCRIPTS),
        master: valid.AFLUENTE_SPARK_MASTER,
        driverMemory: valid.AFLUENTE_SPARK_DRIVER_MEMORY,
        jars: valid.AFLUENTE_SPARK_JARS,
        tempDir: resolve(valid.AFLUENTE_SPARK_TEMP_DIR || tmpdir()),
      },
      embedded: {
        maxBytes: valid.AFLUENTE_EMBEDDED_MAX_BYTES,
        venv: resolve(valid.AFLUENTE_EMBEDDED_VENV),
        memoryLimit: valid.AFLUENTE_EMBEDDED_MEMORY_LIMIT,
        threads: valid.AFLUENTE_EMBEDDED_THREADS,
      },
      emr: {
        ...optional('clusterId', valid.AFLUENTE_EMR_CLUSTER_ID),
        releaseLabel: valid.AFLUENTE_EMR_RELEASE_LABEL,
        instanceType: valid.AFLUENTE_EMR_INSTANCE_TYPE,
        instanceCount: valid.AFLUENTE_EMR_INSTANCE_COUNT,
        ...optional('serviceRole', valid.AFLUENTE_EMR_SERVICE_ROLE),
        ...optional('jobFlowRole', valid.AFLUENTE_EMR_JOB_FLOW_ROLE),
        ...optional('logUri', valid.AFLUENTE_EMR_LOG_URI.replace(/\/+$/, '')),
        ...optional('subnetId', valid.AFLUENTE_EMR_SUBNET_ID),
        ...optional('scriptsUri', valid.AFLUENTE_EMR_SCRIPTS_URI.replace(/\/+$/, '')),
        ...optional('securityConfiguration', valid.AFLUENTE_EMR_SECURITY_CONFIGURATION),
        ...optional('securityGroup', valid.AFLUENTE_EMR_SECURITY_GROUP),
        pollMs: valid.AFLUENTE_EMR_POLL_MS,
        idleTimeoutS: valid.AFLUENTE_EMR_IDLE_TIMEOUT_S,
        ...optional('endpoint', valid.AFLUENTE_AWS_ENDPOINT),
      },
    },
  };
}

function optional<K extends string>(key: K, value: string): Partial<Record<K, string>> {
  return value ? ({ [key]: value } as Record<K, string>) : {};
}

const WAREHOUSE_PORTS: Record<WarehouseDialect, number> = { postgres: 5432, redshift: 5439 };

// The URL's own problems never echo it: it may hold a password, which is exactly what is being refused.
function parseWarehouse(valid: Env, problems: string[]): WarehouseConfig {
  const url = valid.AFLUENTE_WAREHOUSE_URL;
  const dialect: WarehouseDialect = url.startsWith('redshift://') ? 'redshift' : 'postgres';
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    problems.push('AFLUENTE_WAREHOUSE_URL must be a URL like postgres://user@host:5432/database');
  }
  if (parsed?.password) {
    problems.push(
      'AFLUENTE_WAREHOUSE_URL must not hold a password: set it in AFLUENTE_WAREHOUSE_PASSWORD instead, ' +
        'a secret the load step gets in its environment, never in its arguments or logs',
    );
  }
  const database = parsed?.pathname.replace(/^\//, '') ?? '';
  if (parsed && (!parsed.hostname || !/^[A-Za-z0-9_$-]+$/.test(database))) {
    problems.push(
      `AFLUENTE_WAREHOUSE_URL must name a host and a database, like ${dialect}://user@host:${WAREHOUSE_PORTS[dialect]}/afluente`,
    );
  }
  if (dialect === 'redshift' && !valid.AFLUENTE_WAREHOUSE_COPY_ROLE_ARN) {
    problems.push(
      'AFLUENTE_WAREHOUSE_COPY_ROLE_ARN must be set when AFLUENTE_WAREHOUSE_URL is redshift://: ' +
        'it is the role Redshift COPY assumes to read the curated Parquet from S3',
    );
  }
  const host = parsed?.hostname ?? '';
  const port = parsed?.port || String(WAREHOUSE_PORTS[dialect]);
  const prefix = dialect === 'redshift' ? 'jdbc:redshift:iam' : 'jdbc:postgresql';
  return {
    url,
    dialect,
    jdbcUrl: `${prefix}://${host}:${port}/${database}${parsed?.search ?? ''}`,
    user: parsed?.username ? decodeURIComponent(parsed.username) : null,
    schema: valid.AFLUENTE_WAREHOUSE_SCHEMA,
    copyRoleArn: valid.AFLUENTE_WAREHOUSE_COPY_ROLE_ARN || null,
    ...(valid.AFLUENTE_WAREHOUSE_PASSWORD ? { password: valid.AFLUENTE_WAREHOUSE_PASSWORD } : {}),
  };
}

function checkEmr(valid: Env, problems: string[]): void {
  const when = 'when AFLUENTE_STEP_RUNNER=emr';
  if (!valid.AFLUENTE_LAKE_URI.startsWith('s3://'))
    problems.push(
      `AFLUENTE_LAKE_URI must be an s3:// lake ${when}: the steps read and write it from the cluster`,
    );
  if (!valid.AFLUENTE_EMR_SCRIPTS_URI)
    problems.push(
      `AFLUENTE_EMR_SCRIPTS_URI must be set ${when}: an s3:// URI holding split_tables.py, load_warehouse.py and afluente_spark.zip`,
    );
  if (valid.AFLUENTE_EMR_CLUSTER_ID) return;
  const transient = `${when} and no AFLUENTE_EMR_CLUSTER_ID is set (each run starts its own cluster)`;
  if (!valid.AFLUENTE_EMR_SERVICE_ROLE)
    problems.push(`AFLUENTE_EMR_SERVICE_ROLE must name the EMR service role ${transient}`);
  if (!valid.AFLUENTE_EMR_JOB_FLOW_ROLE)
    problems.push(
      `AFLUENTE_EMR_JOB_FLOW_ROLE must name the instance profile of the cluster's EC2 instances ${transient}`,
    );
  if (!valid.AFLUENTE_EMR_LOG_URI)
    problems.push(`AFLUENTE_EMR_LOG_URI must be an s3:// URI for the cluster's logs ${transient}`);
}

// Tokens are secrets: problems name the position, never the value.
function parseTokens(value: string, problems: string[]): ApiToken[] {
  const entries = value
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  if (entries.length === 0) {
    problems.push(
      'AFLUENTE_API_TOKENS must be set: the API always requires a bearer token. ' +
        'Set one or more comma-separated tokens of at least 16 characters, e.g. AFLUENTE_API_TOKENS=ops=$(openssl rand -hex 24)',
    );
    return [];
  }
  const tokens = entries.map((entry, i) => {
    const eq = entry.indexOf('=');
    const label = eq > 0 ? entry.slice(0, eq) : `token-${i + 1}`;
    const token = eq > 0 ? entry.slice(eq + 1) : entry;
    if (token.length < 16)
      problems.push(`AFLUENTE_API_TOKENS entry ${i + 1} (${label}) must be at least 16 characters long`);
    if (!/^[A-Za-z0-9_.-]+$/.test(label))
      problems.push(`AFLUENTE_API_TOKENS entry ${i + 1} has a label that is not letters, digits, _ . or -`);
    return { label, token };
  });
  return tokens;
}

/** A URL safe to log: the password is replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}
