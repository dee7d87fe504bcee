/**
 * `stream.pipeline` without its per-call AbortController. Node's pipeline aborts that controller when it
 * finishes, which builds an AbortError DOMException with a stack trace every time: ~13 µs and garbage per
 * pipeline, on every small request (a PUT's sealing stages, a GET's decryptor). The contract is pipeline's:
 * each stream is piped into the next; the first failure (or premature close) destroys every stream not yet
 * finished, with that error; `done` is called once, with the error or when every stream has finished (the
 * last one's writable side: its output is the caller's to read). A stream that has already finished is left
 * alone — a request body read to its end is not destroyed under the error answer that follows.
 */
import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { finished, type Duplex, type Readable, type Writable } from 'node:stream';

export function chain<L extends Writable = Duplex>(source: Readable, rest: readonly Writable[], done: (err: Error | undefined) => void): L {
  if (rest.length === 0) throw new RangeError('chain: nothing to pipe into');
  const streams: Array<Readable | Writable> = [source, ...rest];
  let pending = streams.length;
  let failed = false;
  const over = streams.map(() => false);
  const settle = (i: number, err: Error | null | undefined) => {
    if (failed) return;
    if (err) {
      failed = true;
      for (let j = 0; j < streams.length; j++) if (!over[j]) destroy(streams[j]!, err);
      done(err);
      return;
    }
    over[i] = true;
    if (--pending === 0) done(undefined);
  };
  streams.forEach((s, i) => {
    finished(s, { readable: i < streams.length - 1, writable: i > 0 }, (err) => settle(i, err));
  });
  for (let i = 0; i < streams.length - 1; i++) (streams[i] as Readable).pipe(streams[i + 1] as Writable);
  return streams[streams.length - 1] as L;
}

/**
 * As pipeline destroys: a server's request is detached from its socket first, so the connection survives for
 * the error answer (a client's answer, which has `req`, is destroyed with its connection).
 */
function destroy(s: Readable | Writable, err: Error): void {
  if (s.destroyed) return;
  if (s instanceof IncomingMessage && (s as { req?: unknown }).req === undefined) s.socket = null as unknown as Socket;
  s.destroy(err);
}

/**
 * All of a stream of `length` bytes, once it has ended cleanly; rejects with its failure, or a wrong length. A
 * stream that goes past `length` is destroyed at once: the bound holds on the bytes that come, not only on the
 * length announced (a store that ignores a Range, or answers for a newer object, may send far more).
 */
export function readWhole(stream: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = [];
    let n = 0;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      if (n > length) {
        const err = new Error(`the body is longer than the ${length} bytes announced`);
        reject(err);
        stream.destroy(err);
        return;
      }
      pieces.push(c);
    });
    stream.once('end', () => {
      if (n !== length) reject(new Error(`the body is ${n} bytes, not the ${length} announced`));
      else resolve(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, n));
    });
    stream.once('error', reject);
    // An Error only when needed: its stack trace would cost every small request otherwise.
    stream.once('close', () => stream.readableEnded || reject(new Error('the body closed before its end')));
  });
}
