/**
 * The admin listener (separate from the S3 one, never exposed to clients): Prometheus `/metrics`, `/healthz`
 * (the process answers) and `/readyz` (the upstream answers and accepts the proxy's credentials: one probe of the
 * store answers every `/readyz` for a few seconds).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { kmsCalls, type KmsCallEvent } from './kms/cache.ts';
import type { Upstream, UpstreamIdentity } from './upstream.ts';
import { dump } from './upstream.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'ssec_proxy_requests_total',
    help: 'Client requests by S3 operation and HTTP status.',
    labelNames: ['operation', 'status'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'ssec_proxy_request_duration_seconds',
    help: 'Client request latency by S3 operation.',
    labelNames: ['operation'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'ssec_proxy_bytes_total',
    help: 'Body bytes from clients (in) and to clients (out).',
    labelNames: ['direction'],
    registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: 'ssec_proxy_upstream_requests_total',
    help: 'Requests made to the upstream store, by status (0: no answer).',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'ssec_proxy_upstream_errors_total',
    help: 'Upstream requests that failed without an answer (connection, timeout).',
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'ssec_proxy_upstream_request_duration_seconds',
    help: 'Time to the upstream answer headers.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly inflight = new Gauge({ name: 'ssec_proxy_inflight_requests', help: 'Client requests in progress.', registers: [this.registry] });
  readonly objectRequests = new Counter({
    name: 'ssec_proxy_object_requests_total',
    help: 'Successful object reads and writes by operation and the encryption the answer reports: plain, sse-c, sse-s3, sse-kms.',
    labelNames: ['operation', 'mode'],
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'ssec_proxy_auth_failures_total',
    help: 'Requests refused by authentication or authorization (signature, access key, clock, anonymous access, allowed buckets, bucket policy), by S3 error code.',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly integrityFailures = new Counter({
    name: 'ssec_proxy_integrity_failures_total',
    help: 'Reads of stored objects that failed their integrity check (edited, truncated or corrupt ciphertext), by format error code.',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly kmsCalls = new Counter({
    name: 'ssec_proxy_kms_calls_total',
    help: 'Calls that reached the KMS (cache hits excluded), by operation and outcome (ok, or the KMS error code).',
    labelNames: ['operation', 'outcome'],
    registers: [this.registry],
  });
  readonly connectionsDropped = new Counter({
    name: 'ssec_proxy_connections_dropped_total',
    help: 'Client connections closed at once because a listener had SSEC_PROXY_MAX_CONNECTIONS already.',
    registers: [this.registry],
  });
  #saturation: Saturation | undefined;
  readonly uploadSlots = this.#gauge('ssec_proxy_upload_slots_in_use', 'Upload slots (streamed object and part bodies) in use.', () => this.#saturation?.uploads());
  readonly uploadSlotsMax = this.#gauge('ssec_proxy_upload_slots_max', 'Upload slots available (SSEC_PROXY_MAX_CONCURRENT_UPLOADS per process); beyond, 503 SlowDown.', () => this.#saturation?.maxUploads);
  readonly connections = this.#gauge('ssec_proxy_connections', 'Open client connections (TLS and plain HTTP listeners).', () => this.#saturation?.connections());
  readonly connectionsMax = this.#gauge('ssec_proxy_connections_max', 'Client connections accepted at most (SSEC_PROXY_MAX_CONNECTIONS per listener and process).', () => this.#saturation?.maxConnections);
  readonly #onKmsCall = (m: unknown) => {
    const e = m as KmsCallEvent;
    this.kmsCalls.inc({ operation: e.operation, outcome: e.outcome });
  };

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ssec_proxy_' });
    kmsCalls.subscribe(this.#onKmsCall);
  }

  /** A gauge read when scraped; unset (absent) until `watchSaturation` names its source. */
  #gauge(name: string, help: string, read: () => number | undefined): Gauge {
    return new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        const v = read();
        if (v !== undefined) this.set(v);
      },
    });
  }

  /** The listeners' and uploads' current use, read at each scrape. */
  watchSaturation(s: Saturation): void {
    this.#saturation = s;
  }

  /** Stops counting the process's KMS calls (this registry is no longer scraped). */
  close(): void {
    kmsCalls.unsubscribe(this.#onKmsCall);
  }

  /** Hooks for the Upstream. */
  readonly upstreamObserver = {
    answered: (status: number, seconds: number) => {
      this.upstreamRequests.inc({ status: String(status) });
      this.upstreamDuration.observe(seconds);
    },
    failed: () => {
      this.upstreamRequests.inc({ status: '0' });
      this.upstreamErrors.inc();
    },
  };

  /** One finished client request, from its access-log line. */
  observe(line: Record<string, unknown>): void {
    const operation = String(line.op ?? 'Unknown');
    this.requests.inc({ operation, status: String(line.status ?? 0) });
    if (typeof line.ms === 'number') this.duration.observe({ operation }, line.ms / 1000);
    if (typeof line.bytesIn === 'number') this.bytes.inc({ direction: 'in' }, line.bytesIn);
    if (typeof line.bytesOut === 'number') this.bytes.inc({ direction: 'out' }, line.bytesOut);
  }
}

/** Sources of the saturation gauges. */
export interface Saturation {
  uploads(): number;
  readonly maxUploads: number;
  connections(): number;
  readonly maxConnections: number;
}

interface Readiness {
  readonly ok: boolean;
  readonly detail: string;
  readonly at: number;
}

export interface Admin {
  readonly port: number;
  /** From now on `/readyz` answers not ready (shutdown: load balancers stop sending at once). */
  drain(): void;
  close(): Promise<void>;
}

export async function startAdmin(opts: {
  host: string;
  port: number;
  /** This process's metrics, or `collect` (the cluster primary: every worker's, aggregated). */
  metrics?: Metrics;
  collect?: () => Promise<string>;
  /** Why the process cannot serve now (the cluster primary: no worker listening), or undefined. */
  unready?: () => string | undefined;
  upstream: Upstream;
  identity: UpstreamIdentity;
  /** How long one upstream probe's verdict answers `/readyz`. @default 5000 */
  readyCacheMs?: number;
  /** An upstream probe unanswered this long is "not ready". @default 5000 */
  probeTimeoutMs?: number;
}): Promise<Admin> {
  const cacheMs = opts.readyCacheMs ?? 5000;
  const timeoutMs = opts.probeTimeoutMs ?? 5000;
  let ready: Readiness | undefined;
  let probing: Promise<Readiness> | undefined;
  let draining = false;
  /** ListBuckets: the store is reachable and accepts the credentials (403 otherwise); never longer than timeoutMs. */
  const probe = async (): Promise<Readiness> => {
    try {
      const up = await opts.upstream.request({ identity: opts.identity, method: 'GET', path: '/', signal: AbortSignal.timeout(timeoutMs) });
      await dump(up);
      return { ok: up.statusCode === 200, detail: `upstream answered ${up.statusCode}`, at: Date.now() };
    } catch (e) {
      const late = (e as Error).name === 'TimeoutError';
      return { ok: false, detail: late ? `upstream did not answer within ${timeoutMs} ms` : `upstream unreachable: ${(e as Error).message}`, at: Date.now() };
    }
  };
  // Probes come from every kubelet, load balancer and curl: one upstream request answers them all for
  // cacheMs, and probes arriving while it runs wait for that one.
  const readiness = async (): Promise<Pick<Readiness, 'ok' | 'detail'>> => {
    if (draining) return { ok: false, detail: 'shutting down' };
    const why = opts.unready?.();
    if (why) return { ok: false, detail: why };
    if (ready && Date.now() - ready.at < cacheMs) return ready;
    probing ??= probe().then((r) => {
      ready = r;
      probing = undefined;
      return r;
    });
    return probing;
  };
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    };
    if (path === '/healthz') return send(200, 'text/plain', 'ok\n');
    if (path === '/readyz') {
      void readiness().then((r) => send(r.ok ? 200 : 503, 'text/plain', `${r.ok ? 'ready' : 'not ready'}: ${r.detail}\n`));
      return;
    }
    if (path === '/metrics') {
      const collect = opts.collect ?? (() => opts.metrics!.registry.metrics());
      collect().then(
        (m) => send(200, Registry.PROMETHEUS_CONTENT_TYPE, m),
        (e: unknown) => send(500, 'text/plain', `metrics not collected: ${(e as Error).message}\n`),
      );
      return;
    }
    send(404, 'text/plain', 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    drain: () => {
      draining = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
