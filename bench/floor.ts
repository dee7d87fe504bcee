/**
 * The floor a proxy's CPU per byte is compared with: the least a process can do to move the same bytes between a
 * plain TCP socket (the store's side) and a TLS socket (the client's side), with and without AES-256-GCM.
 *
 *   FLOOR_CERT=PEM FLOOR_KEY=PEM node bench/floor.ts <get|put> <aes|plain> <raw-port>
 *
 * Plain Node (type stripping, no tsx loader, nothing from src/). Listens for TLS on an ephemeral port with the
 * certificate and key given in the environment and prints the port on stdout. For
 * each TLS connection it connects to 127.0.0.1:<raw-port> and relays: `get` reads the raw socket and writes TLS
 * (a proxy's GET), `put` reads TLS and writes the raw socket (a proxy's PUT). With `aes`, every read is sealed in
 * slices of at most 64 KiB, one AES-256-GCM cipher (fresh nonce, 16-byte tag) per slice, and no re-chunking
 * copies: nothing a real format can do with less. The bench measures this process's CPU from /proc, as it does
 * the proxy's, and drives it with the same client code.
 */
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createServer } from 'node:tls';

const [direction, crypto, rawPort] = process.argv.slice(2);
const { FLOOR_CERT: cert, FLOOR_KEY: certKey } = process.env;
if (!['get', 'put'].includes(direction!) || !['aes', 'plain'].includes(crypto!) || !rawPort || !cert || !certKey) {
  process.stderr.write('usage: FLOOR_CERT=PEM FLOOR_KEY=PEM floor.ts <get|put> <aes|plain> <raw-port>\n');
  process.exit(2);
}

const SLICE = 64 * 1024;
const key = createSecretKey(randomBytes(32));

function seal(): Transform {
  const nonce = randomBytes(12);
  let counter = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      for (let off = 0; off < chunk.length; off += SLICE) {
        nonce.writeUInt32BE(counter++ >>> 0, 8);
        const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
        this.push(cipher.update(chunk.subarray(off, off + SLICE)));
        cipher.final();
        this.push(cipher.getAuthTag());
      }
      cb();
    },
  });
}

const server = createServer({ cert, key: certKey }, (tls) => {
  const raw = connect(Number(rawPort), '127.0.0.1');
  const stages = direction === 'get' ? [raw, tls] : [tls, raw];
  const run = crypto === 'aes' ? pipeline(stages[0]!, seal(), stages[1]!) : pipeline(stages[0]!, stages[1]!);
  run.catch(() => {
    tls.destroy();
    raw.destroy();
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
