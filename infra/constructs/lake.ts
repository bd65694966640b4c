import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { Layer } from '../../contract/lake-layout.ts';
import { LOG_PREFIX } from './log-archive.ts';
import { SECURE_BUCKET } from './secure-bucket.ts';

export interface LakeProps {
  /** The bucket the lake's server access logs go to. */
  readonly accessLogsBucket: s3.IBucket;
  /**
   * Days after which objects under `raw/` move to S3 Standard-IA (S3's minimum is 30).
   * @default 30
   */
  readonly rawInfrequentAccessAfterDays?: number;
  /**
   * Days after which objects under `raw/` move to S3 Glacier Flexible Retrieval. From then on a raw part can no
   * longer be re-validated without a restore.
   * @default 90
   */
  readonly rawGlacierAfterDays?: number;
  /**
   * Days a superseded object version is kept: a retried stage overwrites its keys, and versioning keeps what it
   * overwrote for this long.
   * @default 30
   */
  readonly noncurrentVersionExpirationDays?: number;
  /**
   * Keep the bucket and its key when they leave the stack; when false the bucket is emptied and deleted.
   * @default true
   */
  readonly retainData?: boolean;
}

/** Prefixes outside the layers that the service and the Spark steps use (contract/steps.ts: `steps/…`). */
export type LakePrefix = Layer | 'steps';
export const LAKE_PREFIXES: LakePrefix[] = ['raw', 'validated', 'rejected', 'curated', 'steps'];

/**
 * The data lake bucket (contract/lake-layout.ts) and the KMS key that encrypts it. The key is also what EMR
 * encrypts with and what Redshift's COPY role decrypts with.
 */
export class Lake extends Construct {
  readonly bucket: s3.Bucket;
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: LakeProps) {
    super(scope, id);
    const retain = props.retainData ?? true;
    const toIa = props.rawInfrequentAccessAfterDays ?? 30;
    const toGlacier = props.rawGlacierAfterDays ?? 90;
    if (toIa < 30) throw new Error(`rawInfrequentAccessAfterDays must be at least 30 (S3), got ${toIa}`);
    if (toGlacier <= toIa)
      throw new Error(
        `rawGlacierAfterDays (${toGlacier}) must come after rawInfrequentAccessAfterDays (${toIa})`,
      );

    const removalPolicy = retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    this.key = new kms.Key(this, 'Key', {
      description: 'afluente lake: S3 objects, EMR local disks and EMRFS writes',
      enableKeyRotation: true,
      removalPolicy,
    });
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      // One data key per bucket instead of one KMS call per object: the parts are many and small.
      bucketKeyEnabled: true,
      ...SECURE_BUCKET,
      versioned: true,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: `${LOG_PREFIX.s3}lake/`,
      lifecycleRules: [
        {
          id: 'raw-to-cold-storage',
          prefix: 'raw/',
          transitions: [
            { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(toIa) },
            { storageClass: s3.StorageClass.GLACIER, transitionAfter: Duration.days(toGlacier) },
          ],
        },
        {
          id: 'expire-superseded-versions',
          noncurrentVersionExpiration: Duration.days(props.noncurrentVersionExpirationDays ?? 30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy,
      autoDeleteObjects: !retain,
    });
  }

  /** The ARN pattern of the objects under one top-level prefix, e.g. `arn:…:bucket/raw/*`. */
  objectsUnder(prefix: LakePrefix): string {
    return this.bucket.arnForObjects(`${prefix}/*`);
  }

  /**
   * Lets a principal list keys: under these prefixes only (ListObjectsV2 with a Prefix), or anywhere. Only the
   * unconditional grant makes HeadObject/GetObject of a missing key answer 404 instead of 403, which is what
   * `exists` checks (the service) and Hadoop's S3 file system (EMR) rely on.
   */
  grantList(grantee: iam.IGrantable, prefixes?: LakePrefix[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        ...(prefixes ? { conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}/*`) } } } : {}),
      }),
    );
  }

  /** SSE-KMS through S3: decrypt what it reads, generate data keys for what it writes. */
  grantKey(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [this.key.keyArn],
      }),
    );
  }

  /** Object actions on the keys under each prefix (explicit actions: no `s3:*Object*` wildcards). */
  grantObjects(grantee: iam.IGrantable, actions: string[], prefixes: LakePrefix[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions, resources: prefixes.map((p) => this.objectsUnder(p)) }),
    );
  }
}

/** What reading an object needs. */
export const READ_OBJECT = ['s3:GetObject'];
/** What writing an object needs, multipart included (lib-storage uploads big parts in pieces). */
export const WRITE_OBJECT = ['s3:PutObject', 's3:AbortMultipartUpload'];
/** Deleting (DeleteObjects checks s3:DeleteObject per key). */
export const DELETE_OBJECT = ['s3:DeleteObject'];
