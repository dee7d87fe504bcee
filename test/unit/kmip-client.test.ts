/**
 * The KMIP client's connection handling against a scripted TLS peer (client certificate required, as a KMIP
 * server does): a kept connection the server closed unanswered is replaced and a read-only operation sent again,
 * an operation that changes the server is not; a server that never answers or answers garbage is a transport
 * error within the deadline, and the next call connects anew; calls run in parallel on several connections. And
 * the `kmip` KMS over a server that keeps destroyed objects.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { appInfoAttribute, KmipClient, KmipError, nameAttribute, Operation, State, Tag } from '../../src/kms/kmip-client.ts';
import { KMIP_BLOB_SIZE, KMIP_BLOB_VERSION, KMIP_VERSION_NAMESPACE, KmipKms } from '../../src/kms/kmip.ts';
import { KmsError } from '../../src/kms/kms.ts';
import { child, children, decode, encode, enumeration, struct, text, type Item } from '../../src/kms/ttlv.ts';
import { makeKmipCerts } from '../support/kmip.ts';

/** What the peer does with the n-th request (0-based, over all connections) on connection c (0-based). */
type Script = (request: { operation: number; n: number; c: number; payload: Item | undefined }) =>
  | 'answer'
  | 'close'
  | 'silence'
  | 'garbage'
  | 'hold-for-2'
  | { readonly payload: Item[] };

let dir: string;
let server: Server;
let port: number;
let script: Script = () => 'answer';
const seen: Array<{ operation: number; c: number }> = [];
let connections = 0;
/** Answers held back until two requests are waiting at once ('hold-for-2'). */
const held: Array<() => void> = [];

function answer(operation: number, payload: Item[] = [text(Tag.UniqueIdentifier, '7')]): Buffer {
  return encode(
    struct(
      Tag.ResponseMessage,
      struct(Tag.ResponseHeader),
      struct(Tag.BatchItem, enumeration(Tag.Operation, operation), enumeration(Tag.ResultStatus, 0), struct(Tag.ResponsePayload, ...payload)),
    ),
  );
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ssec-kmip-client-'));
  makeKmipCerts(dir);
  server = createServer(
    { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')), ca: readFileSync(join(dir, 'ca.pem')), requestCert: true, rejectUnauthorized: true },
    (socket: TLSSocket) => {
      const c = connections++;
      let buffered = Buffer.alloc(0);
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 8 || buffered.length < 8 + buffered.readUInt32BE(4)) return;
        const item = child(decode(buffered), Tag.BatchItem);
        const operation = child(item, Tag.Operation)!.value as number;
        buffered = Buffer.alloc(0);
        seen.push({ operation, c });
        const what = script({ operation, n: seen.length - 1, c, payload: child(item, Tag.RequestPayload) });
        if (typeof what === 'object') socket.write(answer(operation, what.payload));
        else if (what === 'answer') socket.write(answer(operation));
        else if (what === 'close') socket.destroy();
        else if (what === 'hold-for-2') {
          held.push(() => socket.write(answer(operation)));
          if (held.length === 2) for (const release of held.splice(0)) release();
        } else if (what === 'garbage') socket.write(Buffer.from('42007b0100000008ffffffff00000000', 'hex'));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function client(timeoutMs = 2000, maxConnections?: number): KmipClient {
  return new KmipClient({
    maxConnections,
    host: '127.0.0.1',
    port,
    ca: readFileSync(join(dir, 'ca.pem')),
    cert: readFileSync(join(dir, 'client.pem')),
    key: readFileSync(join(dir, 'client.key')),
    timeoutMs,
  });
}

function reset(s: Script): void {
  script = s;
  seen.length = 0;
  connections = 0;
  held.length = 0;
}

describe('KMIP client connections', () => {
  test('a kept connection closed unanswered: a Locate is sent again on a new connection, once', async () => {
    reset(({ n }) => (n === 1 ? 'close' : 'answer'));
    const k = client();
    try {
      assert.deepEqual(await k.locate('a'), ['7']);
      assert.deepEqual(await k.locate('a'), ['7']);
      assert.deepEqual(seen, [
        { operation: Operation.Locate, c: 0 },
        { operation: Operation.Locate, c: 0 },
        { operation: Operation.Locate, c: 1 },
      ]);
    } finally {
      k.close();
    }
  });

  test('… but a Create is not sent again (it may have been done): the caller gets the failure', async () => {
    reset(({ n }) => (n === 1 ? 'close' : 'answer'));
    const k = client();
    try {
      await k.locate('a');
      await assert.rejects(k.create([nameAttribute('a')]), (e: unknown) => e instanceof KmipError && e.kind === 'transport' && /closed the connection/.test(e.message));
      assert.equal(seen.filter((r) => r.operation === Operation.Create).length, 1);
      assert.deepEqual(await k.locate('a'), ['7'], 'the next call connects anew');
    } finally {
      k.close();
    }
  });

  test('a fresh connection closed unanswered is not retried (the server is failing, not idle)', async () => {
    reset(() => 'close');
    const k = client();
    try {
      await assert.rejects(k.locate('a'), (e: unknown) => e instanceof KmipError && e.kind === 'transport');
      assert.equal(seen.length, 1);
    } finally {
      k.close();
    }
  });

  test('a server that never answers is a transport error at the deadline; one answering garbage too; the next call reconnects', async () => {
    reset(({ n }) => (n === 0 ? 'silence' : n === 1 ? 'garbage' : 'answer'));
    const k = client(500);
    try {
      await assert.rejects(k.locate('a'), /did not answer within 500 ms/);
      await assert.rejects(k.locate('a'), /answered a malformed message/);
      assert.deepEqual(await k.locate('a'), ['7']);
      assert.deepEqual(
        seen.map((r) => r.c),
        [0, 1, 2],
        'each failure dropped its connection',
      );
    } finally {
      k.close();
    }
  });

  test('calls run at once on connections of their own (a server answering only when two are waiting is served)', async () => {
    reset(() => 'hold-for-2');
    const k = client();
    try {
      assert.deepEqual(await Promise.all([k.locate('a'), k.locate('b')]), [['7'], ['7']]);
      assert.deepEqual(new Set(seen.map((r) => r.c)), new Set([0, 1]));
    } finally {
      k.close();
    }
  });

  test('with one connection, a call still waiting for it at its deadline fails and is never sent', async () => {
    reset(() => 'silence');
    const k = client(500, 1);
    try {
      const results = await Promise.allSettled([k.locate('a'), k.locate('b')]);
      assert.deepEqual(
        results.map((r) => r.status === 'rejected' && /did not answer within 500 ms/.test(String(r.reason))),
        [true, true],
      );
      assert.equal(seen.length, 1, 'the second request never reached the server');
    } finally {
      k.close();
    }
  });
});

describe('kmip KMS over a server that keeps destroyed objects (PyKMIP deletes them; others keep their attributes)', () => {
  /** Objects of key `k`: uid → state and version. */
  const objects: Record<string, { state: number; version: number }> = {};
  const attribute = (name: string, value: Item) => struct(Tag.Attribute, text(Tag.AttributeName, name), value);
  before(() =>
    reset(({ operation, payload }) => {
      if (operation === Operation.Locate) {
        const onlyActive = children(payload, Tag.Attribute).some((a) => child(a, Tag.AttributeName)?.value === 'State');
        const uids = Object.entries(objects).filter(([, o]) => !onlyActive || o.state === State.Active);
        return { payload: uids.map(([uid]) => text(Tag.UniqueIdentifier, uid)) };
      }
      if (operation === Operation.GetAttributes) {
        const uid = child(payload, Tag.UniqueIdentifier)!.value as string;
        const o = objects[uid]!;
        return {
          payload: [
            text(Tag.UniqueIdentifier, uid),
            attribute('State', enumeration(Tag.AttributeValue, o.state)),
            attribute('Name', nameAttribute('k').value),
            attribute('Application Specific Information', appInfoAttribute(KMIP_VERSION_NAMESPACE, String(o.version)).value),
          ],
        };
      }
      return 'close';
    }),
  );

  async function rejectsCode(p: Promise<unknown>, code: KmsError['code']): Promise<void> {
    await assert.rejects(p, (e: unknown) => e instanceof KmsError && e.code === code);
  }

  test('a destroyed version is as absent: its blobs do not open (InvalidCiphertext), a key with only destroyed versions is NotFound', async () => {
    const kms = new KmipKms({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')), defaultKeyId: 'k' });
    const blob = (version: number) => {
      const b = Buffer.alloc(KMIP_BLOB_SIZE);
      b[0] = KMIP_BLOB_VERSION;
      b.writeUInt32BE(version, 1);
      return b;
    };
    try {
      Object.assign(objects, { '1': { state: State.Destroyed, version: 1 }, '2': { state: State.Deactivated, version: 2 } });
      await rejectsCode(kms.decrypt('k', blob(1), {}), 'InvalidCiphertext');
      await rejectsCode(kms.decrypt('k', blob(2), {}), 'Disabled');
      await rejectsCode(kms.generateKey('k', {}), 'Disabled');
      objects['2']!.state = State.DestroyedCompromised;
      await rejectsCode(kms.decrypt('k', blob(2), {}), 'NotFound');
      await rejectsCode(kms.generateKey('k', {}), 'NotFound');
      assert.equal(await kms.status('k'), 'missing');
      assert.ok(!seen.some((r) => r.operation === Operation.Decrypt || r.operation === Operation.Encrypt), 'no key was used');
    } finally {
      kms.close();
    }
  });
});
