import { DefaultStackSynthesizer, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct, type IConstruct } from 'constructs';
import { join } from 'node:path';
import {
  acknowledge,
  acknowledgeManagedPolicy,
  acknowledgeWildcardActions,
  acknowledgeWildcardResources,
} from '../nag.ts';
import { REPO_ROOT } from '../paths.ts';
import { sparkBundling } from '../spark-bundling.ts';
import { LOG_PREFIX } from './log-archive.ts';
import { SECURE_BUCKET } from './secure-bucket.ts';

export interface SparkArtifactsProps {
  /** The bucket the artifacts bucket's server access logs go to. */
  readonly accessLogsBucket: s3.IBucket;
  /**
   * The folder with package.py, the two jobs and the afluente_spark package.
   * @default `<repo>/spark`
   */
  readonly sparkDir?: string;
  /**
   * Keep the bucket when it leaves the stack; when false it is emptied and deleted.
   * @default true
   */
  readonly retainData?: boolean;
}

/** Where the jobs go: AFLUENTE_EMR_SCRIPTS_URI is `s3://<bucket>/spark`. */
export const SCRIPTS_PREFIX = 'spark';
/** Where an operator uploads the PEM zip for EMR in-transit encryption by default (infra/README.md). */
export const TLS_CERTIFICATES_KEY = 'emr/tls/certs.zip';

/**
 * The bucket EMR reads the Spark jobs from, and the deployment that uploads them: split_tables.py,
 * load_warehouse.py and afluente_spark.zip under `spark/`, built at synth by spark/package.py.
 */
export class SparkArtifacts extends Construct {
  readonly bucket: s3.Bucket;
  /** `s3://<bucket>/spark`, available only once the deployment has uploaded the jobs. */
  readonly scriptsUri: string;
  /** The default location of EMR's TLS certificates zip. */
  readonly defaultTlsCertificatesUri: string;

  constructor(scope: Construct, id: string, props: SparkArtifactsProps) {
    super(scope, id);
    const retain = props.retainData ?? true;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      // Code and the operator's TLS bundle; readable only by roles granted below, so S3-managed keys suffice.
      encryption: s3.BucketEncryption.S3_MANAGED,
      ...SECURE_BUCKET,
      versioned: true,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: `${LOG_PREFIX.s3}artifacts/`,
      lifecycleRules: [{ id: 'expire-old-jobs', noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      autoDeleteObjects: !retain,
    });

    const sparkDir = props.sparkDir ?? join(REPO_ROOT, 'spark');
    const deployment = new s3deploy.BucketDeployment(this, 'Jobs', {
      sources: [
        s3deploy.Source.asset(sparkDir, {
          bundling: sparkBundling(sparkDir, REPO_ROOT),
          exclude: ['tests', 'dist', '**/__pycache__', '.pytest_cache'],
        }),
      ],
      destinationBucket: this.bucket,
      // `prune` only touches this prefix, so the operator's emr/tls/ upload is never deleted.
      destinationKeyPrefix: `${SCRIPTS_PREFIX}/`,
    });
    this.scriptsUri = `s3://${deployment.deployedBucket.bucketName}/${SCRIPTS_PREFIX}`;
    this.defaultTlsCertificatesUri = `s3://${this.bucket.bucketName}/${TLS_CERTIFICATES_KEY}`;
    acknowledgeDeploymentHandler(deployment, this.bucket);
  }

  /** Lets EMR instances read the jobs (spark-submit fetches them through EMRFS, which also lists). */
  grantReadScripts(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [this.bucket.arnForObjects(`${SCRIPTS_PREFIX}/*`)],
      }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${SCRIPTS_PREFIX}/*`] } },
      }),
    );
  }
}

// BucketDeployment's handler is a CDK-maintained singleton: its runtime, role and grants are CDK's.
function acknowledgeDeploymentHandler(deployment: s3deploy.BucketDeployment, bucket: s3.IBucket): void {
  const role = deployment.handlerRole;
  const handler = role.node.scope as IConstruct;
  acknowledge(
    handler,
    'L1',
    'The BucketDeployment handler is a CDK-managed singleton Lambda whose Python runtime CDK pins and upgrades.',
  );
  acknowledgeManagedPolicy(
    role,
    'service-role/AWSLambdaBasicExecutionRole',
    'CDK attaches the basic execution policy to its BucketDeployment handler; it only writes the handler logs.',
  );
  acknowledgeWildcardActions(
    role,
    ['s3:GetObject*', 's3:GetBucket*', 's3:List*', 's3:DeleteObject*', 's3:Abort*'],
    'CDK grants the BucketDeployment handler read on its asset and read-write on the artifacts bucket it syncs.',
  );
  acknowledgeWildcardResources(
    role,
    [bucket.arnForObjects('*')],
    'The deployment handler syncs objects under spark/ and CDK scopes its write grant to the whole bucket.',
  );
  // The CDK bootstrap bucket the asset zip is read from, named the way the default synthesizer names it.
  const stack = Stack.of(deployment);
  const qualifier = stack.synthesizer.bootstrapQualifier ?? DefaultStackSynthesizer.DEFAULT_QUALIFIER;
  acknowledgeWildcardResources(
    role,
    [`arn:${stack.partition}:s3:::cdk-${qualifier}-assets-${stack.account}-${stack.region}/*`],
    'CDK grants its deployment handler read on the bootstrap asset bucket, whose object key changes with every build of the jobs.',
  );
}
