// Generates test/vectors/kms-local.json (docs/FORMAT.md §13.4): `node --import tsx test/vectors/generate-kms.ts > test/vectors/kms-local.json`.
import { LocalKms, localKek } from '../../src/kms/local.ts';
import { canonicalContext } from '../../src/kms/kms.ts';
import { sealEnvelope } from '../../src/sse-c/envelope.ts';
import { formatKmsMeta, encryptionContext } from '../../src/sse-kms/managed.ts';
const seq = (n: number, start: number) => Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 255));
const master1 = seq(32, 0x00), master2 = seq(32, 0x20);
const vectors = [];
for (const v of [
  { name: 'sse-s3', keyId: 'master-1', versions: [master1], mode: 'AES256', context: undefined, bucket: 'vector-bucket', key: 'sse-s3.bin', ek: seq(32, 0x40), salt: seq(32, 0x60), dk: seq(32, 0x80), kekSalt: seq(32, 0xa0) },
  { name: 'sse-kms-v2-context', keyId: 'team/key-2', versions: [master1, master2], mode: 'aws:kms', context: Buffer.from('{"project":"alpha"}').toString('base64'), bucket: 'vector-bucket', key: 'dir/ünïcødé.txt', ek: seq(32, 0xc0), salt: seq(32, 0xe0), dk: seq(32, 0x10), kekSalt: seq(32, 0x30) },
] as const) {
  const draws = [v.ek, v.salt];
  const kms = new LocalKms(new Map([[v.keyId, { versions: [...v.versions], disabled: false }]]), { randomBytes: () => Buffer.from(draws.shift()!) });
  const k = { mode: v.mode, keyId: v.keyId, ...(v.context ? { context: v.context } : {}) } as const;
  const context = encryptionContext(k, v.bucket, v.key);
  const g = await kms.generateKey(v.keyId, context);
  const kek = localKek(v.versions[v.versions.length - 1]!, v.salt, v.keyId, context);
  const env = sealEnvelope({ customerKey: g.plaintext, bucket: v.bucket, key: v.key, dataKey: v.dk, randomBytes: () => Buffer.from(v.kekSalt) });
  vectors.push({
    name: v.name, keyId: v.keyId, masterKeyVersions: v.versions.map((b) => b.toString('hex')), mode: v.mode, clientContext: v.context ?? null,
    bucket: v.bucket, key: v.key, context, canonicalContext: canonicalContext(context).toString('hex'),
    externalKey: v.ek.toString('hex'), salt: v.salt.toString('hex'), kek: kek.toString('hex'), sealed: g.sealed.toString('hex'),
    kmsMeta: formatKmsMeta(k, g.sealed), dataKey: v.dk.toString('hex'), kekSalt: v.kekSalt.toString('hex'), envelope: env.value,
  });
}
console.log(JSON.stringify({ description: 'docs/FORMAT.md §13.4: local KMS sealed keys and the SSE-S3/KMS metadata of an object (inputs are counting bytes, not random).', vectors }, null, 2));
