import { aws_s3 as s3 } from 'aws-cdk-lib';

/**
 * What every afluente bucket has, whatever it holds: no public access, TLS 1.2 or later only (cdk-nag's S10),
 * and the bucket owner owning every object (no ACLs). Each bucket adds its own encryption, logging and lifecycle.
 */
export const SECURE_BUCKET = {
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  enforceSSL: true,
  minimumTLSVersion: 1.2,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
} as const satisfies s3.BucketProps;
