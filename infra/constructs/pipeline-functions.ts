import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { join } from 'node:path';
import { METRICS_NAMESPACE } from '../../contract/metrics.ts';
import { handlerNodeFlags } from '../../service/invocation/local-invoker.ts';
import { acknowledgeWildcardResources } from '../nag.ts';
import { REPO_ROOT } from '../paths.ts';
import { DELETE_OBJECT, READ_OBJECT, WRITE_OBJECT, type Lake } from './lake.ts';

export interface PipelineFunctionsProps {
  /** The lake the functions write (ingest: raw/; validate: validated/ and rejected/). Required. */
  readonly lake: Lake;
  /**
   * Memory of each function, MB. The service gets the same number (AFLUENTE_LAMBDA_MEMORY_MB), and the V8 heap
   * flags in NODE_OPTIONS follow it.
   * @default 1024
   */
  readonly memoryMb?: number;
  /**
   * Reserved concurrency of the ingest function (it caps the parallel sources, and spares the account's pool).
   * @default 10
   */
  readonly ingestReservedConcurrency?: number;
  /**
   * Reserved concurrency of the validate function (AFLUENTE_VALIDATE_CONCURRENCY per running validate stage).
   * @default 20
   */
  readonly validateReservedConcurrency?: number;
  /**
   * How long an event may wait in Lambda's async queue (throttled by the reserved concurrency) before Lambda
   * drops it and sends an EventAgeExceeded record. The worker waits a function's time limit plus 2 minutes for a
   * result (service/stages/ingest.ts, RESULT_GRACE_MS); an event that starts later would run for nobody, next
   * to the job's retry, so it must expire within that grace.
   * @default Duration.minutes(2)
   */
  readonly maxEventAge?: Duration;
  /**
   * Source credentials for the ingest function: env variable name → `secret ARN[#json field]`. It becomes
   * AFLUENTE_SECRET_ENV (lambdas/ingest/secret-env.ts), and the function may read exactly those secrets.
   * @default {}
   */
  readonly sourceSecrets?: Record<string, string>;
  /**
   * How long the functions' logs are kept.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Days the events queue and its DLQ keep a message.
   * @default 14
   */
  readonly messageRetentionDays?: number;
}

/** Function timeout: the service's AFLUENTE_INGEST_TIME_LIMIT_MS default (900000) is Lambda's maximum. */
const TIMEOUT = Duration.minutes(15);

/**
 * The ingest and validate Lambdas and the events queue their destinations deliver to (the service's
 * SqsEventConsumer reads it). The functions run outside the VPC: ingest pulls public source APIs, and both reach
 * only S3 (and Secrets Manager), so a VPC would add NAT cost and cold-start time for nothing.
 */
export class PipelineFunctions extends Construct {
  readonly ingest: nodejs.NodejsFunction;
  readonly validate: nodejs.NodejsFunction;
  /** Success and failure destination records of both functions. */
  readonly eventsQueue: sqs.Queue;
  /** Where records the service cannot parse end up (after the redrive policy's receives). */
  readonly deadLetterQueue: sqs.Queue;
  readonly memoryMb: number;

  constructor(scope: Construct, id: string, props: PipelineFunctionsProps) {
    super(scope, id);
    const { lake } = props;
    this.memoryMb = props.memoryMb ?? 1024;
    const retention = Duration.days(props.messageRetentionDays ?? 14);

    this.deadLetterQueue = new sqs.Queue(this, 'EventsDlq', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: retention,
    });
    this.eventsQueue = new sqs.Queue(this, 'Events', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: retention,
      // The consumer sets its own visibility per receive; this is the fallback for other readers.
      visibilityTimeout: Duration.seconds(60),
      // A poison record is hidden 300 s per receive (sqs-consumer.ts), so five receives park it in ~25 min.
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
    });

    const destination = new SqsDestination(this.eventsQueue);
    const common = {
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: this.memoryMb,
      timeout: TIMEOUT,
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node24',
        sourceMap: true,
        minify: true,
        // Bundle the SDK too: lib-storage is not in the runtime, and the versions stay the ones tested.
        bundleAwsSDK: true,
        externalModules: [],
        mainFields: ['module', 'main'],
        tsconfig: join(REPO_ROOT, 'tsconfig.json'),
        // CommonJS dependencies call require() on Node built-ins, which an ESM bundle has no binding for.
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
      environment: {
        NODE_OPTIONS: [...handlerNodeFlags(this.memoryMb), '--enable-source-maps'].join(' '),
        AFLUENTE_METRICS_EMF: 'true',
        AWS_EMF_NAMESPACE: METRICS_NAMESPACE,
      },
      onSuccess: destination,
      onFailure: destination,
      // The worker retries a failed invocation itself (a new attempt of the job); a Lambda retry would run the
      // same request again behind its back.
      retryAttempts: 0,
      maxEventAge: props.maxEventAge ?? Duration.minutes(2),
    } satisfies Partial<nodejs.NodejsFunctionProps>;

    const sourceSecrets = props.sourceSecrets ?? {};
    this.ingest = new nodejs.NodejsFunction(this, 'Ingest', {
      ...common,
      entry: join(REPO_ROOT, 'lambdas/ingest/handler.ts'),
      description: 'afluente ingest: pulls a source API into raw parts',
      ...this.roleAndLogs('Ingest', props.logRetention),
      reservedConcurrentExecutions: props.ingestReservedConcurrency ?? 10,
      environment: {
        ...common.environment,
        ...(Object.keys(sourceSecrets).length > 0
          ? { AFLUENTE_SECRET_ENV: JSON.stringify(sourceSecrets) }
          : {}),
      },
    });
    this.validate = new nodejs.NodejsFunction(this, 'Validate', {
      ...common,
      entry: join(REPO_ROOT, 'lambdas/validate/handler.ts'),
      description: 'afluente validate: checks raw parts against the source schema',
      ...this.roleAndLogs('Validate', props.logRetention),
      reservedConcurrentExecutions: props.validateReservedConcurrency ?? 20,
    });

    // ingest (lambdas/ingest/ingest.ts): writes parts, segments and the manifest under raw/, reads its own
    // segments back, lists the run's prefix to delete stale parts, and deletes the manifest and segments.
    lake.grantObjects(this.ingest, [...READ_OBJECT, ...WRITE_OBJECT, ...DELETE_OBJECT], ['raw']);
    lake.grantList(this.ingest, ['raw']);
    lake.grantKey(this.ingest);
    // validate (lambdas/validate/validate.ts): reads raw parts; writes, and un-commits (deletes), its group's
    // validated and rejected parts and manifest.
    lake.grantObjects(this.validate, READ_OBJECT, ['raw']);
    lake.grantObjects(this.validate, [...WRITE_OBJECT, ...DELETE_OBJECT], ['validated', 'rejected']);
    lake.grantKey(this.validate);

    const secretArns = [...new Set(Object.values(sourceSecrets).map((ref) => ref.split('#')[0] ?? ref))];
    if (secretArns.length > 0) {
      this.ingest.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: secretArns }),
      );
    }

    acknowledgeWildcardResources(
      this.ingest.role!,
      [lake.objectsUnder('raw')],
      'Ingest writes keys it derives per run under raw/source=<s>/dt=<d>/run=<id>/, so only a prefix pattern can name them.',
    );
    acknowledgeWildcardResources(
      this.validate.role!,
      [lake.objectsUnder('raw'), lake.objectsUnder('validated'), lake.objectsUnder('rejected')],
      'Validate reads the raw parts a request lists and writes per-run keys under validated/ and rejected/: prefix patterns only.',
    );
  }

  /** Lets the service invoke both functions (Event invocations). */
  grantInvoke(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [this.ingest.functionArn, this.validate.functionArn],
      }),
    );
  }

  /** Lets the service consume the events queue (sqs-consumer.ts: receive, delete, change visibility). */
  grantConsumeEvents(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility'],
        resources: [this.eventsQueue.queueArn],
      }),
    );
  }

  // A role of our own instead of the AWS managed basic execution policy: it writes its own log group only.
  private roleAndLogs(
    name: string,
    retention?: logs.RetentionDays,
  ): { role: iam.Role; logGroup: logs.LogGroup } {
    const role = new iam.Role(this, `${name}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `afluente ${name.toLowerCase()} function`,
    });
    const logGroup = new logs.LogGroup(this, `${name}Logs`, {
      retention: retention ?? logs.RetentionDays.THREE_MONTHS,
      // Invocation logs, not audit data: they go with the stack.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    logGroup.grantWrite(role);
    return { role, logGroup };
  }
}

/** AFLUENTE_LAMBDA_FUNCTIONS: `ingest=<function name>,validate=<function name>`. */
export function functionNames(functions: PipelineFunctions): string {
  return `ingest=${functions.ingest.functionName},validate=${functions.validate.functionName}`;
}
