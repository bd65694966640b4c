import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as redshift from 'aws-cdk-lib/aws-redshiftserverless';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledgeManagedPolicy, acknowledgeWildcardResources } from '../nag.ts';

/** The id under the stack of the Lambda behind every AwsCustomResource (CDK's singleton uuid). */
const AWS_CUSTOM_RESOURCE_SINGLETON = 'AWS679f53fac002430cb0da5b7982bd2287';
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
 * (COPY reaches S3 through the VPC's gateway endpoint), audit logs to CloudWatch. The Spark load on EMR connects
 * with IAM (GetCredentials); the embedded load in the worker connects as the admin, with the password Redshift
 * manages in Secrets Manager (`adminSecret`).
 */
export class Warehouse extends Construct {
  readonly namespace: redshift.CfnNamespace;
  readonly workgroup: redshift.CfnWorkgroup;
  readonly key: kms.Key;
  /** The role Redshift COPY assumes to read `curated/` (AFLUENTE_WAREHOUSE_COPY_ROLE_ARN). */
  readonly copyRole: iam.Role;
  readonly securityGroup: ec2.SecurityGroup;
  /**
   * The admin's credentials (fields `username` and `password`), the secret Redshift creates and manages for the
   * namespace (`manageAdminPassword`). CloudFormation returns no ARN for it, so a custom resource reads it with
   * GetNamespace at deploy.
   */
  readonly adminSecret: secretsmanager.ISecret;
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
      // It admits what `admit` is given: the EMR clusters and the worker service (the embedded load). The text
      // stays as it was first deployed: a new description replaces the group under the running workgroup.
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

    const lookup = {
      service: 'RedshiftServerless',
      action: 'getNamespace',
      parameters: { namespaceName: name },
      physicalResourceId: cr.PhysicalResourceId.of(`${name}-admin-secret`),
      // Only this field comes back (a custom resource's response is limited to 4 KB).
      outputPaths: ['namespace.adminPasswordSecretArn'],
    };
    const adminSecretArn = new cr.AwsCustomResource(this, 'AdminSecretArn', {
      onCreate: lookup,
      onUpdate: lookup,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({
          actions: ['redshift-serverless:GetNamespace'],
          resources: [this.namespace.attrNamespaceNamespaceArn],
        }),
      ]),
      // The Lambda runtime's SDK: no download at deploy.
      installLatestAwsSdk: false,
    });
    adminSecretArn.node.addDependency(this.namespace);
    acknowledgeLookupHandler(this);
    this.adminSecret = secretsmanager.Secret.fromSecretCompleteArn(
      this,
      'AdminSecret',
      adminSecretArn.getResponseField('namespace.adminPasswordSecretArn'),
    );
  }

  /** The workgroup's endpoint host. */
  get endpointAddress(): string {
    return this.workgroup.attrWorkgroupEndpointAddress;
  }

  /** Lets a peer (the EMR clusters' security group, the worker service) connect on the warehouse port. */
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

// AwsCustomResource's handler is a CDK-maintained singleton Lambda of the stack: its runtime and role are CDK's.
function acknowledgeLookupHandler(scope: Construct): void {
  const handler = Stack.of(scope).node.tryFindChild(AWS_CUSTOM_RESOURCE_SINGLETON);
  if (!handler) throw new Error('the AwsCustomResource handler is not where CDK puts it');
  acknowledgeManagedPolicy(
    handler,
    'service-role/AWSLambdaBasicExecutionRole',
    'CDK gives its AwsCustomResource handler the basic execution policy; the handler only writes its own logs with it.',
  );
}
