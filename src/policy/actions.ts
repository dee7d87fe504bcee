/**
 * A classified request → what AWS authorizes it as: IAM action and resource ARN per bucket concerned (a copy is
 * s3:PutObject on its destination and s3:GetObject on its source), and the value of the SSE-C condition key,
 * which AWS puts in the context of s3:PutObject requests only (Service Authorization Reference).
 */
import { parseCopySource } from '../s3/copy-source.ts';
import { queryGet, queryHas, type S3Request } from '../s3/operation.ts';
import type { PolicyRequest } from './evaluate.ts';

export interface PolicyCheck extends Omit<PolicyRequest, 'anonymous'> {
  readonly bucket: string;
}

/** Operations AWS authorizes as s3:PutObject on the object written. */
const PUT_OBJECT = new Set(['PutObject', 'CopyObject', 'CreateMultipartUpload', 'UploadPart', 'UploadPartCopy', 'CompleteMultipartUpload', 'PostObject']);

/** Bucket subresource → actions for GET, PUT, DELETE (POST ?delete is DeleteObjects). */
const BUCKET_SUBRESOURCES: Record<string, [get: string, put: string, del: string]> = {
  policy: ['GetBucketPolicy', 'PutBucketPolicy', 'DeleteBucketPolicy'],
  acl: ['GetBucketAcl', 'PutBucketAcl', 'PutBucketAcl'],
  versioning: ['GetBucketVersioning', 'PutBucketVersioning', 'PutBucketVersioning'],
  lifecycle: ['GetLifecycleConfiguration', 'PutLifecycleConfiguration', 'PutLifecycleConfiguration'],
  cors: ['GetBucketCORS', 'PutBucketCORS', 'PutBucketCORS'],
  tagging: ['GetBucketTagging', 'PutBucketTagging', 'PutBucketTagging'],
  encryption: ['GetEncryptionConfiguration', 'PutEncryptionConfiguration', 'PutEncryptionConfiguration'],
  website: ['GetBucketWebsite', 'PutBucketWebsite', 'DeleteBucketWebsite'],
  notification: ['GetBucketNotification', 'PutBucketNotification', 'PutBucketNotification'],
  replication: ['GetReplicationConfiguration', 'PutReplicationConfiguration', 'PutReplicationConfiguration'],
  logging: ['GetBucketLogging', 'PutBucketLogging', 'PutBucketLogging'],
  'object-lock': ['GetBucketObjectLockConfiguration', 'PutBucketObjectLockConfiguration', 'PutBucketObjectLockConfiguration'],
  ownershipControls: ['GetBucketOwnershipControls', 'PutBucketOwnershipControls', 'PutBucketOwnershipControls'],
  publicAccessBlock: ['GetBucketPublicAccessBlock', 'PutBucketPublicAccessBlock', 'PutBucketPublicAccessBlock'],
  requestPayment: ['GetBucketRequestPayment', 'PutBucketRequestPayment', 'PutBucketRequestPayment'],
  accelerate: ['GetAccelerateConfiguration', 'PutAccelerateConfiguration', 'PutAccelerateConfiguration'],
  location: ['GetBucketLocation', 'GetBucketLocation', 'GetBucketLocation'],
};

/** Object subresource → actions for GET, PUT, DELETE. */
const OBJECT_SUBRESOURCES: Record<string, [get: string, put: string, del: string]> = {
  tagging: ['GetObjectTagging', 'PutObjectTagging', 'DeleteObjectTagging'],
  acl: ['GetObjectAcl', 'PutObjectAcl', 'PutObjectAcl'],
  retention: ['GetObjectRetention', 'PutObjectRetention', 'PutObjectRetention'],
  'legal-hold': ['GetObjectLegalHold', 'PutObjectLegalHold', 'PutObjectLegalHold'],
  torrent: ['GetObjectTorrent', 'GetObjectTorrent', 'GetObjectTorrent'],
};

/** Operations the proxy never denies, so that a policy only the proxy enforces can always be read and replaced. */
export const POLICY_ACTIONS = new Set(['s3:GetBucketPolicy', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy']);

export function policyChecks(method: string, s3: S3Request, headers: Record<string, string | string[] | undefined>): PolicyCheck[] {
  if (s3.bucket === undefined) return [];
  const bucket = s3.bucket;
  const bucketArn = `arn:aws:s3:::${bucket}`;
  const versioned = (name: string) => `s3:${name}${queryHas(s3.query, 'versionId') ? 'Version' : ''}`;
  const check = (action: string, resource: string, ssecAlgorithm?: string): PolicyCheck => ({ bucket, action, resource, ssecAlgorithm });
  if (s3.key === undefined) {
    switch (s3.op) {
      case 'ListObjects':
      case 'ListObjectsV2':
        return [check('s3:ListBucket', bucketArn)];
      case 'ListObjectVersions':
        return [check('s3:ListBucketVersions', bucketArn)];
      case 'ListMultipartUploads':
        return [check('s3:ListBucketMultipartUploads', bucketArn)];
      case 'PostObject':
        return []; // its fields come with the body: handlers/post.ts checks once it has them
      default: {
        if (method === 'POST' && queryHas(s3.query, 'delete')) return [{ ...check('s3:DeleteObject', `${bucketArn}/*`), anyKeyOf: bucket }];
        const sub = s3.query.map(([k]) => k).find((k) => k in BUCKET_SUBRESOURCES);
        const i = method === 'PUT' ? 1 : method === 'DELETE' ? 2 : 0;
        if (sub) return [check(`s3:${BUCKET_SUBRESOURCES[sub]![i]}`, bucketArn)];
        if (s3.query.length === 0) {
          const plain = method === 'PUT' ? 'CreateBucket' : method === 'DELETE' ? 'DeleteBucket' : 'ListBucket';
          return [check(`s3:${plain}`, bucketArn)];
        }
        return [check('s3:UnknownBucketOperation', bucketArn)];
      }
    }
  }
  const objectArn = `${bucketArn}/${s3.key}`;
  if (PUT_OBJECT.has(s3.op)) {
    const algorithm = headers['x-amz-server-side-encryption-customer-algorithm'];
    const checks = [check('s3:PutObject', objectArn, typeof algorithm === 'string' ? algorithm : undefined)];
    const source = headers['x-amz-copy-source'];
    if ((s3.op === 'CopyObject' || s3.op === 'UploadPartCopy') && typeof source === 'string') {
      const from = parseCopySource(source);
      checks.push({ bucket: from.bucket, action: from.versionId ? 's3:GetObjectVersion' : 's3:GetObject', resource: `arn:aws:s3:::${from.bucket}/${from.key}`, ssecAlgorithm: undefined });
    }
    return checks;
  }
  switch (s3.op) {
    case 'GetObject':
    case 'HeadObject':
      return [check(versioned('GetObject'), objectArn)];
    case 'DeleteObject':
      return [check(versioned('DeleteObject'), objectArn)];
    case 'AbortMultipartUpload':
      return [check('s3:AbortMultipartUpload', objectArn)];
    case 'ListParts':
      return [check('s3:ListMultipartUploadParts', objectArn)];
    case 'GetObjectAttributes':
      return [check(versioned('GetObjectAttributes'), objectArn)];
    default: {
      const sub = s3.query.map(([k]) => k).find((k) => k in OBJECT_SUBRESOURCES);
      const i = method === 'PUT' ? 1 : method === 'DELETE' ? 2 : 0;
      if (sub) {
        // GetObjectVersionTagging, PutObjectVersionAcl…: the version-specific actions of tagging and ACLs.
        const name = OBJECT_SUBRESOURCES[sub]![i]!;
        const version = queryGet(s3.query, 'versionId') !== undefined && (sub === 'tagging' || sub === 'acl');
        return [check(`s3:${version ? name.replace('Object', 'ObjectVersion') : name}`, objectArn)];
      }
      if (queryHas(s3.query, 'restore')) return [check('s3:RestoreObject', objectArn)];
      if (queryHas(s3.query, 'select')) return [check('s3:GetObject', objectArn)];
      return [check('s3:UnknownObjectOperation', objectArn)];
    }
  }
}
