import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { SECURE_BUCKET } from './secure-bucket.ts';

export interface LogArchiveProps {
  /**
   * Days after which log objects move to S3 Standard-IA (they are read rarely, and only when something broke).
   * @default 30
   */
  readonly infrequentAccessAfterDays?: number;
  /**
   * Days after which log objects are deleted; undefined keeps them.
   * @default - kept
   */
  readonly expireAfterDays?: number;
  /**
   * Keep the bucket when it leaves the stack; when false it is emptied and deleted.
   * @default true
   */
  readonly retainData?: boolean;
}

/** Key prefixes in the log bucket, one per writer. */
export const LOG_PREFIX = {
  /** S3 server access logs, then `<bucket purpose>/`. */
  s3: 's3-access/',
  alb: 'alb',
  emr: 'emr',
} as const;

/**
 * The bucket every access log goes to: S3 server access logs of the other buckets, ALB access logs and EMR
 * cluster logs. It uses S3-managed keys (SSE-S3) because neither S3 server access logging nor ALB access logs
 * can write to a bucket whose default encryption is SSE-KMS.
 */
export class LogArchive extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: LogArchiveProps = {}) {
    super(scope, id);
    const retain = props.retainData ?? true;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      ...SECURE_BUCKET,
      lifecycleRules: [
        {
          id: 'age-out-logs',
          transitions: [
            {
              storageClass: s3.StorageClass.INFREQUENT_ACCESS,
              transitionAfter: Duration.days(props.infrequentAccessAfterDays ?? 30),
            },
          ],
          ...(props.expireAfterDays === undefined
            ? {}
            : { expiration: Duration.days(props.expireAfterDays) }),
        },
      ],
      removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      autoDeleteObjects: !retain,
    });
  }
}
