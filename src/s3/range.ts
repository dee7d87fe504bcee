/**
 * HTTP Range as S3 reads it: one range only (`bytes=a-b`, `bytes=a-`, `bytes=-n`); anything else is ignored
 * and the whole object is returned, as S3 does.
 */
import { S3Error } from './errors.ts';

export type RangeSpec =
  | { readonly kind: 'from'; readonly start: number; readonly end?: number }
  | { readonly kind: 'suffix'; readonly length: number };

export function parseRange(header: string | undefined): RangeSpec | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') return { kind: 'suffix', length: Number(b) };
  const start = Number(a);
  if (b === '') return { kind: 'from', start };
  const end = Number(b);
  if (end < start) return undefined;
  return { kind: 'from', start, end };
}

/** A satisfiable range resolved against the object's size: inclusive [start, end]. */
export interface ResolvedRange {
  readonly start: number;
  readonly end: number;
}

/** Resolves against the plaintext size; throws S3's 416 InvalidRange when unsatisfiable. */
export function resolveRange(spec: RangeSpec, size: number): ResolvedRange {
  if (spec.kind === 'suffix') {
    if (spec.length === 0 || size === 0) throw invalidRange(size);
    return { start: Math.max(0, size - spec.length), end: size - 1 };
  }
  if (spec.start >= size) throw invalidRange(size);
  return { start: spec.start, end: Math.min(spec.end ?? size - 1, size - 1) };
}

export function invalidRange(size: number): S3Error {
  return new S3Error('InvalidRange', 'The requested range is not satisfiable', {
    extra: { ActualObjectSize: String(size) },
    headers: { 'content-range': `bytes */${size}` },
  });
}

export function contentRange(r: ResolvedRange, size: number): string {
  return `bytes ${r.start}-${r.end}/${size}`;
}
