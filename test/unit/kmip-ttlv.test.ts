/**
 * The TTLV codec against the encoding examples of the KMIP 1.4 specification (§9.1.2, tag 0x420020), and its
 * strictness on what a server might send: truncation, bad padding, wrong fixed lengths, trailing bytes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { child, decode, encode, struct, TtlvError, type Item } from '../../src/kms/ttlv.ts';
import { requestMessage, responsePayload, KmipError, Tag } from '../../src/kms/kmip-client.ts';

const T = 0x420020;
const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

/** KMIP 1.4 §9.1.2, in order. */
const SPEC: Array<[string, Item, string]> = [
  ['Integer 8', { tag: T, type: 'integer', value: 8 }, '42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00'],
  ['Long Integer 123456789000000000', { tag: T, type: 'long', value: 123456789000000000n }, '42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00'],
  [
    'Big Integer 1234567890000000000000000000',
    { tag: T, type: 'bigint', value: 1234567890000000000000000000n },
    '42 00 20 | 04 | 00 00 00 10 | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00',
  ],
  ['Enumeration 255', { tag: T, type: 'enumeration', value: 255 }, '42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00'],
  ['Boolean True', { tag: T, type: 'boolean', value: true }, '42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01'],
  ['Text String "Hello World"', { tag: T, type: 'text', value: 'Hello World' }, '42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00'],
  ['Byte String 0x010203', { tag: T, type: 'bytes', value: Buffer.of(1, 2, 3) }, '42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00'],
  ['Date-Time 2008-03-14T11:56:40Z', { tag: T, type: 'datetime', value: BigInt(Date.UTC(2008, 2, 14, 11, 56, 40) / 1000) }, '42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8'],
  ['Interval 10 days', { tag: T, type: 'interval', value: 10 * 86400 }, '42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 00'],
  [
    'Structure of Enumeration 254 (0x420004) and Integer 255 (0x420005)',
    struct(T, { tag: 0x420004, type: 'enumeration', value: 254 }, { tag: 0x420005, type: 'integer', value: 255 }),
    '42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 | 42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00',
  ],
];

describe('TTLV', () => {
  for (const [name, item, bytes] of SPEC) {
    test(`the specification's example: ${name}`, () => {
      assert.deepEqual(encode(item), hex(bytes));
      assert.deepEqual(decode(hex(bytes)), item);
    });
  }

  test('negative integers and big integers round-trip (two\'s complement)', () => {
    for (const item of [
      { tag: T, type: 'integer', value: -1 },
      { tag: T, type: 'bigint', value: -1n },
      { tag: T, type: 'bigint', value: -(1n << 63n) },
      { tag: T, type: 'bigint', value: 1n << 63n },
      { tag: T, type: 'long', value: -5n },
    ] as Item[]) {
      assert.deepEqual(decode(encode(item)), item);
    }
    assert.equal(encode({ tag: T, type: 'bigint', value: 1n << 63n }).length, 8 + 16, 'sign-extended to 16 bytes');
  });

  test('what a server must not send is refused, naming the fault', () => {
    const good = hex(SPEC[9]![2]);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['truncated header', good.subarray(0, 5), /truncated item header/],
      ['truncated value', good.subarray(0, good.length - 1), /runs past the end/],
      ['trailing bytes', Buffer.concat([good, Buffer.alloc(8)]), /trailing bytes/],
      ['non-zero padding', Buffer.from(hex(SPEC[0]![2])).fill(1, 12), /non-zero padding/],
      ['an integer of length 8', hex('420020 02 00000008 0000000000000008'), /integer of length 8/],
      ['a boolean of value 2', hex('420020 06 00000008 0000000000000002'), /boolean of value 2/],
      ['unknown type', hex('420020 0B 00000000'), /unknown item type 0xb/],
      ['a child past its structure', hex('420020 01 00000008 420004 05 00000004 000000FE00000000'), /runs past the end/],
      ['text that is not UTF-8', hex('420020 07 00000001 FF00000000000000'), /not UTF-8/],
    ];
    for (const [what, bytes, message] of cases) assert.throws(() => decode(bytes), (e: unknown) => e instanceof TtlvError && message.test(e.message), what);
  });

  test('any item round-trips; any byte string decodes or throws a TtlvError, never anything else', () => {
    const leaf = fc.oneof(
      fc.record({ tag: fc.integer({ min: 0x420000, max: 0x42ffff }), type: fc.constant('integer' as const), value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) }),
      fc.record({ tag: fc.integer({ min: 0x420000, max: 0x42ffff }), type: fc.constant('text' as const), value: fc.string() }),
      fc.record({ tag: fc.integer({ min: 0x420000, max: 0x42ffff }), type: fc.constant('bytes' as const), value: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) }),
      fc.record({ tag: fc.integer({ min: 0x420000, max: 0x42ffff }), type: fc.constant('long' as const), value: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }) }),
      fc.record({ tag: fc.integer({ min: 0x420000, max: 0x42ffff }), type: fc.constant('boolean' as const), value: fc.boolean() }),
    );
    const item = fc.array(leaf, { maxLength: 6 }).map((value) => struct(0x420078, ...value.map((v) => ({ ...v }) as Item)));
    fc.assert(fc.property(item, (i) => assert.deepEqual(decode(encode(i)), i)));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (a) => {
        try {
          decode(Buffer.from(a));
        } catch (e) {
          assert.ok(e instanceof TtlvError, String(e));
        }
      }),
    );
  });
});

describe('KMIP messages', () => {
  test('a request is version 1.4 with one batch item', () => {
    const m = decode(requestMessage(8, []));
    assert.deepEqual(
      m,
      struct(
        Tag.RequestMessage,
        struct(Tag.RequestHeader, struct(Tag.ProtocolVersion, { tag: Tag.ProtocolVersionMajor, type: 'integer', value: 1 }, { tag: Tag.ProtocolVersionMinor, type: 'integer', value: 4 }), {
          tag: Tag.BatchCount,
          type: 'integer',
          value: 1,
        }),
        struct(Tag.BatchItem, { tag: Tag.Operation, type: 'enumeration', value: 8 }, struct(Tag.RequestPayload)),
      ),
    );
  });

  test('a Username and Password credential goes in the header, as Authentication before the Batch Count (§7.2)', () => {
    const header = child(decode(requestMessage(8, [], { username: 'proxy', password: 'pw' })), Tag.RequestHeader)!;
    assert.deepEqual(
      header.type === 'structure' && header.value.map((i) => i.tag),
      [Tag.ProtocolVersion, Tag.Authentication, Tag.BatchCount],
    );
    assert.deepEqual(
      child(header, Tag.Authentication),
      struct(
        Tag.Authentication,
        struct(
          Tag.Credential,
          { tag: Tag.CredentialType, type: 'enumeration', value: 1 },
          struct(Tag.CredentialValue, { tag: Tag.Username, type: 'text', value: 'proxy' }, { tag: Tag.Password, type: 'text', value: 'pw' }),
        ),
      ),
    );
  });

  test('a failed result is a KmipError carrying the server\'s reason; a foreign answer is a transport error', () => {
    const failed = struct(
      Tag.ResponseMessage,
      struct(Tag.ResponseHeader),
      struct(
        Tag.BatchItem,
        { tag: Tag.Operation, type: 'enumeration', value: 32 },
        { tag: Tag.ResultStatus, type: 'enumeration', value: 1 },
        { tag: Tag.ResultReason, type: 'enumeration', value: 12 },
        { tag: Tag.ResultMessage, type: 'text', value: 'The decryption key must be in the Active state' },
      ),
    );
    assert.throws(() => responsePayload(failed, 32), (e: unknown) => e instanceof KmipError && e.kind === 'result' && e.reason === 12 && /Active state/.test(e.message));
    assert.throws(() => responsePayload(struct(Tag.RequestMessage), 32), (e: unknown) => e instanceof KmipError && e.kind === 'transport');
    const otherOp = struct(Tag.ResponseMessage, struct(Tag.BatchItem, { tag: Tag.Operation, type: 'enumeration', value: 31 }, { tag: Tag.ResultStatus, type: 'enumeration', value: 0 }));
    assert.throws(() => responsePayload(otherOp, 32), /answered operation 31 to 32/);
  });
});
