/**
 * KMIP's TTLV encoding (KMIP 1.4 §9.1): every item is Tag (3 bytes) ‖ Type (1) ‖ Length (u32be) ‖ Value,
 * the value padded with zeros to a multiple of 8 bytes (the Length excludes the padding). Integers, enumerations
 * and intervals are 4 bytes (padded to 8), long integers and date-times 8, booleans 8 (0 or 1), text UTF-8, a
 * structure the concatenation of its items. Decoding is strict: a length past the end, non-zero padding, a
 * wrong fixed length or trailing bytes are errors (a KMIP server's answer is parsed, never trusted).
 */

export type Item =
  | { readonly tag: number; readonly type: 'structure'; readonly value: readonly Item[] }
  | { readonly tag: number; readonly type: 'integer' | 'enumeration' | 'interval'; readonly value: number }
  | { readonly tag: number; readonly type: 'long' | 'datetime' | 'bigint'; readonly value: bigint }
  | { readonly tag: number; readonly type: 'boolean'; readonly value: boolean }
  | { readonly tag: number; readonly type: 'text'; readonly value: string }
  | { readonly tag: number; readonly type: 'bytes'; readonly value: Buffer };

/** The type byte of each item type (KMIP 1.4 §9.1.1.2). */
const TYPE_CODES = {
  structure: 0x01,
  integer: 0x02,
  long: 0x03,
  bigint: 0x04,
  enumeration: 0x05,
  boolean: 0x06,
  text: 0x07,
  bytes: 0x08,
  datetime: 0x09,
  interval: 0x0a,
} as const;
const TYPES = Object.fromEntries(Object.entries(TYPE_CODES).map(([k, v]) => [v, k])) as Record<number, Item['type']>;

export class TtlvError extends Error {
  override readonly name = 'TtlvError';
}

const pad8 = (n: number) => (8 - (n % 8)) % 8;

/** The bytes of `item`. */
export function encode(item: Item): Buffer {
  let value: Buffer;
  switch (item.type) {
    case 'structure':
      value = Buffer.concat(item.value.map(encode));
      break;
    case 'integer':
    case 'enumeration':
    case 'interval':
      value = Buffer.alloc(4);
      if (item.type === 'integer') value.writeInt32BE(item.value);
      else value.writeUInt32BE(item.value);
      break;
    case 'long':
    case 'datetime':
      value = Buffer.alloc(8);
      value.writeBigInt64BE(item.value);
      break;
    case 'bigint':
      value = bigIntBytes(item.value);
      break;
    case 'boolean':
      value = Buffer.alloc(8);
      value[7] = item.value ? 1 : 0;
      break;
    case 'text':
      value = Buffer.from(item.value, 'utf8');
      break;
    case 'bytes':
      value = item.value;
      break;
  }
  const head = Buffer.alloc(8);
  head.writeUIntBE(item.tag, 0, 3);
  head[3] = TYPE_CODES[item.type];
  head.writeUInt32BE(value.length, 4);
  return Buffer.concat([head, value, Buffer.alloc(pad8(value.length))]);
}

/** Two's complement, big-endian, sign-extended to a multiple of 8 bytes (§9.1.1.4: Big Integer). */
function bigIntBytes(v: bigint): Buffer {
  let n = 8;
  while (v >= 1n << BigInt(8 * n - 1) || v < -(1n << BigInt(8 * n - 1))) n += 8;
  const out = Buffer.alloc(n);
  let x = BigInt.asUintN(8 * n, v);
  for (let i = n - 1; i >= 0; i--, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
}

/** The one item that `bytes` holds, exactly. */
export function decode(bytes: Buffer): Item {
  const [item, end] = decodeAt(bytes, 0, 0);
  if (end !== bytes.length) throw new TtlvError(`${bytes.length - end} trailing bytes after the item`);
  return item;
}

/** The item at `at` and the offset just past it (and its padding). */
function decodeAt(b: Buffer, at: number, depth: number): [Item, number] {
  if (depth > 16) throw new TtlvError('structures nested too deep');
  if (at + 8 > b.length) throw new TtlvError(`truncated item header at ${at}`);
  const tag = b.readUIntBE(at, 3);
  const type = TYPES[b[at + 3]!];
  const length = b.readUInt32BE(at + 4);
  const start = at + 8;
  const end = start + length;
  const padded = end + pad8(length);
  if (!type) throw new TtlvError(`unknown item type 0x${b[at + 3]!.toString(16)} at ${at}`);
  if (padded > b.length) throw new TtlvError(`item at ${at} runs past the end`);
  if (b.subarray(end, padded).some((x) => x !== 0)) throw new TtlvError(`non-zero padding after the item at ${at}`);
  const fixed = { integer: 4, enumeration: 4, interval: 4, long: 8, datetime: 8, boolean: 8 } as Partial<Record<Item['type'], number>>;
  const want = fixed[type];
  if (want !== undefined && length !== want) throw new TtlvError(`a ${type} of length ${length} at ${at}`);
  const v = b.subarray(start, end);
  switch (type) {
    case 'structure': {
      const items: Item[] = [];
      for (let p = start; p < end; ) {
        const [child, next] = decodeAt(b.subarray(0, end), p, depth + 1);
        items.push(child);
        p = next;
      }
      return [{ tag, type, value: items }, padded];
    }
    case 'integer':
      return [{ tag, type, value: v.readInt32BE(0) }, padded];
    case 'enumeration':
    case 'interval':
      return [{ tag, type, value: v.readUInt32BE(0) }, padded];
    case 'long':
    case 'datetime':
      return [{ tag, type, value: v.readBigInt64BE(0) }, padded];
    case 'bigint': {
      if (length === 0 || length % 8 !== 0) throw new TtlvError(`a big integer of length ${length} at ${at}`);
      let x = 0n;
      for (const byte of v) x = (x << 8n) | BigInt(byte);
      return [{ tag, type, value: BigInt.asIntN(8 * length, x) }, padded];
    }
    case 'boolean': {
      const n = v.readBigUInt64BE(0);
      if (n > 1n) throw new TtlvError(`a boolean of value ${n} at ${at}`);
      return [{ tag, type, value: n === 1n }, padded];
    }
    case 'text': {
      const s = v.toString('utf8');
      if (!Buffer.from(s, 'utf8').equals(v)) throw new TtlvError(`a text string that is not UTF-8 at ${at}`);
      return [{ tag, type, value: s }, padded];
    }
    case 'bytes':
      return [{ tag, type, value: Buffer.from(v) }, padded];
  }
}

// Builders, so a message reads like the spec's tables.
export const struct = (tag: number, ...value: Array<Item | undefined>): Item => ({ tag, type: 'structure', value: value.filter((x) => x !== undefined) });
export const int = (tag: number, value: number): Item => ({ tag, type: 'integer', value });
export const enumeration = (tag: number, value: number): Item => ({ tag, type: 'enumeration', value });
export const bool = (tag: number, value: boolean): Item => ({ tag, type: 'boolean', value });
export const text = (tag: number, value: string): Item => ({ tag, type: 'text', value });
export const bytes = (tag: number, value: Buffer): Item => ({ tag, type: 'bytes', value });

/** The children of a structure with `tag` (none for another type). */
export function children(item: Item | undefined, tag: number): Item[] {
  return item?.type === 'structure' ? item.value.filter((c) => c.tag === tag) : [];
}

/** The first child with `tag`. */
export function child(item: Item | undefined, tag: number): Item | undefined {
  return children(item, tag)[0];
}
