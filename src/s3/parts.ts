/** Part numbers as S3 validates them (`?partNumber=N` on UploadPart, UploadPartCopy and GetObject/HeadObject). */
import { S3Error } from './errors.ts';
import { queryGet, type S3Request } from './operation.ts';

/** S3's largest part number. */
export const MAX_PARTS = 10_000;

/** `?partNumber`: an integer in 1..10000, else S3's InvalidArgument. `optional`: absent is fine (GetObject). */
export function partNumberOf(query: S3Request['query'], presence: 'required'): number;
export function partNumberOf(query: S3Request['query'], presence: 'optional'): number | undefined;
export function partNumberOf(query: S3Request['query'], presence: 'required' | 'optional'): number | undefined {
  const v = queryGet(query, 'partNumber');
  if (v === undefined && presence === 'optional') return undefined;
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || n < 1 || n > MAX_PARTS) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
      extra: { ArgumentName: 'partNumber', ArgumentValue: (v ?? '').slice(0, 16) },
    });
  }
  return n;
}
