/**
 * Typed S3 errors. Every failure a client can see is an S3Error with AWS's code, status and message;
 * `toXml` is the one place they are rendered. Lower layers (format/, sigv4/) throw their own error kinds
 * and the edge maps them here (see `fromUnknown`).
 */

export type S3ErrorCode =
  | 'AccessDenied'
  | 'AuthorizationHeaderMalformed'
  | 'AuthorizationQueryParametersError'
  | 'BadDigest'
  | 'EntityTooLarge'
  | 'EntityTooSmall'
  | 'ExpiredToken'
  | 'IncompleteBody'
  | 'InternalError'
  | 'InvalidAccessKeyId'
  | 'InvalidArgument'
  | 'InvalidBucketName'
  | 'InvalidDigest'
  | 'InvalidEncryptionAlgorithmError'
  | 'InvalidPart'
  | 'InvalidPartNumber'
  | 'InvalidPartOrder'
  | 'InvalidRange'
  | 'InvalidRequest'
  | 'InvalidURI'
  | 'KeyTooLongError'
  | 'MalformedXML'
  | 'MalformedPolicy'
  | 'MalformedPOSTRequest'
  | 'InvalidPolicyDocument'
  | 'MethodNotAllowed'
  | 'MissingContentLength'
  | 'MissingSecurityHeader'
  | 'NoSuchBucket'
  | 'NoSuchBucketPolicy'
  | 'NoSuchKey'
  | 'NoSuchUpload'
  | 'NotImplemented'
  | 'NotModified'
  | 'PreconditionFailed'
  | 'RequestHeaderSectionTooLarge'
  | 'RequestTimeTooSkewed'
  | 'ServiceUnavailable'
  | 'SignatureDoesNotMatch'
  | 'SlowDown'
  | 'RequestTimeout'
  | 'MaxPostPreDataLengthExceeded'
  | 'XAmzContentSHA256Mismatch'
  | 'BadGateway'
  | 'GatewayTimeout'
  | 'ServerSideEncryptionConfigurationNotFoundError'
  | 'KMS.NotFoundException'
  | 'KMS.DisabledException'
  | 'KMS.InvalidCiphertextException'
  | 'KMS.DependencyTimeoutException';

const DEFAULT_STATUS: Record<S3ErrorCode, number> = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  ExpiredToken: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidEncryptionAlgorithmError: 400,
  InvalidPart: 400,
  InvalidPartNumber: 416,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MalformedPolicy: 400,
  MalformedPOSTRequest: 400,
  InvalidPolicyDocument: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchBucketPolicy: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestHeaderSectionTooLarge: 400,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  RequestTimeout: 400,
  MaxPostPreDataLengthExceeded: 400,
  XAmzContentSHA256Mismatch: 400,
  BadGateway: 502,
  GatewayTimeout: 504,
  ServerSideEncryptionConfigurationNotFoundError: 404,
  // AWS KMS's statuses for these, which S3 relays; an unreachable KMS is retryable.
  'KMS.NotFoundException': 400,
  'KMS.DisabledException': 400,
  'KMS.InvalidCiphertextException': 400,
  'KMS.DependencyTimeoutException': 503,
};

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Extra XML elements S3 adds for some errors (e.g. ArgumentName, RequestTime). Never put secrets here. */
  readonly extra: Readonly<Record<string, string>>;
  /** Response headers the error carries (e.g. SSE-C echo is never added to errors). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: S3ErrorCode,
    message: string,
    opts: { status?: number; extra?: Record<string, string>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'S3Error';
    this.code = code;
    this.status = opts.status ?? DEFAULT_STATUS[code];
    this.extra = opts.extra ?? {};
    this.headers = opts.headers ?? {};
  }
}

/** The SSE-C messages S3 uses, word for word (design-notes §1). */
/** S3's answer to a client that stopped sending its body (20 s by default, as on S3). */
export function requestTimeout(): S3Error {
  return new S3Error('RequestTimeout', 'Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.');
}

export const SSEC_MESSAGES = {
  needKey:
    'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.',
  notApplicable: 'The encryption parameters are not applicable to this object.',
  badKey: 'The secret key was invalid for the specified algorithm.',
  badMd5: 'The calculated MD5 hash of the key did not match the hash that was provided.',
  needTls:
    'Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.',
  algorithm: 'The encryption method specified is not supported',
  partialHeaders:
    'Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.',
  partialAlgorithm:
    'Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.',
  missingMd5:
    'Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.',
  mismatch: 'The provided encryption parameters did not match the ones used originally.',
  wrongKey: 'Access Denied',
} as const;

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) =>
    c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : c === '"' ? '&quot;' : '&apos;',
  );
}

/** The one place an S3 error becomes XML. */
export function toXml(err: S3Error, resource: string, requestId: string): string {
  const extra = Object.entries(err.extra)
    .map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`)
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${err.code}</Code><Message>${escapeXml(err.message)}</Message>${extra}` +
    `<Resource>${escapeXml(resource)}</Resource><RequestId>${escapeXml(requestId)}</RequestId></Error>`
  );
}
