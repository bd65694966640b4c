import { Ajv, type ErrorObject } from 'ajv';
import { Type, type Static } from 'typebox';
import type { IngestLimits } from '../../contract/ingest.ts';

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
    description: 'a URL like mysql://user:password@host:3306/database',
  }),
  AFLUENTE_REDIS_URL: Type.String({
    default: 'redis://127.0.0.1:6379',
    pattern: '^rediss?://',
    description: 'a URL like redis://host:6379 or rediss://host:6379 for TLS',
  }),
  AFLUENTE_WAREHOUSE_URL: Type.String({
    default: 'postgres://postgres@127.0.0.1:5432/afluente',
    pattern: '^(postgres|postgresql|redshift)://',
    description: 'a URL like postgres://user@host:5432/database (Redshift: redshift://host:5439/db)',
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
    description: 'empty, or one endpoint for Lambda and SQS (an emulator such as moto)',
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
  AFLUENTE_METRICS_NAMESPACE: Type.String({
    default: 'Afluente',
    minLength: 1,
    description: 'a CloudWatch namespace',
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
  mysql: { url: string };
  redis: { url: string };
  warehouse: { url: string };
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
    heartbeatMs: number;
    lockDurationMs: number;
    dispatchIntervalMs: number;
  };
  shutdownGraceMs: number;
  migrateOnStart: boolean;
  metrics: { emf: boolean; namespace: string };
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
 * Throws a {@link ConfigError} that names every bad variable and what it expects.
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
  const unknown = Object.keys(environment).filter(
    (k) => k.startsWith('AFLUENTE_') && !(k in EnvSchema.properties),
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
    mysql: { url: valid.AFLUENTE_MYSQL_URL },
    redis: { url: valid.AFLUENTE_REDIS_URL },
    warehouse: { url: valid.AFLUENTE_WAREHOUSE_URL },
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
      heartbeatMs: valid.AFLUENTE_HEARTBEAT_MS,
      lockDurationMs: valid.AFLUENTE_LOCK_DURATION_MS,
      dispatchIntervalMs: valid.AFLUENTE_DISPATCH_INTERVAL_MS,
    },
    shutdownGraceMs: valid.AFLUENTE_SHUTDOWN_GRACE_MS,
    migrateOnStart: valid.AFLUENTE_MIGRATE_ON_START,
    metrics: { emf: valid.AFLUENTE_METRICS_EMF, namespace: valid.AFLUENTE_METRICS_NAMESPACE },
  };
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
