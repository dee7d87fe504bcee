/**
 * objects/chain.ts keeps stream.pipeline's contract (it replaces it on every request): each case runs through
 * both and must end the same way — the data delivered, the error reported once, which streams are destroyed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline, Readable, Transform, Writable, type Duplex } from 'node:stream';
import { chain, readWhole } from '../../src/objects/chain.ts';

type Runner = (source: Readable, rest: Writable[], done: (err: Error | undefined) => void) => Duplex | Writable;

const viaPipeline: Runner = (source, rest, done) =>
  (pipeline as (...a: unknown[]) => Duplex)(source, ...rest, (e: Error | null | undefined) => done(e ?? undefined));
const viaChain: Runner = (source, rest, done) => chain(source, rest, done);

/** A source that gives `pieces` and then ends, or (end: false) stays open; like a request body it is not destroyed at its end. */
function source(pieces: string[], end = true): Readable {
  const r = new Readable({ autoDestroy: false, read() {} });
  for (const p of pieces) r.push(Buffer.from(p));
  if (end) r.push(null);
  return r;
}

function upper(failOn?: string, failAtFlush = false): Transform {
  return new Transform({
    transform(c: Buffer, _e, cb) {
      if (failOn !== undefined && c.toString() === failOn) return cb(new Error(`bad ${failOn}`));
      cb(null, Buffer.from(c.toString().toUpperCase()));
    },
    flush(cb) {
      cb(failAtFlush ? new Error('bad digest') : null);
    },
  });
}

function sink(failOn?: string): Writable & { got: string } {
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      if (failOn !== undefined && c.toString().toLowerCase() === failOn) return cb(new Error(`sink refused ${failOn}`));
      w.got += c.toString();
      cb();
    },
  }) as Writable & { got: string };
  w.got = '';
  return w;
}

interface Outcome {
  errors: string[];
  got: string;
  destroyed: boolean[];
}

/** Runs one case, reading a last Transform to its end; settles once `done` was called and things are quiet. */
async function outcome(run: Runner, make: () => { src: Readable; rest: Writable[]; after?: (src: Readable) => void }): Promise<Outcome> {
  const { src, rest, after } = make();
  const errors: string[] = [];
  let got = '';
  const finished = new Promise<void>((resolve) => {
    const last = run(src, rest, (err) => {
      errors.push(err ? (((err as NodeJS.ErrnoException).code ?? err.message) as string) : 'ok');
      resolve();
    });
    if (last instanceof Transform) last.on('data', (c: Buffer) => (got += c.toString()));
    last.on('error', () => {});
    after?.(src);
  });
  await finished;
  await new Promise((r) => setTimeout(r, 20));
  const lastSink = rest.at(-1) as Writable & { got?: string };
  return { errors, got: got || lastSink.got || '', destroyed: [src, ...rest].map((s) => s.destroyed) };
}

const cases: Array<[string, () => { src: Readable; rest: Writable[]; after?: (src: Readable) => void }]> = [
  ['data through two stages to the end', () => ({ src: source(['ab', 'cd']), rest: [upper(), upper()] })],
  ['into a Writable', () => ({ src: source(['ab', 'cd']), rest: [upper(), sink()] })],
  ['a stage fails mid-body: everything destroyed, the source too', () => ({ src: source(['ab', 'xx'], false), rest: [upper('xx'), upper()] })],
  ['a check fails at the end: the ended source is left alone', () => ({ src: source(['ab']), rest: [upper(undefined, true), upper()] })],
  ['the source closes before its end', () => ({ src: source(['ab'], false), rest: [upper(), sink()], after: (s) => setTimeout(() => s.destroy(), 5) })],
  ['the source fails', () => ({ src: source(['ab'], false), rest: [upper(), sink()], after: (s) => setTimeout(() => s.destroy(new Error('reset')), 5) })],
  ['the Writable at the end fails', () => ({ src: source(['ab', 'cd'], false), rest: [upper(), sink('cd')] })],
];

for (const [name, make] of cases) {
  test(`chain ends as pipeline does: ${name}`, async () => {
    const expected = await outcome(viaPipeline, make);
    const actual = await outcome(viaChain, make);
    assert.deepEqual(actual, expected);
    assert.equal(actual.errors.length, 1, 'done is called once');
  });
}

test('a request body that fails a check mid-body still gets its answer (its socket is kept), as with pipeline', async () => {
  for (const run of [viaPipeline, viaChain]) {
    const server = http.createServer((req, res) => {
      run(req, [upper('xx'), sink()], (err) => {
        res.writeHead(err ? 400 : 200, { connection: 'close' });
        res.end(err ? 'BadDigest' : 'ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const status = await new Promise<number>((resolve) => {
      const req = http.request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'PUT', headers: { 'content-length': '1000' } });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.write('ab');
      setTimeout(() => req.write('xx'), 20);
    });
    server.closeAllConnections();
    server.close();
    assert.equal(status, 400, run === viaChain ? 'chain' : 'pipeline');
  }
});

test('chain refuses a source with nothing to pipe into', () => {
  assert.throws(() => chain(source([]), [], () => {}), RangeError);
});

describe('readWhole', () => {
  test('the bytes of a stream of the announced length, whole', async () => {
    assert.deepEqual(await readWhole(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), 4), Buffer.from('abcd'));
  });

  test('a stream that goes past the announced length is refused and destroyed at once, not read to its end', async () => {
    let produced = 0;
    const endless = new Readable({
      read() {
        produced += 16 * 1024;
        this.push(Buffer.alloc(16 * 1024));
      },
    });
    await assert.rejects(readWhole(endless, 64 * 1024), /longer than the 65536 bytes/);
    assert.ok(endless.destroyed);
    assert.ok(produced <= 128 * 1024, `${produced} bytes read for a 64 KiB answer`);
  });

  test('a short stream is refused', async () => {
    await assert.rejects(readWhole(Readable.from([Buffer.from('abc')]), 4), /3 bytes, not the 4/);
  });
});
