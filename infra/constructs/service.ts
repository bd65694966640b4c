import { Duration, RemovalPolicy, Size } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { METRIC, METRICS_NAMESPACE } from '../../contract/metrics.ts';
import { acknowledge, acknowledgeWildcardResources } from '../nag.ts';
import { REPO_ROOT } from '../paths.ts';
import { LOG_PREFIX } from './log-archive.ts';

/** Tasks of one of the two services. */
export interface ServiceSizing {
  /** vCPU units (1024 = 1 vCPU). */
  readonly cpu: number;
  /** Task memory, MiB (a valid Fargate pairing with `cpu`). */
  readonly memoryMiB: number;
  /** Tasks always running (also the desired count at deploy). */
  readonly minTasks: number;
  /** The most tasks autoscaling may run. */
  readonly maxTasks: number;
  /**
   * Ephemeral storage per task, GiB (21 to 200; it holds the image's layers too).
   * @default - Fargate's 20 GiB
   */
  readonly ephemeralStorageGiB?: number;
}

export interface AfluenteServiceProps {
  /** The VPC of the tasks and the load balancer. Required. */
  readonly vpc: ec2.IVpc;
  /** The address range the internal ALB admits clients from (the VPC's, as a literal). */
  readonly clientCidr: string;
  /** Where the tasks and the internal ALB run. */
  readonly subnets: ec2.SubnetSelection;
  /** The plain (non-secret) environment both services share; AFLUENTE_ROLES is set per service. */
  readonly environment: Record<string, string>;
  /** Secrets from Secrets Manager, by environment variable name (never plain environment). */
  readonly secrets: Record<string, ecs.Secret>;
  /**
   * Plain environment only the worker gets, on top of `environment` (the embedded engine's settings).
   * @default {}
   */
  readonly workerEnvironment?: Record<string, string>;
  /**
   * Secrets only the worker gets, on top of `secrets` (the warehouse password of the embedded load).
   * @default {}
   */
  readonly workerSecrets?: Record<string, ecs.Secret>;
  /** Where the ALB writes its access logs (under `alb/`). */
  readonly accessLogsBucket: s3.IBucket;
  /**
   * An ACM certificate for an HTTPS listener on 443; without one the internal ALB listens on HTTP 80.
   * @default - HTTP
   */
  readonly certificateArn?: string;
  /**
   * The image both services run.
   * @default the repo Dockerfile's `runtime` stage, built for linux/amd64
   */
  readonly image?: ecs.ContainerImage;
  /**
   * The `api` service (AFLUENTE_ROLES=api,scheduler) behind the ALB; what is given replaces the default.
   * @default { cpu: 512, memoryMiB: 1024, minTasks: 2, maxTasks: 6 }
   */
  readonly api?: Partial<ServiceSizing>;
  /**
   * The `worker` service (AFLUENTE_ROLES=worker); what is given replaces the default. Its tasks also run the
   * embedded engine's steps (DuckDB, in child processes): memory for their DuckDB memory limits, disk for their
   * staging, spill and output.
   * @default { cpu: 2048, memoryMiB: 8192, minTasks: 2, maxTasks: 12, ephemeralStorageGiB: 60 }
   */
  readonly worker?: Partial<ServiceSizing>;
  /**
   * Average CPU both services scale to.
   * @default 60
   */
  readonly cpuTargetPercent?: number;
  /**
   * Stage jobs waiting (Afluente/QueueWaiting) at which the worker adds a task; five times this adds three.
   * @default 10
   */
  readonly queueScaleOutThreshold?: number;
  /**
   * How long the services' logs are kept.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the log group when it leaves the stack (it holds the audit trail of API calls).
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/** The port the service listens on in the container (AFLUENTE_PORT). */
export const SERVICE_PORT = 8080;
/** The service's own drain on SIGTERM (AFLUENTE_SHUTDOWN_GRACE_MS). */
export const SHUTDOWN_GRACE = Duration.seconds(25);
/**
 * SIGTERM to SIGKILL. The service drains for SHUTDOWN_GRACE and needs up to 10 s more to close its
 * connections; the rest is margin. ECS deregisters from the target group (deregistration delay) before SIGTERM.
 */
export const STOP_TIMEOUT = Duration.seconds(60);
const DEREGISTRATION_DELAY = Duration.seconds(30);
export const HEALTH_PATH = '/health/ready';

const API_DEFAULTS: ServiceSizing = { cpu: 512, memoryMiB: 1024, minTasks: 2, maxTasks: 6 };
const WORKER_DEFAULTS: ServiceSizing = {
  cpu: 2048,
  memoryMiB: 8192,
  minTasks: 2,
  maxTasks: 12,
  ephemeralStorageGiB: 60,
};

/**
 * The afluente service on ECS Fargate: one image, two services. `api` (HTTP API and scheduler) sits behind an
 * internal ALB; `worker` runs the stage jobs. Both scale on CPU, the worker also on the queue's depth.
 */
export class AfluenteService extends Construct {
  readonly cluster: ecs.Cluster;
  readonly api: ecs.FargateService;
  readonly worker: ecs.FargateService;
  /** Shared by both services: the AWS calls the service makes (the stack adds the grants). */
  readonly taskRole: iam.Role;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** AFLUENTE_API_TOKENS: a generated bearer token in field `token`. */
  readonly apiTokens: secretsmanager.Secret;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: AfluenteServiceProps) {
    super(scope, id);
    if (STOP_TIMEOUT.toSeconds() < SHUTDOWN_GRACE.toSeconds() + 10)
      throw new Error('the stop timeout must leave the service its shutdown grace plus 10 s');

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENHANCED,
    });
    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'afluente service tasks (api and worker)',
    });
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.apiTokens = new secretsmanager.Secret(this, 'ApiTokens', {
      description: 'afluente API bearer tokens (AFLUENTE_API_TOKENS): field token, [label=]token[,…]',
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'token',
        excludePunctuation: true,
        passwordLength: 48,
      },
    });
    acknowledge(
      this.apiTokens,
      'SMG4',
      'API tokens are handed to API clients; an automatic rotation would lock them out, so operators rotate them by hand (infra/README.md).',
    );

    const image =
      props.image ??
      ecs.ContainerImage.fromAsset(REPO_ROOT, { target: 'runtime', platform: Platform.LINUX_AMD64 });
    const secrets = {
      ...props.secrets,
      AFLUENTE_API_TOKENS: ecs.Secret.fromSecretsManager(this.apiTokens, 'token'),
    };
    const environment = {
      ...props.environment,
      AFLUENTE_PORT: String(SERVICE_PORT),
      AFLUENTE_SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE.toMilliseconds()),
    };
    const task = (
      name: string,
      roles: string,
      sizing: ServiceSizing,
      own: {
        environment?: Record<string, string>;
        secrets?: Record<string, ecs.Secret>;
        /** An init process as PID 1 that forwards signals to node and reaps orphaned child processes. */
        init?: boolean;
      } = {},
    ): ecs.FargateTaskDefinition => {
      const definition = new ecs.FargateTaskDefinition(this, `${name}Task`, {
        cpu: sizing.cpu,
        memoryLimitMiB: sizing.memoryMiB,
        ...(sizing.ephemeralStorageGiB ? { ephemeralStorageGiB: sizing.ephemeralStorageGiB } : {}),
        taskRole: this.taskRole,
        runtimePlatform: {
          cpuArchitecture: ecs.CpuArchitecture.X86_64,
          operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        },
      });
      definition.addContainer('service', {
        image,
        essential: true,
        environment: { ...environment, ...own.environment, AFLUENTE_ROLES: roles },
        secrets: { ...secrets, ...own.secrets },
        ...(own.init
          ? { linuxParameters: new ecs.LinuxParameters(this, `${name}Linux`, { initProcessEnabled: true }) }
          : {}),
        portMappings: [{ containerPort: SERVICE_PORT }],
        // The Dockerfile's HEALTHCHECK, spelled out: ECS ignores the image's own.
        healthCheck: {
          command: [
            'CMD',
            'node',
            '-e',
            `fetch('http://127.0.0.1:${SERVICE_PORT}${HEALTH_PATH}').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
          ],
          interval: Duration.seconds(15),
          timeout: Duration.seconds(5),
          retries: 3,
          // Migrations run at start (AFLUENTE_MIGRATE_ON_START).
          startPeriod: Duration.seconds(60),
        },
        stopTimeout: STOP_TIMEOUT,
        logging: ecs.LogDrivers.awsLogs({
          logGroup: this.logGroup,
          streamPrefix: name.toLowerCase(),
          // A slow CloudWatch must not stall the event loop; the buffer rides out bursts (EMF lines included).
          mode: ecs.AwsLogDriverMode.NON_BLOCKING,
          maxBufferSize: Size.mebibytes(25),
        }),
      });
      acknowledge(
        definition,
        'ECS2',
        'Only non-secret settings are plain environment; every password and token is an ECS secret from Secrets Manager (the infra tests assert this).',
      );
      return definition;
    };

    const apiSizing = { ...API_DEFAULTS, ...props.api };
    const workerSizing = { ...WORKER_DEFAULTS, ...props.worker };
    const service = (name: string, definition: ecs.FargateTaskDefinition, sizing: ServiceSizing) =>
      new ecs.FargateService(this, name, {
        cluster: this.cluster,
        taskDefinition: definition,
        desiredCount: sizing.minTasks,
        vpcSubnets: props.subnets,
        securityGroups: [
          new ec2.SecurityGroup(this, `${name}SecurityGroup`, {
            vpc: props.vpc,
            description: `afluente ${name.toLowerCase()} tasks`,
            allowAllOutbound: true,
          }),
        ],
        minHealthyPercent: 100,
        maxHealthyPercent: 200,
        circuitBreaker: { enable: true, rollback: true },
        propagateTags: ecs.PropagatedTagSource.SERVICE,
        enableECSManagedTags: true,
      });
    this.api = service('Api', task('Api', 'api,scheduler', apiSizing), apiSizing);
    this.worker = service(
      'Worker',
      task('Worker', 'worker', workerSizing, {
        // The embedded engine's steps are child processes of node (compose's `init: true`, on ECS).
        init: true,
        ...(props.workerEnvironment ? { environment: props.workerEnvironment } : {}),
        ...(props.workerSecrets ? { secrets: props.workerSecrets } : {}),
      }),
      workerSizing,
    );

    // Internal only: reached from inside the VPC (or a peered network), never from the internet.
    const albSecurityGroup = new ec2.SecurityGroup(this, 'AlbSecurityGroup', {
      vpc: props.vpc,
      description: 'afluente internal ALB: HTTP(S) from inside the VPC',
      allowAllOutbound: false,
    });
    const listenerPort = props.certificateArn ? 443 : 80;
    albSecurityGroup.addIngressRule(
      ec2.Peer.ipv4(props.clientCidr),
      ec2.Port.tcp(listenerPort),
      'clients inside the VPC',
    );
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      internetFacing: false,
      securityGroup: albSecurityGroup,
      dropInvalidHeaderFields: true,
    });
    this.loadBalancer.logAccessLogs(props.accessLogsBucket, LOG_PREFIX.alb);

    this.targetGroup = new elbv2.ApplicationTargetGroup(this, 'ApiTargets', {
      vpc: props.vpc,
      port: SERVICE_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targetType: elbv2.TargetType.IP,
      // In-flight API requests are short; the drain of queued work happens after, on SIGTERM.
      deregistrationDelay: DEREGISTRATION_DELAY,
      healthCheck: {
        path: HEALTH_PATH,
        healthyHttpCodes: '200',
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    });
    this.targetGroup.addTarget(this.api);
    this.loadBalancer.addListener('Listener', {
      port: listenerPort,
      open: false,
      ...(props.certificateArn
        ? {
            protocol: elbv2.ApplicationProtocol.HTTPS,
            certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
            sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
          }
        : { protocol: elbv2.ApplicationProtocol.HTTP }),
      defaultTargetGroups: [this.targetGroup],
    });

    const cpuTarget = props.cpuTargetPercent ?? 60;
    const apiScaling = this.api.autoScaleTaskCount({
      minCapacity: apiSizing.minTasks,
      maxCapacity: apiSizing.maxTasks,
    });
    apiScaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: cpuTarget });
    const workerScaling = this.worker.autoScaleTaskCount({
      minCapacity: workerSizing.minTasks,
      maxCapacity: workerSizing.maxTasks,
    });
    workerScaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: cpuTarget });
    // Stage jobs mostly wait on Lambda and EMR, so CPU says little about the backlog; the queue says it.
    // With CPU target tracking next to it, Application Auto Scaling scales in only when both agree.
    const threshold = props.queueScaleOutThreshold ?? 10;
    workerScaling.scaleOnMetric('QueueDepth', {
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: METRIC.queueWaiting,
        statistic: cloudwatch.Stats.MAXIMUM,
        period: Duration.minutes(1),
      }),
      scalingSteps: [
        { upper: 0, change: -1 },
        { lower: threshold, change: +1 },
        { lower: threshold * 5, change: +3 },
      ],
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      cooldown: Duration.minutes(3),
      evaluationPeriods: 2,
    });

    this.acknowledgeExecutionRoles();
  }

  // CDK's execution roles pull the image from the bootstrap ECR repository: GetAuthorizationToken has no
  // resource scope.
  private acknowledgeExecutionRoles(): void {
    for (const service of [this.api, this.worker]) {
      const role = service.taskDefinition.executionRole;
      if (role)
        acknowledgeWildcardResources(
          role,
          ['*'],
          'ecr:GetAuthorizationToken, which ECS needs to pull the image, supports no resource scope (the pull itself is scoped to the repository).',
        );
    }
  }
}
