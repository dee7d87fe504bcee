/**
 * GetBucketEncryption, PutBucketEncryption, DeleteBucketEncryption. A bucket's default encryption is the
 * proxy's (it encrypts; the store only keeps ciphertext), and the proxy keeps no state: every replica must
 * apply the same default without reading anything. So it lives in the configuration
 * (SSEC_PROXY_BUCKET_ENCRYPTION): GetBucketEncryption answers it as S3 would, and changing it by a request is
 * refused, saying where it is set.
 */
import { S3Error } from '../s3/errors.ts';
import { objectPath } from '../s3/operation.ts';
import { xmlEscape } from '../s3/xml.ts';
import { bucketEncryptionOf } from '../sse-kms/bucket-encryption.ts';
import { sendXml, upstreamRequest, type BucketContext } from '../context.ts';

export async function bucketEncryption(ctx: BucketContext): Promise<void> {
  const { bucket } = ctx.s3;
  if (ctx.req.method === 'PUT' || ctx.req.method === 'DELETE') {
    throw new S3Error(
      'NotImplemented',
      "This endpoint's bucket encryption is set in its configuration (SSEC_PROXY_BUCKET_ENCRYPTION) and cannot be changed by a request.",
    );
  }
  if (ctx.req.method !== 'GET') throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  // The bucket must exist (and be the client's to see), as S3 checks.
  await using head = await upstreamRequest(ctx, { method: 'HEAD', path: objectPath(bucket) });
  if (head.statusCode === 404) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { extra: { BucketName: bucket } });
  if (head.statusCode === 403) throw new S3Error('AccessDenied', 'Access Denied');
  if (head.statusCode >= 300) throw new S3Error('ServiceUnavailable', 'The upstream store failed. Please retry.', { status: 503 });
  const policy = bucketEncryptionOf(ctx.config.bucketEncryption, bucket);
  if (policy.kind !== 'sse-s3' && policy.kind !== 'sse-kms') {
    throw new S3Error('ServerSideEncryptionConfigurationNotFoundError', 'The server side encryption configuration was not found', {
      extra: { BucketName: bucket },
    });
  }
  const rule =
    policy.kind === 'sse-s3'
      ? '<SSEAlgorithm>AES256</SSEAlgorithm>'
      : `<SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>${xmlEscape(policy.keyId)}</KMSMasterKeyID>`;
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>' +
    `<ApplyServerSideEncryptionByDefault>${rule}</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled>` +
    '</Rule></ServerSideEncryptionConfiguration>';
  return sendXml(ctx, 200, xml);
}
