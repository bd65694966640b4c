import { Aws, Stack, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as emr from 'aws-cdk-lib/aws-emr';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeManagedPolicy, acknowledgeWildcardResources } from '../nag.ts';
import { DELETE_OBJECT, READ_OBJECT, WRITE_OBJECT, type Lake } from './lake.ts';
import { LOG_PREFIX } from './log-archive.ts';
import { TLS_CERTIFICATES_KEY, type SparkArtifacts } from './spark-artifacts.ts';
import type { Warehouse } from './warehouse.ts';

/** What the service does to a cluster's steps: submit, find again after a restart, poll, cancel. */
const STEP_ACTIONS = [
  'elasticmapreduce:AddJobFlowSteps',
  'elasticmapreduce:DescribeStep',
  'elasticmapreduce:ListSteps',
  'elasticmapreduce:CancelSteps',
  'elasticmapreduce:DescribeCluster',
];

export interface EmrSupportProps {
  /** The VPC the clusters run in. Required. */
  readonly vpc: ec2.IVpc;
  /** Where transient clusters run (AFLUENTE_EMR_SUBNET_ID is the first of these). */
  readonly subnets: ec2.SubnetSelection;
  /** The lake the steps read and write, and whose key encrypts S3 writes and local disks. Required. */
  readonly lake: Lake;
  /** Where the jobs (and by default the TLS certificates) are. Required. */
  readonly artifacts: SparkArtifacts;
  /** The bucket EMR writes cluster and step logs to, under `emr/`. */
  readonly logsBucket: s3.IBucket;
  /** The warehouse the load step logs in to with IAM. Required. */
  readonly warehouse: Warehouse;
  /**
   * The PEM certificates zip for in-transit encryption, as `s3://bucket/key.zip`; the operator uploads it.
   * @default `s3://<artifacts bucket>/emr/tls/certs.zip`
   */
  readonly tlsCertificatesUri?: string;
  /**
   * An existing cluster every step runs on (AFLUENTE_EMR_CLUSTER_ID); without one each run starts a transient
   * cluster with the roles and settings below.
   * @default - transient clusters
   */
  readonly clusterId?: string;
  /**
   * The EMR release of transient clusters (AFLUENTE_EMR_RELEASE_LABEL).
   * @default 'emr-7.5.0'
   */
  readonly releaseLabel?: string;
}

/** The tag AmazonEMRServicePolicy_v2 requires on every subnet and security group a cluster uses. */
const EMR_MANAGED_TAG = 'for-use-with-amazon-emr-managed-policies';
/** The tag the service puts on the clusters it starts (service/steps/emr-runner.ts), and the IAM scope. */
export const CLUSTER_TAG = { key: 'app', value: 'afluente' } as const;

/**
 * What the service needs to run Spark steps on EMR: the service role, the instance role and profile, a security
 * configuration (encryption at rest and in transit), a log location, and a security group the warehouse admits.
 * The clusters themselves are started by the service, one per run (or an existing one is used).
 */
export class EmrSupport extends Construct {
  readonly serviceRole: iam.Role;
  readonly instanceRole: iam.Role;
  readonly instanceProfile: iam.InstanceProfile;
  readonly securityConfiguration: emr.CfnSecurityConfiguration;
  /** Added to the clusters' instances; the warehouse admits it. */
  readonly securityGroup: ec2.SecurityGroup;
  readonly subnetId: string;
  readonly logUri: string;
  readonly releaseLabel: string;
  readonly clusterId: string | undefined;

  constructor(scope: Construct, id: string, props: EmrSupportProps) {
    super(scope, id);
    const { lake, artifacts, logsBucket } = props;
    this.releaseLabel = props.releaseLabel ?? 'emr-7.5.0';
    this.clusterId = props.clusterId;
    this.logUri = `s3://${logsBucket.bucketName}/${LOG_PREFIX.emr}`;
    const subnets = props.vpc.selectSubnets(props.subnets);
    const first = subnets.subnetIds[0];
    if (!first) throw new Error('EMR needs at least one subnet');
    this.subnetId = first;
    for (const subnet of subnets.subnets) Tags.of(subnet).add(EMR_MANAGED_TAG, 'true');

    this.securityGroup = new ec2.SecurityGroup(this, 'ClusterSecurityGroup', {
      vpc: props.vpc,
      description: 'afluente EMR clusters: the extra group the warehouse admits (EMR manages the others)',
      allowAllOutbound: true,
    });
    Tags.of(this.securityGroup).add(EMR_MANAGED_TAG, 'true');

    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'afluente EMR instances: the Spark steps',
    });
    this.instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role: this.instanceRole });

    // The steps (spark/): split_tables reads validated/ and writes curated/; load_warehouse reads curated/
    // manifests; both read their spec and write their result under steps/.
    lake.grantObjects(this.instanceRole, READ_OBJECT, ['validated', 'curated', 'steps']);
    lake.grantObjects(this.instanceRole, [...WRITE_OBJECT, ...DELETE_OBJECT], ['curated', 'steps']);
    lake.grantList(this.instanceRole);
    artifacts.grantReadScripts(this.instanceRole);
    props.warehouse.grantIamLogin(this.instanceRole);
    this.instanceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [logsBucket.arnForObjects(`${LOG_PREFIX.emr}/*`)],
      }),
    );
    const tls = tlsObject(props.tlsCertificatesUri, artifacts);
    this.instanceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [tls.arn] }),
    );
    // EMRFS (SSE-KMS) and the LUKS local-disk keys both use the lake key.
    this.instanceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [
          'kms:Encrypt',
          'kms:Decrypt',
          'kms:ReEncryptFrom',
          'kms:ReEncryptTo',
          'kms:GenerateDataKey',
          'kms:GenerateDataKeyWithoutPlaintext',
          'kms:DescribeKey',
        ],
        resources: [lake.key.keyArn],
      }),
    );

    const { account, region, partition } = Stack.of(this);
    this.serviceRole = new iam.Role(this, 'ServiceRole', {
      assumedBy: new iam.ServicePrincipal('elasticmapreduce.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': account },
          ArnLike: { 'aws:SourceArn': `arn:${partition}:elasticmapreduce:${region}:${account}:*` },
        },
      }),
      description: 'afluente EMR service role',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonEMRServicePolicy_v2')],
    });
    // The v2 policy passes only EMR_EC2_DefaultRole; ours must be named.
    this.serviceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.instanceRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      }),
    );
    // Encrypted EBS volumes (EnableEbsEncryption) are created by the service role with grants on the key.
    this.serviceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'],
        resources: [lake.key.keyArn],
        conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      }),
    );
    this.serviceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:DescribeKey'],
        resources: [lake.key.keyArn],
      }),
    );

    this.securityConfiguration = new emr.CfnSecurityConfiguration(this, 'SecurityConfiguration', {
      securityConfiguration: {
        EncryptionConfiguration: {
          EnableAtRestEncryption: true,
          EnableInTransitEncryption: true,
          AtRestEncryptionConfiguration: {
            S3EncryptionConfiguration: { EncryptionMode: 'SSE-KMS', AwsKmsKey: lake.key.keyArn },
            LocalDiskEncryptionConfiguration: {
              EncryptionKeyProviderType: 'AwsKms',
              AwsKmsKey: lake.key.keyArn,
              EnableEbsEncryption: true,
            },
          },
          InTransitEncryptionConfiguration: {
            TLSCertificateConfiguration: { CertificateProviderType: 'PEM', S3Object: tls.uri },
          },
        },
      },
    });

    acknowledgeManagedPolicy(
      this.serviceRole,
      'service-role/AmazonEMRServicePolicy_v2',
      'AmazonEMRServicePolicy_v2 is the AWS-maintained EMR service policy; it acts only on resources tagged for-use-with-amazon-emr-managed-policies.',
    );
    acknowledgeWildcardResources(
      this.instanceRole,
      [
        lake.objectsUnder('validated'),
        lake.objectsUnder('curated'),
        lake.objectsUnder('steps'),
        artifacts.bucket.arnForObjects('spark/*'),
        logsBucket.arnForObjects(`${LOG_PREFIX.emr}/*`),
      ],
      'Spark steps read and write per-run keys under lake prefixes, fetch the jobs under spark/, and push logs under emr/: prefix patterns only.',
    );
  }

  /** The security configuration's name (AFLUENTE_EMR_SECURITY_CONFIGURATION). */
  get securityConfigurationName(): string {
    return this.securityConfiguration.ref;
  }

  /**
   * Lets the service run its steps: start tagged transient clusters (unless an existing one is configured),
   * add, watch and cancel steps, and terminate the clusters it started. Everything but the create and the list
   * is limited to clusters tagged app=afluente, and PassRole to the two EMR roles.
   */
  grantStepControl(grantee: iam.IGrantable): void {
    const principal = grantee.grantPrincipal;
    const { account, region, partition } = Stack.of(this);
    const clusters = `arn:${partition}:elasticmapreduce:${region}:${account}:cluster/*`;
    const tagged = { StringEquals: { [`aws:ResourceTag/${CLUSTER_TAG.key}`]: CLUSTER_TAG.value } };
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [...STEP_ACTIONS, 'elasticmapreduce:TerminateJobFlows'],
        resources: [clusters],
        conditions: tagged,
      }),
    );
    // ListClusters has no resource-level permissions; the service lists to find a run's cluster by name.
    principal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['elasticmapreduce:ListClusters'], resources: ['*'] }),
    );
    const wildcards = [clusters, '*'];
    if (this.clusterId) {
      // The configured cluster was not started by the service and may lack the tag.
      const existing = `arn:${partition}:elasticmapreduce:${region}:${account}:cluster/${this.clusterId}`;
      principal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: STEP_ACTIONS,
          resources: [existing],
        }),
      );
    } else {
      // Create only with the tag (tag-on-create needs AddTags), so everything above covers what it starts.
      const requestTag = { StringEquals: { [`aws:RequestTag/${CLUSTER_TAG.key}`]: CLUSTER_TAG.value } };
      principal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['elasticmapreduce:RunJobFlow', 'elasticmapreduce:AddTags'],
          resources: [clusters],
          conditions: requestTag,
        }),
      );
      principal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['iam:PassRole'],
          resources: [this.serviceRole.roleArn, this.instanceRole.roleArn],
        }),
      );
    }
    if (principal instanceof iam.Role) {
      acknowledgeWildcardResources(
        principal,
        wildcards,
        'EMR cluster ids are created per run, so cluster actions use cluster/* narrowed by the app=afluente tag condition; ListClusters supports no resource scope.',
      );
    }
  }
}

/** The certificates zip as a URI and an object ARN. */
function tlsObject(uri: string | undefined, artifacts: SparkArtifacts): { uri: string; arn: string } {
  if (uri === undefined) {
    return {
      uri: artifacts.defaultTlsCertificatesUri,
      arn: artifacts.bucket.arnForObjects(TLS_CERTIFICATES_KEY),
    };
  }
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new Error(`the TLS certificates URI must look like s3://bucket/key.zip, got ${uri}`);
  return { uri, arn: `arn:${Aws.PARTITION}:s3:::${match[1]}/${match[2]}` };
}
