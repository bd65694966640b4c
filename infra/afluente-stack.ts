import { CfnOutput, Duration, Fn, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../contract/metrics.ts';
import { EmrSupport } from './constructs/emr.ts';
import { JobQueue } from './constructs/job-queue.ts';
import { DELETE_OBJECT, LAKE_PREFIXES, Lake, READ_OBJECT, WRITE_OBJECT } from './constructs/lake.ts';
import { LogArchive } from './constructs/log-archive.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { Network } from './constructs/network.ts';
import { functionNames, PipelineFunctions } from './constructs/pipeline-functions.ts';
import { AfluenteService } from './constructs/service.ts';
import { SparkArtifacts } from './constructs/spark-artifacts.ts';
import { StateDatabase } from './constructs/state-database.ts';
import { Warehouse } from './constructs/warehouse.ts';
import { acknowledgeWildcardResources } from './nag.ts';
import { EMBEDDED_BUDGET, type AfluenteSettings } from './settings.ts';

export interface AfluenteStackProps extends StackProps {
  /** The context flags (settings.ts), as afluente-app.ts read them. Required. */
  readonly settings: AfluenteSettings;
}

/** The whole deployment: every part, wired to the others, and the service's configuration. */
export class AfluenteStack extends Stack {
  readonly network: Network;
  readonly logs: LogArchive;
  readonly lake: Lake;
  readonly artifacts: SparkArtifacts;
  readonly state: StateDatabase;
  readonly queue: JobQueue;
  readonly functions: PipelineFunctions;
  readonly warehouse: Warehouse;
  readonly emr: EmrSupport;
  readonly service: AfluenteService;
  readonly monitoring: Monitoring;
  private readonly zones: string[] | undefined;

  constructor(scope: Construct, id: string, props: AfluenteStackProps) {
    super(scope, id, props);
    const { settings } = props;
    this.zones = settings.availabilityZones;
    const retainData = settings.retainData;
    const keep = retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const prefix = settings.stackName.toLowerCase();

    this.network = new Network(this, 'Network', {
      natGateways: settings.natGateways,
      interfaceEndpoints: settings.interfaceEndpoints,
      removalPolicy: keep,
    });
    const { vpc, appSubnets, dataSubnets } = this.network;
    this.logs = new LogArchive(this, 'Logs', { retainData });
    this.lake = new Lake(this, 'Lake', { accessLogsBucket: this.logs.bucket, retainData });
    this.artifacts = new SparkArtifacts(this, 'Artifacts', {
      accessLogsBucket: this.logs.bucket,
      retainData,
    });
    this.state = new StateDatabase(this, 'State', {
      vpc,
      subnets: dataSubnets,
      rotationSubnets: appSubnets,
      namePrefix: prefix,
      retainData,
    });
    this.queue = new JobQueue(this, 'Queue', { vpc, subnets: dataSubnets, retainData });
    this.functions = new PipelineFunctions(this, 'Functions', {
      lake: this.lake,
      sourceSecrets: settings.sourceSecrets,
    });
    this.warehouse = new Warehouse(this, 'Warehouse', {
      vpc,
      subnets: dataSubnets,
      lake: this.lake,
      name: prefix,
      retainData,
    });
    this.emr = new EmrSupport(this, 'Emr', {
      vpc,
      subnets: appSubnets,
      lake: this.lake,
      artifacts: this.artifacts,
      logsBucket: this.logs.bucket,
      warehouse: this.warehouse,
      ...(settings.emrTlsCertificatesUri ? { tlsCertificatesUri: settings.emrTlsCertificatesUri } : {}),
      ...(settings.emrClusterId ? { clusterId: settings.emrClusterId } : {}),
    });
    this.warehouse.admit(this.emr.securityGroup, 'EMR clusters: the load step');

    this.service = new AfluenteService(this, 'Service', {
      vpc,
      clientCidr: this.network.cidr,
      subnets: appSubnets,
      environment: this.serviceEnvironment(),
      secrets: {
        AFLUENTE_MYSQL_PASSWORD: ecs.Secret.fromSecretsManager(this.state.secret, 'password'),
        AFLUENTE_REDIS_PASSWORD: ecs.Secret.fromSecretsManager(this.queue.authToken),
      },
      workerEnvironment: this.embeddedEnvironment(settings),
      // The embedded load logs in as the URL's user, the admin; the Spark load on EMR uses IAM instead.
      workerSecrets: {
        AFLUENTE_WAREHOUSE_PASSWORD: ecs.Secret.fromSecretsManager(this.warehouse.adminSecret, 'password'),
      },
      worker: {
        cpu: settings.workerCpu,
        memoryMiB: settings.workerMemoryMiB,
        ephemeralStorageGiB: settings.workerEphemeralStorageGiB,
      },
      accessLogsBucket: this.logs.bucket,
      logRemovalPolicy: keep,
      ...(settings.certificateArn ? { certificateArn: settings.certificateArn } : {}),
    });
    for (const service of [this.service.api, this.service.worker]) {
      const name = service.node.id.toLowerCase();
      this.state.allowFrom(service, `afluente ${name} service`);
      this.queue.allowFrom(service, `afluente ${name} service`);
    }
    // The embedded load runs in the worker: COPY from curated/ (as the COPY role) and the merge, over 5439.
    this.warehouse.admit(this.service.worker, 'afluente worker service: the embedded load');
    const { taskRole } = this.service;
    // The service reads every layer's manifests and parts (rejects included), writes the step specs and the
    // validate manifest, and checks for keys with HeadObject. The worker's embedded steps go through the same
    // grants: their inputs (validated/, curated/) are staged in, their outputs (curated/, steps/) uploaded.
    this.lake.grantObjects(taskRole, [...READ_OBJECT, ...WRITE_OBJECT, ...DELETE_OBJECT], LAKE_PREFIXES);
    this.lake.grantList(taskRole);
    acknowledgeWildcardResources(
      taskRole,
      LAKE_PREFIXES.map((prefix) => this.lake.objectsUnder(prefix)),
      'The service reads manifests and parts of every layer, and writes step specs, under per-run keys: prefix patterns only.',
    );
    this.lake.grantKey(taskRole);
    this.functions.grantInvoke(taskRole);
    this.functions.grantConsumeEvents(taskRole);
    this.emr.grantStepControl(taskRole);

    this.monitoring = new Monitoring(this, 'Monitoring', {
      ingest: this.functions.ingest,
      validate: this.functions.validate,
      eventsQueue: this.functions.eventsQueue,
      deadLetterQueue: this.functions.deadLetterQueue,
      targetGroup: this.service.targetGroup,
      api: this.service.api,
      worker: this.service.worker,
      runDeadline: Duration.hours(settings.runDeadlineHours),
      keyRemovalPolicy: keep,
      ...(settings.alarmEmail ? { alarmEmail: settings.alarmEmail } : {}),
    });

    // What an operator needs after a deploy (infra/README.md, "After the first deploy").
    const outputs: Record<string, [string, string]> = {
      ApiUrl: [
        `${settings.certificateArn ? 'https' : 'http'}://${this.service.loadBalancer.loadBalancerDnsName}`,
        'The internal API endpoint (from inside the VPC)',
      ],
      ApiTokensSecret: [this.service.apiTokens.secretArn, 'Bearer tokens for the API, field token'],
      EmrTlsCertificatesUri: [
        settings.emrTlsCertificatesUri ?? this.artifacts.defaultTlsCertificatesUri,
        'Upload the EMR in-transit encryption PEM zip here',
      ],
      EmrInstanceRole: [this.emr.instanceRole.roleName, 'The warehouse load logs in as IAMR:<this role>'],
      WarehouseEndpoint: [this.warehouse.endpointAddress, 'Redshift Serverless workgroup endpoint'],
      WarehouseAdminSecret: [
        this.warehouse.adminSecret.secretArn,
        'The admin credentials Redshift manages; the worker gets the password (the embedded load)',
      ],
      Dashboard: [this.monitoring.dashboard.dashboardName, 'The CloudWatch dashboard'],
    };
    for (const [id, [value, description]] of Object.entries(outputs))
      new CfnOutput(this, id, { value, description });
  }

  /**
   * Three zones for the VPC (Redshift Serverless needs subnets in three). Without explicit zones this is
   * `Fn::GetAZs`, resolved by CloudFormation at deploy: synth needs no AWS lookup, and so no credentials.
   */
  override get availabilityZones(): string[] {
    return this.zones ?? [0, 1, 2].map((i) => Fn.select(i, Fn.getAzs()));
  }

  /**
   * The worker's embedded engine settings (service/config/env.ts). Its venv, code and temp folder are the
   * image's (the Dockerfile's ENV); the temp folder is on the task's ephemeral storage.
   */
  private embeddedEnvironment(settings: AfluenteSettings): Record<string, string> {
    return {
      AFLUENTE_EMBEDDED_MAX_BYTES: String(settings.embeddedMaxBytes),
      AFLUENTE_EMBEDDED_MEMORY_LIMIT: `${settings.embeddedMemoryLimitMiB}MiB`,
      AFLUENTE_EMBEDDED_THREADS: String(settings.embeddedThreads),
      // The memory and disk budget the settings checked counts on this many steps at once per task.
      AFLUENTE_WORKER_CONCURRENCY: String(EMBEDDED_BUDGET.stepsPerTask),
    };
  }

  /** The service's plain settings (service/config/env.ts); secrets go through ECS secrets instead. */
  private serviceEnvironment(): Record<string, string> {
    const { state, queue, lake, functions, artifacts, emr, warehouse } = this;
    const instance = state.instance;
    return {
      AFLUENTE_HOST: '0.0.0.0',
      AFLUENTE_TRUST_PROXY: 'true',
      // No password in the URL: it arrives as AFLUENTE_MYSQL_PASSWORD.
      AFLUENTE_MYSQL_URL: `mysql://${state.username}@${instance.dbInstanceEndpointAddress}:${instance.dbInstanceEndpointPort}/${state.databaseName}`,
      AFLUENTE_MYSQL_TLS: 'rds',
      AFLUENTE_REDIS_URL: `rediss://${queue.endpointAddress}:${queue.port}`,
      AFLUENTE_LAKE_URI: `s3://${lake.bucket.bucketName}`,
      AFLUENTE_LAMBDA_INVOKER: 'aws',
      AFLUENTE_LAMBDA_FUNCTIONS: functionNames(functions),
      AFLUENTE_LAMBDA_MEMORY_MB: String(functions.memoryMb),
      AFLUENTE_EVENTS_QUEUE_URL: functions.eventsQueue.queueUrl,
      AFLUENTE_STEP_RUNNER: 'emr',
      AFLUENTE_EMR_SCRIPTS_URI: artifacts.scriptsUri,
      AFLUENTE_EMR_SERVICE_ROLE: emr.serviceRole.roleName,
      AFLUENTE_EMR_JOB_FLOW_ROLE: emr.instanceProfile.instanceProfileName,
      AFLUENTE_EMR_LOG_URI: emr.logUri,
      AFLUENTE_EMR_SUBNET_ID: emr.subnetId,
      AFLUENTE_EMR_SECURITY_CONFIGURATION: emr.securityConfigurationName,
      AFLUENTE_EMR_SECURITY_GROUP: emr.securityGroup.securityGroupId,
      AFLUENTE_EMR_RELEASE_LABEL: emr.releaseLabel,
      ...(emr.clusterId ? { AFLUENTE_EMR_CLUSTER_ID: emr.clusterId } : {}),
      // No password: the load logs in with IAM (jdbc:redshift:iam://), as the EMR instance role.
      AFLUENTE_WAREHOUSE_URL: `redshift://${warehouse.adminUsername}@${warehouse.endpointAddress}:${warehouse.port}/${warehouse.databaseName}`,
      AFLUENTE_WAREHOUSE_COPY_ROLE_ARN: warehouse.copyRole.roleArn,
      AFLUENTE_METRICS_EMF: 'true',
      AFLUENTE_METRICS_NAMESPACE: METRICS_NAMESPACE,
      AFLUENTE_MIGRATE_ON_START: 'true',
    };
  }
}
