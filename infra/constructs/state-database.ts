import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';

export interface StateDatabaseProps {
  /** The VPC of the instance and of its clients. Required. */
  readonly vpc: ec2.IVpc;
  /** Where the instance lives. */
  readonly subnets: ec2.SubnetSelection;
  /** Where the rotation Lambda runs: it needs the Secrets Manager API as well as the database. */
  readonly rotationSubnets: ec2.SubnetSelection;
  /**
   * Lower-case prefix of the instance identifier, which also names its log groups.
   * @default 'afluente'
   */
  readonly namePrefix?: string;
  /**
   * The instance class; the state is small (runs, jobs, events), so a burstable Graviton class fits.
   * @default db.t4g.medium
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * Initial storage, GiB.
   * @default 20
   */
  readonly allocatedStorageGiB?: number;
  /**
   * The most storage autoscaling may grow to, GiB.
   * @default 100
   */
  readonly maxAllocatedStorageGiB?: number;
  /**
   * Days of automated backups (point-in-time recovery).
   * @default 7
   */
  readonly backupRetentionDays?: number;
  /**
   * The MySQL port; not 3306, so a scan for the default finds nothing.
   * @default 3307
   */
  readonly port?: number;
  /**
   * Days between password rotations.
   * @default 30
   */
  readonly rotationDays?: number;
  /**
   * How long the exported MySQL logs are kept.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Keep the instance (deletion protection on) and its logs when they leave the stack.
   * @default true
   */
  readonly retainData?: boolean;
}

/** MySQL logs exported to CloudWatch Logs. */
const LOG_EXPORTS = ['error', 'slowquery'];

/** The service's state: RDS for MySQL 8.4, Multi-AZ, TLS-only, password in Secrets Manager with rotation. */
export class StateDatabase extends Construct {
  readonly instance: rds.DatabaseInstance;
  /** The generated credentials; the service reads field `password`. */
  readonly secret: secretsmanager.ISecret;
  readonly username = 'afluente';
  readonly databaseName = 'afluente';

  constructor(scope: Construct, id: string, props: StateDatabaseProps) {
    super(scope, id);
    const retain = props.retainData ?? true;
    const removalPolicy = retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const engine = rds.DatabaseInstanceEngine.mysql({ version: rds.MysqlEngineVersion.VER_8_4_10 });
    // An explicit identifier, so the log groups RDS exports into can exist first, with a retention.
    const identifier = `${props.namePrefix ?? 'afluente'}-state`;

    const parameterGroup = new rds.ParameterGroup(this, 'Parameters', {
      engine,
      description: 'afluente state: TLS only, slow queries logged',
      parameters: { require_secure_transport: 'ON', slow_query_log: '1', long_query_time: '2' },
    });
    const logGroups = LOG_EXPORTS.map(
      (log) =>
        new logs.LogGroup(this, `${log}Logs`, {
          logGroupName: `/aws/rds/instance/${identifier}/${log}`,
          retention: props.logRetention ?? logs.RetentionDays.ONE_YEAR,
          removalPolicy,
        }),
    );

    this.instance = new rds.DatabaseInstance(this, 'Instance', {
      engine,
      instanceIdentifier: identifier,
      instanceType: props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      port: props.port ?? 3307,
      databaseName: this.databaseName,
      credentials: rds.Credentials.fromGeneratedSecret(this.username),
      parameterGroup,
      multiAz: true,
      storageEncrypted: true,
      storageType: rds.StorageType.GP3,
      allocatedStorage: props.allocatedStorageGiB ?? 20,
      maxAllocatedStorage: props.maxAllocatedStorageGiB ?? 100,
      backupRetention: Duration.days(props.backupRetentionDays ?? 7),
      deletionProtection: retain,
      removalPolicy,
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      cloudwatchLogsExports: LOG_EXPORTS,
      autoMinorVersionUpgrade: true,
      publiclyAccessible: false,
    });
    for (const group of logGroups) this.instance.node.addDependency(group);
    if (!retain) {
      acknowledge(
        this.instance,
        'RDS10',
        'Only with afluente:retainData=false, which asks for a throwaway stack whose database is deleted along with it.',
      );
    }
    if (!this.instance.secret) throw new Error('the generated credentials produced no secret');
    this.secret = this.instance.secret;

    // Running tasks keep the password they started with, and new connections fail once it rotates: the
    // README's runbook restarts the services after a rotation (or on the RotationSucceeded event).
    this.instance.addRotationSingleUser({
      automaticallyAfter: Duration.days(props.rotationDays ?? 30),
      vpcSubnets: props.rotationSubnets,
    });
  }

  /** The only way in: the security group admits a peer (the ECS services) on the MySQL port. */
  allowFrom(peer: ec2.IConnectable, description: string): void {
    this.instance.connections.allowDefaultPortFrom(peer, description);
  }
}
