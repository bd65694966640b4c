import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as redshift from 'aws-cdk-lib/aws-redshiftserverless';
import { Construct } from 'constructs';
import { acknowledgeWildcardResources } from '../nag.ts';
import { READ_OBJECT, type Lake } from './lake.ts';

export interface WarehouseProps {
  /** The VPC of the workgroup and of its clients. Required. */
  readonly vpc: ec2.IVpc;
  /** Three or more subnets in three zones (a Redshift Serverless requirement). */
  readonly subnets: ec2.SubnetSelection;
  /** The lake whose `curated/` Parquet the load COPYs. */
  readonly lake: Lake;
  /**
   * Lower-case name of the namespace and the workgroup (unique per account and region).
   * @default 'afluente'
   */
  readonly name?: string;
  /**
   * The database the load writes to.
   * @default 'afluente'
   */
  readonly databaseName?: string;
  /**
   * The admin user (its password is generated and kept in Secrets Manager by Redshift).
   * @default 'afluente_admin'
   */
  readonly adminUsername?: string;
  /**
   * Base capacity in Redshift Processing Units.
   * @default 8
   */
  readonly baseCapacity?: number;
  /**
   * Keep the namespace (the data) and its key when they leave the stack.
   * @default true
   */
  readonly retainData?: boolean;
}

/**
 * The warehouse: Redshift Serverless in the isolated subnets, KMS-encrypted, TLS required, enhanced VPC routing
 * (COPY reaches S3 through the VPC's gateway endpoint), audit logs to CloudWatch. The load connects with IAM
 * (GetCredentials), so no database password leaves Redshift.
 */
export class Warehouse extends Construct {
  readonly namespace: redshift.CfnNamespace;
  readonly workgroup: redshift.CfnWorkgroup;
  readonly key: kms.Key;
  /** The role Redshift COPY assumes to read `curated/` (AFLUENTE_WAREHOUSE_COPY_ROLE_ARN). */
  readonly copyRole: iam.Role;
  readonly securityGroup: ec2.SecurityGroup;
  readonly databaseName: string;
  readonly adminUsername: string;
  readonly port = 5439;

  constructor(scope: Construct, id: string, props: WarehouseProps) {
    super(scope, id);
    const retain = props.retainData ?? true;
    const removalPolicy = retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    const name = props.name ?? 'afluente';
    this.databaseName = props.databaseName ?? 'afluente';
    this.adminUsername = props.adminUsername ?? 'afluente_admin';

    this.key = new kms.Key(this, 'Key', {
      description: 'afluente warehouse: Redshift Serverless namespace',
      enableKeyRotation: true,
      removalPolicy,
    });

    this.copyRole = new iam.Role(this, 'CopyRole', {
      assumedBy: new iam.ServicePrincipal('redshift.amazonaws.com'),
      description: 'afluente warehouse: COPY reads the curated Parquet from the lake',
    });
    const { lake } = props;
    lake.grantObjects(this.copyRole, READ_OBJECT, ['curated']);
    lake.grantList(this.copyRole, ['curated']);
    this.copyRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:GetBucketLocation'], resources: [lake.bucket.bucketArn] }),
    );
    // COPY only reads: decrypt, never generate.
    this.copyRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [lake.key.keyArn] }),
    );
    acknowledgeWildcardResources(
      this.copyRole,
      [lake.objectsUnder('curated')],
      'COPY reads the Parquet files of each run under curated/<table>/dt=<d>/run=<id>/, so the grant is the curated/ prefix.',
    );

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'afluente warehouse (Redshift Serverless): admits the EMR clusters only',
      // Enhanced VPC routing sends COPY's S3 reads through the VPC; the isolated subnets reach only endpoints.
      allowAllOutbound: true,
    });

    this.namespace = new redshift.CfnNamespace(this, 'Namespace', {
      namespaceName: name,
      dbName: this.databaseName,
      adminUsername: this.adminUsername,
      manageAdminPassword: true,
      kmsKeyId: this.key.keyArn,
      iamRoles: [this.copyRole.roleArn],
      defaultIamRoleArn: this.copyRole.roleArn,
      logExports: ['userlog', 'connectionlog', 'useractivitylog'],
    });
    this.namespace.applyRemovalPolicy(removalPolicy);

    this.workgroup = new redshift.CfnWorkgroup(this, 'Workgroup', {
      workgroupName: name,
      namespaceName: this.namespace.namespaceName,
      baseCapacity: props.baseCapacity ?? 8,
      port: this.port,
      publiclyAccessible: false,
      enhancedVpcRouting: true,
      subnetIds: props.vpc.selectSubnets(props.subnets).subnetIds,
      securityGroupIds: [this.securityGroup.securityGroupId],
      configParameters: [
        { parameterKey: 'require_ssl', parameterValue: 'true' },
        // useractivitylog holds nothing unless this is on.
        { parameterKey: 'enable_user_activity_logging', parameterValue: 'true' },
      ],
    });
    this.workgroup.node.addDependency(this.namespace);
  }

  /** The workgroup's endpoint host. */
  get endpointAddress(): string {
    return this.workgroup.attrWorkgroupEndpointAddress;
  }

  /** Lets a peer (the EMR clusters' security group) connect on the warehouse port. */
  admit(peer: ec2.IConnectable, description: string): void {
    this.securityGroup.connections.allowFrom(peer, ec2.Port.tcp(this.port), description);
  }

  /** Lets a principal log in with IAM (the Redshift JDBC driver's `jdbc:redshift:iam://` URL). */
  grantIamLogin(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['redshift-serverless:GetCredentials', 'redshift-serverless:GetWorkgroup'],
        resources: [this.workgroup.attrWorkgroupWorkgroupArn],
      }),
    );
  }
}
