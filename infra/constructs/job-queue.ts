import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';

export interface JobQueueProps {
  /** The VPC of the nodes and of their clients. Required. */
  readonly vpc: ec2.IVpc;
  /** Where the nodes live. */
  readonly subnets: ec2.SubnetSelection;
  /**
   * The node type. BullMQ keeps jobs small; the queue rarely holds more than a few thousand.
   * @default 'cache.t4g.small'
   */
  readonly nodeType?: string;
  /**
   * Replicas of the primary, each in another zone (automatic failover needs at least one).
   * @default 1
   */
  readonly replicas?: number;
  /**
   * The port; not 6379, so a scan for the default finds nothing.
   * @default 6380
   */
  readonly port?: number;
  /**
   * Days of daily snapshots.
   * @default 1
   */
  readonly snapshotRetentionDays?: number;
  /**
   * How long the slow log is kept.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Keep the replication group and its AUTH token when they leave the stack.
   * @default true
   */
  readonly retainData?: boolean;
}

/**
 * The BullMQ queues' store: ElastiCache for Valkey 8 (Redis OSS compatible), Multi-AZ with automatic failover,
 * TLS in transit, encrypted at rest, and AUTH with a token generated into Secrets Manager.
 */
export class JobQueue extends Construct {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  /** The AUTH token (a plain secret string). */
  readonly authToken: secretsmanager.Secret;
  readonly securityGroup: ec2.SecurityGroup;
  readonly port: number;
  /** The primary endpoint's host name. */
  readonly endpointAddress: string;

  constructor(scope: Construct, id: string, props: JobQueueProps) {
    super(scope, id);
    const retain = props.retainData ?? true;
    const removalPolicy = retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    this.port = props.port ?? 6380;

    // ElastiCache accepts printable ASCII without space, " / @ in a token: letters and digits only is safe.
    this.authToken = new secretsmanager.Secret(this, 'AuthToken', {
      description: 'afluente queue: ElastiCache AUTH token',
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
      removalPolicy,
    });
    acknowledge(
      this.authToken,
      'SMG4',
      'ElastiCache AUTH tokens rotate through ModifyReplicationGroup (ROTATE then SET), which no Secrets Manager rotation template does; rotate by hand per infra/README.md.',
    );

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'afluente queue (ElastiCache): admits the ECS services only',
      allowAllOutbound: false,
    });
    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'Subnets', {
      description: 'afluente queue subnets',
      subnetIds: props.vpc.selectSubnets(props.subnets).subnetIds,
    });
    const parameters = new elasticache.CfnParameterGroup(this, 'Parameters', {
      cacheParameterGroupFamily: 'valkey8',
      description: 'afluente queue: never evict',
      // BullMQ loses jobs under eviction: a full store must refuse writes (the service sees the error) rather
      // than silently drop a queued job or its lock.
      properties: { 'maxmemory-policy': 'noeviction' },
    });
    const slowLog = new logs.LogGroup(this, 'SlowLog', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy,
    });

    this.replicationGroup = new elasticache.CfnReplicationGroup(this, 'ReplicationGroup', {
      replicationGroupDescription: `${Stack.of(this).stackName} BullMQ queues`,
      engine: 'valkey',
      engineVersion: '8.0',
      cacheNodeType: props.nodeType ?? 'cache.t4g.small',
      numCacheClusters: 1 + (props.replicas ?? 1),
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      port: this.port,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [this.securityGroup.securityGroupId],
      cacheParameterGroupName: parameters.ref,
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      atRestEncryptionEnabled: true,
      authToken: this.authToken.secretValue.unsafeUnwrap(),
      snapshotRetentionLimit: props.snapshotRetentionDays ?? 1,
      autoMinorVersionUpgrade: true,
      logDeliveryConfigurations: [
        {
          destinationType: 'cloudwatch-logs',
          destinationDetails: { cloudWatchLogsDetails: { logGroup: slowLog.logGroupName } },
          logFormat: 'json',
          logType: 'slow-log',
        },
      ],
    });
    this.replicationGroup.applyRemovalPolicy(removalPolicy);
    this.endpointAddress = this.replicationGroup.attrPrimaryEndPointAddress;
  }

  /** The only way in: a peer (the ECS services) on the queue's port. */
  allowFrom(peer: ec2.IConnectable, description: string): void {
    this.securityGroup.connections.allowFrom(peer, ec2.Port.tcp(this.port), description);
  }
}
