/**
 * Several worker processes (node:cluster) sharing the listeners: how many by default (the CPUs the process may
 * use, cgroup limits included), and the primary's supervision of them — start, restart with backoff, drain.
 * The primary never touches a request: with cluster's round-robin it accepts connections and hands each socket
 * to a worker, which does TLS and everything after (docs/OPERATIONS.md, "Workers").
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** One registry's metrics as JSON (what workers send the primary). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Messages between the primary and its workers. */
export type ToWorker =
  | { readonly type: 'ssec:setup'; readonly setup: WorkerSetup }
  | { readonly type: 'ssec:drain' }
  | { readonly type: 'ssec:metrics'; readonly id: number };
export type FromWorker =
  | { readonly type: 'ssec:listening'; readonly httpsPort: number; readonly httpPort: number | undefined }
  | { readonly type: 'ssec:metrics'; readonly id: number; readonly metrics: MetricsJson };

/** What the primary decided once for all workers: the same upstream (embedded store included) and certificate. */
export interface WorkerSetup {
  readonly upstream: { readonly url: string; readonly region: string; readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly probeAllLayouts: boolean;
  /** The store keeps no bucket policies (the embedded one). */
  readonly noBucketPolicies?: boolean;
  /** PEM of the generated development certificate; undefined when the config names certificate files. */
  readonly devTls: { readonly cert: string; readonly key: string } | undefined;
}

/** A crash loop backs off from this to {@link MAX_RESTART_DELAY_MS}, doubling; a worker that lived a minute resets it. */
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 30_000;
const STABLE_MS = 60_000;

export interface Supervisor {
  /** Workers listening now. */
  listening(): number;
  /** Aggregated metrics of every listening worker (sums; gauges and process metrics per prom-client's rules). */
  metrics(): Promise<string>;
  /** Tells every worker to drain; resolves when all have exited. */
  drain(): Promise<void>;
  /** Kills what is left (the primary's failsafe). */
  kill(): void;
}

/**
 * Starts `count` workers and keeps that many running: a worker that exits outside a drain is replaced after a
 * backoff. Resolves once every worker listens (with the first one's ports); rejects if one exits before any
 * listened (a port in use, a bad certificate: restarting would not help).
 */
export async function superviseWorkers(opts: {
  count: number;
  setup: WorkerSetup;
  note: (msg: string) => void;
}): Promise<{ supervisor: Supervisor; httpsPort: number; httpPort: number | undefined }> {
  const listeningIds = new Set<number>();
  let draining = false;
  let everListened = false;
  let startedUp = false;
  let metricsSeq = 0;
  const pendingMetrics = new Map<number, (worker: number, metrics: MetricsJson) => void>();
  let firstPorts: { httpsPort: number; httpPort: number | undefined } | undefined;
  let resolveStarted!: () => void;
  let rejectStarted!: (e: Error) => void;
  const started = new Promise<void>((resolve, reject) => {
    resolveStarted = resolve;
    rejectStarted = reject;
  });
  let allExited: (() => void) | undefined;
  const alive = new Set<Worker>();

  const spawn = (slot: { failures: number }) => {
    const worker = cluster.fork();
    alive.add(worker);
    const born = Date.now();
    worker.on('online', () => worker.send({ type: 'ssec:setup', setup: opts.setup } satisfies ToWorker));
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ssec:listening') {
        listeningIds.add(worker.id);
        if (startedUp) opts.note(`worker ${worker.id} listening`);
        everListened = true;
        firstPorts ??= { httpsPort: m.httpsPort, httpPort: m.httpPort };
        if (draining) worker.send({ type: 'ssec:drain' } satisfies ToWorker);
        else if (listeningIds.size === opts.count) resolveStarted();
      } else if (m.type === 'ssec:metrics') {
        pendingMetrics.get(m.id)?.(worker.id, m.metrics);
      }
    });
    worker.on('exit', (code, signal) => {
      listeningIds.delete(worker.id);
      alive.delete(worker);
      if (draining) {
        if (alive.size === 0) allExited?.();
        return;
      }
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (!everListened) {
        rejectStarted(new Error(`worker ${worker.id} exited (${how}) before listening`));
        return;
      }
      if (Date.now() - born > STABLE_MS) slot.failures = 0;
      const delay = Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** slot.failures);
      slot.failures++;
      opts.note(`worker ${worker.id} exited (${how}): starting a new one in ${delay} ms`);
      setTimeout(() => {
        if (!draining) spawn(slot);
      }, delay).unref();
    });
  };
  for (let i = 0; i < opts.count; i++) spawn({ failures: 0 });
  await started;
  startedUp = true;

  const workers = (): Worker[] => [...alive];
  const supervisor: Supervisor = {
    listening: () => listeningIds.size,
    async metrics() {
      const id = metricsSeq++;
      const asked = workers().filter((w) => listeningIds.has(w.id) && w.isConnected());
      const answers = new Map<number, MetricsJson>();
      await new Promise<void>((resolve) => {
        // A worker that dies while asked must not hang the scrape: answer with the others after a while.
        const timer = setTimeout(resolve, 2000);
        pendingMetrics.set(id, (worker, metrics) => {
          answers.set(worker, metrics);
          if (answers.size === asked.length) {
            clearTimeout(timer);
            resolve();
          }
        });
        for (const w of asked) w.send({ type: 'ssec:metrics', id } satisfies ToWorker);
        if (asked.length === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      pendingMetrics.delete(id);
      return AggregatorRegistry.aggregate([...answers.values()]).metrics();
    },
    drain() {
      draining = true;
      const left = workers();
      const done = new Promise<void>((resolve) => {
        allExited = resolve;
        if (left.length === 0) resolve();
      });
      for (const w of left) if (w.isConnected()) w.send({ type: 'ssec:drain' } satisfies ToWorker);
      return done;
    },
    kill() {
      for (const w of workers()) w.process.kill('SIGKILL');
    },
  };
  return { supervisor, httpsPort: firstPorts!.httpsPort, httpPort: firstPorts!.httpPort };
}
