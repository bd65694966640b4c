// The app's context flags: cdk.json holds the defaults, `cdk synth -c afluente:<flag>=<value>` overrides one.
// A value from the command line is always a string, one from cdk.json keeps its JSON type; both are accepted.
import type { Node } from 'constructs';

/** Every `afluente:*` context flag, by setting. infra/README.md documents each one. */
export const CONTEXT = {
  stackName: 'afluente:stackName',
  account: 'afluente:account',
  region: 'afluente:region',
  retainData: 'afluente:retainData',
  alarmEmail: 'afluente:alarmEmail',
  emrClusterId: 'afluente:emrClusterId',
  certificateArn: 'afluente:certificateArn',
  emrTlsCertificatesUri: 'afluente:emrTlsCertificatesUri',
  runDeadlineHours: 'afluente:runDeadlineHours',
  natGateways: 'afluente:natGateways',
  interfaceEndpoints: 'afluente:interfaceEndpoints',
  availabilityZones: 'afluente:availabilityZones',
  sourceSecrets: 'afluente:sourceSecrets',
  workerCpu: 'afluente:workerCpu',
  workerMemoryMiB: 'afluente:workerMemoryMiB',
  workerEphemeralStorageGiB: 'afluente:workerEphemeralStorageGiB',
  embeddedMaxBytes: 'afluente:embeddedMaxBytes',
  embeddedMemoryLimitMiB: 'afluente:embeddedMemoryLimitMiB',
  embeddedThreads: 'afluente:embeddedThreads',
  nag: 'afluente:nag',
} as const;

/**
 * The worker task's budget for the embedded engine (DuckDB in a Python child process of the worker), which the
 * worker flags must fit. The worker runs at most EMBEDDED_STEPS_PER_TASK heavy embedded steps at once: its queue
 * concurrency (AFLUENTE_WORKER_CONCURRENCY, set to this) of transforms; a load into Redshift is COPY statements,
 * light on the worker.
 */
export const EMBEDDED_BUDGET = {
  stepsPerTask: 2,
  /** MiB for the worker's node process (BullMQ, staging streams, the ORM) and the OS. */
  serviceMiB: 1024,
  /** MiB one embedded step uses beyond DuckDB's memory_limit: Python, the records it reads, DuckDB's own state. */
  stepOverheadMiB: 512,
  /**
   * Disk one embedded step may use, in multiples of its validated input: the staged input (1), DuckDB's database
   * file and spill (up to 3: the records decompressed into DuckDB's columns, sorts and joins), the Parquet it
   * writes before the upload (1).
   */
  stepDiskFactor: 5,
  /** GiB of the task's ephemeral storage that are not the steps': the image (about 1 GiB unpacked) and logs. */
  baseDiskGiB: 4,
} as const;

/** Fargate's task sizes: vCPU units → the memory (MiB) each allows. */
const FARGATE_MEMORY: Record<number, (memoryMiB: number) => boolean> = {
  256: (m) => [512, 1024, 2048].includes(m),
  512: (m) => m >= 1024 && m <= 4096 && m % 1024 === 0,
  1024: (m) => m >= 2048 && m <= 8192 && m % 1024 === 0,
  2048: (m) => m >= 4096 && m <= 16384 && m % 1024 === 0,
  4096: (m) => m >= 8192 && m <= 30720 && m % 1024 === 0,
  8192: (m) => m >= 16384 && m <= 61440 && m % 4096 === 0,
  16384: (m) => m >= 32768 && m <= 122880 && m % 8192 === 0,
};

/** The settings the context flags carry, validated. */
export interface AfluenteSettings {
  /** The CloudFormation stack name, also the prefix of the few physical names the app sets. */
  stackName: string;
  /** The AWS account to deploy to; without one, the CLI's (CDK_DEFAULT_ACCOUNT), or none (agnostic). */
  account: string | undefined;
  /** The AWS region; without one, the CLI's (CDK_DEFAULT_REGION), AWS_REGION, or us-east-1. */
  region: string | undefined;
  /** Keep data stores, their keys and audit logs when the stack or a resource is deleted. */
  retainData: boolean;
  /** An address subscribed to the alarm topic. */
  alarmEmail: string | undefined;
  /** Run every Spark step on this existing EMR cluster instead of a transient cluster per run. */
  emrClusterId: string | undefined;
  /** An ACM certificate for an HTTPS listener on the internal ALB; HTTP without one. */
  certificateArn: string | undefined;
  /** The PEM zip EMR's in-transit encryption reads; without one, `s3://<artifacts>/emr/tls/certs.zip`. */
  emrTlsCertificatesUri: string | undefined;
  /** How old an unfinished run may get before the deadline alarm fires. */
  runDeadlineHours: number;
  /** NAT gateways for the private subnets. */
  natGateways: number;
  /** Whether to create the interface VPC endpoints for the AWS APIs the tasks and clusters call. */
  interfaceEndpoints: boolean;
  /** Explicit availability zones (three), for an environment-specific stack; by default `Fn::GetAZs`. */
  availabilityZones: string[] | undefined;
  /** For the ingest Lambda: env variable name → `secret ARN[#json field]` (AFLUENTE_SECRET_ENV). */
  sourceSecrets: Record<string, string>;
  /** The worker task's vCPU units (1024 = 1 vCPU). */
  workerCpu: number;
  /** The worker task's memory, MiB: the service and the embedded steps' DuckDB memory limits with headroom. */
  workerMemoryMiB: number;
  /** The worker task's ephemeral storage, GiB: the embedded steps' staging, DuckDB spill and Parquet output. */
  workerEphemeralStorageGiB: number;
  /** Validated bytes up to which engine `auto` runs the transform and load embedded (AFLUENTE_EMBEDDED_MAX_BYTES). */
  embeddedMaxBytes: number;
  /** DuckDB's memory_limit per embedded step, MiB (AFLUENTE_EMBEDDED_MEMORY_LIMIT). */
  embeddedMemoryLimitMiB: number;
  /** DuckDB threads per embedded step (AFLUENTE_EMBEDDED_THREADS, 0: every core); by default the worker's vCPUs. */
  embeddedThreads: number;
  /** Run the cdk-nag AwsSolutions checks at synth, failing it on an unacknowledged error. */
  nag: boolean;
}

export class SettingsError extends Error {
  override name = 'SettingsError';
}

/** Reads and validates every `afluente:*` flag from the construct tree's context. */
export function readSettings(node: Node): AfluenteSettings {
  const raw = (key: string): unknown => {
    const value: unknown = node.tryGetContext(key);
    return value === '' || value === null ? undefined : value;
  };
  const workerCpu = num(CONTEXT.workerCpu, raw(CONTEXT.workerCpu)) ?? 2048;
  const settings: AfluenteSettings = {
    stackName: text(CONTEXT.stackName, raw(CONTEXT.stackName)) ?? 'Afluente',
    account: text(CONTEXT.account, raw(CONTEXT.account)),
    region: text(CONTEXT.region, raw(CONTEXT.region)),
    retainData: bool(CONTEXT.retainData, raw(CONTEXT.retainData)) ?? true,
    alarmEmail: text(CONTEXT.alarmEmail, raw(CONTEXT.alarmEmail)),
    emrClusterId: text(CONTEXT.emrClusterId, raw(CONTEXT.emrClusterId)),
    certificateArn: text(CONTEXT.certificateArn, raw(CONTEXT.certificateArn)),
    emrTlsCertificatesUri: text(CONTEXT.emrTlsCertificatesUri, raw(CONTEXT.emrTlsCertificatesUri)),
    runDeadlineHours: num(CONTEXT.runDeadlineHours, raw(CONTEXT.runDeadlineHours)) ?? 6,
    natGateways: num(CONTEXT.natGateways, raw(CONTEXT.natGateways)) ?? 1,
    interfaceEndpoints: bool(CONTEXT.interfaceEndpoints, raw(CONTEXT.interfaceEndpoints)) ?? true,
    availabilityZones: list(CONTEXT.availabilityZones, raw(CONTEXT.availabilityZones)),
    sourceSecrets: record(CONTEXT.sourceSecrets, raw(CONTEXT.sourceSecrets)) ?? {},
    workerCpu,
    workerMemoryMiB: num(CONTEXT.workerMemoryMiB, raw(CONTEXT.workerMemoryMiB)) ?? 8192,
    workerEphemeralStorageGiB:
      num(CONTEXT.workerEphemeralStorageGiB, raw(CONTEXT.workerEphemeralStorageGiB)) ?? 60,
    embeddedMaxBytes: num(CONTEXT.embeddedMaxBytes, raw(CONTEXT.embeddedMaxBytes)) ?? 2 * 1024 ** 3,
    embeddedMemoryLimitMiB: num(CONTEXT.embeddedMemoryLimitMiB, raw(CONTEXT.embeddedMemoryLimitMiB)) ?? 3072,
    // The task's vCPUs, not the count of cores the Fargate micro-VM may show DuckDB.
    embeddedThreads:
      num(CONTEXT.embeddedThreads, raw(CONTEXT.embeddedThreads)) ?? Math.max(1, Math.floor(workerCpu / 1024)),
    nag: bool(CONTEXT.nag, raw(CONTEXT.nag)) ?? true,
  };
  check(settings);
  return settings;
}

function check(s: AfluenteSettings): void {
  const expect = (ok: boolean, key: string, what: string, value: unknown): void => {
    if (!ok) throw new SettingsError(`context ${key} must be ${what} (got ${JSON.stringify(value)})`);
  };
  // CloudFormation's own rule for stack names; the lower-cased name also prefixes Redshift and RDS names.
  expect(
    /^[A-Za-z][A-Za-z0-9-]{0,39}$/.test(s.stackName),
    CONTEXT.stackName,
    'a letter, then letters, digits or -, at most 40',
    s.stackName,
  );
  if (s.account !== undefined)
    expect(/^\d{12}$/.test(s.account), CONTEXT.account, 'a 12-digit account id', s.account);
  if (s.region !== undefined)
    expect(/^[a-z]{2}(-[a-z]+)+-\d$/.test(s.region), CONTEXT.region, 'a region such as eu-west-1', s.region);
  if (s.alarmEmail !== undefined)
    expect(/^[^@\s]+@[^@\s]+$/.test(s.alarmEmail), CONTEXT.alarmEmail, 'an email address', s.alarmEmail);
  // The service refuses any other shape of AFLUENTE_EMR_CLUSTER_ID at boot; fail at synth instead.
  if (s.emrClusterId !== undefined)
    expect(/^j-[A-Z0-9]+$/.test(s.emrClusterId), CONTEXT.emrClusterId, 'an EMR cluster id', s.emrClusterId);
  if (s.certificateArn !== undefined)
    expect(
      /^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/.+$/.test(s.certificateArn),
      CONTEXT.certificateArn,
      'an ACM certificate ARN',
      s.certificateArn,
    );
  if (s.emrTlsCertificatesUri !== undefined)
    expect(
      /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+\.zip$/.test(s.emrTlsCertificatesUri),
      CONTEXT.emrTlsCertificatesUri,
      'an s3://bucket/key.zip URI',
      s.emrTlsCertificatesUri,
    );
  expect(
    s.runDeadlineHours > 0 && s.runDeadlineHours <= 24 * 7,
    CONTEXT.runDeadlineHours,
    'hours from 1 to 168',
    s.runDeadlineHours,
  );
  // PRIVATE_WITH_EGRESS subnets need a NAT gateway; one per AZ is the most there can be.
  expect(
    Number.isInteger(s.natGateways) && s.natGateways >= 1 && s.natGateways <= 3,
    CONTEXT.natGateways,
    'an integer from 1 to 3',
    s.natGateways,
  );
  if (s.availabilityZones !== undefined)
    // Redshift Serverless needs subnets in three zones.
    expect(
      s.availabilityZones.length === 3,
      CONTEXT.availabilityZones,
      'three comma-separated zones',
      s.availabilityZones,
    );
  const integer = (value: number, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
    Number.isInteger(value) && value >= min && value <= max;
  expect(
    FARGATE_MEMORY[s.workerCpu] !== undefined,
    CONTEXT.workerCpu,
    `one of Fargate's task sizes (${Object.keys(FARGATE_MEMORY).join(', ')})`,
    s.workerCpu,
  );
  expect(
    FARGATE_MEMORY[s.workerCpu]?.(s.workerMemoryMiB) ?? true,
    CONTEXT.workerMemoryMiB,
    `a memory size Fargate pairs with ${s.workerCpu} CPU units`,
    s.workerMemoryMiB,
  );
  expect(
    integer(s.workerEphemeralStorageGiB, 21, 200),
    CONTEXT.workerEphemeralStorageGiB,
    'GiB from 21 to 200 (Fargate; 20 is the free default)',
    s.workerEphemeralStorageGiB,
  );
  expect(integer(s.embeddedMaxBytes, 0), CONTEXT.embeddedMaxBytes, 'bytes, at least 0', s.embeddedMaxBytes);
  expect(
    integer(s.embeddedMemoryLimitMiB, 128),
    CONTEXT.embeddedMemoryLimitMiB,
    'MiB, at least 128',
    s.embeddedMemoryLimitMiB,
  );
  expect(integer(s.embeddedThreads, 0, 1024), CONTEXT.embeddedThreads, 'from 0 to 1024', s.embeddedThreads);
  // The embedded steps must fit the worker task, or the kernel kills them (or the service) mid-run.
  const { stepsPerTask, serviceMiB, stepOverheadMiB, stepDiskFactor, baseDiskGiB } = EMBEDDED_BUDGET;
  const memoryNeeded = serviceMiB + stepsPerTask * (s.embeddedMemoryLimitMiB + stepOverheadMiB);
  expect(
    s.workerMemoryMiB >= memoryNeeded,
    CONTEXT.workerMemoryMiB,
    `at least ${memoryNeeded} MiB: ${serviceMiB} for the service and ${stepsPerTask} embedded steps of ${CONTEXT.embeddedMemoryLimitMiB} + ${stepOverheadMiB}`,
    s.workerMemoryMiB,
  );
  const diskNeeded = Math.ceil(
    baseDiskGiB + (stepsPerTask * stepDiskFactor * s.embeddedMaxBytes) / 1024 ** 3,
  );
  expect(
    s.workerEphemeralStorageGiB >= diskNeeded,
    CONTEXT.workerEphemeralStorageGiB,
    `at least ${diskNeeded} GiB: ${stepsPerTask} embedded steps of ${stepDiskFactor} × ${CONTEXT.embeddedMaxBytes}, and ${baseDiskGiB} for the image and logs`,
    s.workerEphemeralStorageGiB,
  );
  for (const [name, reference] of Object.entries(s.sourceSecrets)) {
    expect(/^[A-Z_][A-Z0-9_]*$/.test(name), CONTEXT.sourceSecrets, 'keyed by env variable names', name);
    expect(
      /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[^#]+(#[^#]+)?$/.test(reference),
      CONTEXT.sourceSecrets,
      'values like <full secret ARN>[#field]',
      reference,
    );
  }
}

function text(key: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new SettingsError(`context ${key} must be a string`);
  return value.trim() || undefined;
}

function bool(key: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw new SettingsError(`context ${key} must be true or false (got ${JSON.stringify(value)})`);
}

function num(key: string, value: unknown): number | undefined {
  if (value === undefined || typeof value === 'number') return value;
  if (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value)) return Number(value);
  throw new SettingsError(`context ${key} must be a number (got ${JSON.stringify(value)})`);
}

function list(key: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  if (typeof value === 'string') return value.split(',').map((v) => v.trim());
  throw new SettingsError(`context ${key} must be a list of strings or a comma-separated string`);
}

function record(key: string, value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new SettingsError(`context ${key} must be a JSON object`);
    }
  }
  const ok =
    typeof parsed === 'object' &&
    parsed !== null &&
    !Array.isArray(parsed) &&
    Object.values(parsed).every((v) => typeof v === 'string');
  if (!ok) throw new SettingsError(`context ${key} must be an object of string values`);
  return parsed as Record<string, string>;
}
