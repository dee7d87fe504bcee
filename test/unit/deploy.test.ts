/**
 * deploy/: every kustomize overlay renders (kubectl kustomize, from the machine image) and every object it
 * produces validates against the Kubernetes schemas (kubernetes-models); the production start path (built
 * dist/, production dependencies only, as in the image) has no embedded store, refuses to start without an
 * upstream, and starts and serves a request with one.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { freePort } from '../support/net.ts';
import { EMBEDDED_PACKAGE } from '../../src/embedded-s3.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The Prometheus Operator's kinds (no schema package here): the fields the operator needs, checked by hand. */
class MonitoringObject {
  constructor(private readonly o: Manifest) {}
  validate(): void {
    const { o } = this;
    assert.equal(o.apiVersion, 'monitoring.coreos.com/v1');
    assert.ok(o.metadata?.name);
    if (o.kind === 'PrometheusRule') {
      for (const g of o.spec.groups) {
        assert.ok(g.name && g.rules.length);
        for (const r of g.rules) assert.ok(r.alert && typeof r.expr === 'string' && r.labels?.severity && r.annotations?.summary, JSON.stringify(r));
      }
    } else {
      assert.ok(o.spec.selector?.matchLabels);
      const endpoints = o.kind === 'ServiceMonitor' ? o.spec.endpoints : o.spec.podMetricsEndpoints;
      assert.ok(endpoints.length && endpoints.every((e: Manifest) => typeof e.port === 'string' && e.path === '/metrics'));
    }
  }
}

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  ServiceMonitor: MonitoringObject as never,
  PodMonitor: MonitoringObject as never,
  PrometheusRule: MonitoringObject as never,
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  Service: Service as never,
  Deployment: Deployment as never,
  HorizontalPodAutoscaler: HorizontalPodAutoscaler as never,
  PodDisruptionBudget: PodDisruptionBudget as never,
  NetworkPolicy: NetworkPolicy as never,
};

function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024, timeout: 300_000 }, (e, out, err) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${err}`)) : resolve(out))),
  );
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered manifests are plain JSON
type Manifest = Record<string, any>;

async function render(overlay: string): Promise<Manifest[]> {
  const text = await run('kubectl', ['kustomize', join(ROOT, 'deploy/k8s/overlays', overlay)]);
  return parseAllDocuments(text).map((d) => d.toJSON() as Manifest);
}

for (const overlay of ['standalone', 'sidecar']) {
  test(`kustomize overlay "${overlay}" renders objects that validate against the Kubernetes schemas`, async () => {
    const objects = await render(overlay);
    assert.ok(objects.length >= 5);
    for (const o of objects) {
      const Model = MODELS[o.kind];
      assert.ok(Model, `no schema for ${o.kind}`);
      assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind} ${o.metadata?.name}`);
    }
    const deployment = objects.find((o) => o.kind === 'Deployment')!;
    // The schemas do reject what is wrong.
    assert.throws(() => new Deployment({ ...deployment, spec: { ...deployment.spec, replicas: 'two' } } as never).validate());
    const pod = deployment.spec.template.spec;
    const proxy = pod.containers.find((c: { name: string }) => c.name === 'proxy');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(proxy.securityContext.readOnlyRootFilesystem, true);
    assert.equal(proxy.readinessProbe.httpGet.path, '/readyz');
    assert.equal(proxy.livenessProbe.httpGet.path, '/healthz');
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.data?.SSEC_PROXY_LISTEN)!;
    assert.ok(
      pod.terminationGracePeriodSeconds > proxy.lifecycle.preStop.sleep.seconds + Number(config.data.SSEC_PROXY_SHUTDOWN_GRACE_SECONDS),
      'grace period covers the preStop delay and the proxy\'s drain',
    );
    if (overlay === 'sidecar') {
      assert.deepEqual(pod.containers.map((c: { name: string }) => c.name).sort(), ['app', 'proxy']);
      assert.equal(config.data.SSEC_PROXY_ALLOW_SSEC_OVER_LOOPBACK_HTTP, 'true');
      assert.match(config.data.SSEC_PROXY_HTTP_LISTEN, /^127\.0\.0\.1:/);
      assert.ok(!objects.some((o) => o.kind === 'Service' || o.kind === 'HorizontalPodAutoscaler'));
    } else {
      assert.ok(objects.some((o) => o.kind === 'HorizontalPodAutoscaler'));
      assert.equal(deployment.metadata.namespace, 's3-ssec-proxy');
    }
  });
}

test('production start path: built dist/ with production dependencies only (as the image): no embedded store in it, refuses to start without an upstream, starts and serves with one', async () => {
  await run('npm', ['run', 'build']);
  const app = mkdtempSync(join(tmpdir(), 'ssec-prod-'));
  for (const f of ['package.json', 'package-lock.json', 'dist', 'bin']) cpSync(join(ROOT, f), join(app, f), { recursive: true });
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], app);
  await assert.rejects(run('node', ['-e', "require.resolve('tsx')"], app), 'no dev dependency installed');
  // The embedded development store (and s3rver's vulnerable dicer, which it replaced) is not in the image.
  for (const name of [EMBEDDED_PACKAGE, 's3rver', 'dicer']) {
    assert.equal(existsSync(join(app, 'node_modules', name)), false, `${name} is in the production install`);
  }
  const node = join(ROOT, 'node_modules/.bin/node');
  const base = { PATH: process.env.PATH ?? '', SSEC_PROXY_STATE_DIR: join(app, 'state') };

  // A container started without an upstream refuses, saying what to set, instead of serving a throw-away store.
  const refused = await runNode(node, ['bin/s3-ssec-proxy.js'], app, { ...base, SSEC_PROXY_LISTEN: '127.0.0.1:0' });
  assert.equal(refused.code, 2, refused.err);
  assert.match(refused.err, /SSEC_PROXY_UPSTREAM_URL: no upstream S3 store is set/);
  const embedded = await runNode(node, ['bin/s3-ssec-proxy.js', 'serve', '--embedded'], app, { ...base, SSEC_PROXY_LISTEN: '127.0.0.1:0' });
  assert.equal(embedded.code, 1, embedded.err);
  assert.match(embedded.err, /is a development dependency and is not installed here/);

  // With an upstream it serves: ListBuckets reaches a minimal local S3 endpoint, re-signed.
  const upstream = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/xml' });
    res.end('<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>o</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upPort = (upstream.address() as { port: number }).port;
  const port = await freePort();
  const child = spawn(node, ['bin/s3-ssec-proxy.js'] /* as the image's ENTRYPOINT */, {
    cwd: app,
    env: {
      ...base,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_UPSTREAM_URL: `http://127.0.0.1:${upPort}`,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'PRODAK',
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'prod-secret',
      SSEC_PROXY_WORKERS: '1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on('data', () => err.includes('listening on') && resolve());
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const ca = readFileSync(join(app, 'state/tls/ca.pem'), 'utf8');
    const s3 = new S3Client({
      endpoint: `https://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'PRODAK', secretAccessKey: 'prod-secret' },
      requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) }),
    });
    const r = await s3.send(new ListBucketsCommand({}));
    assert.equal(r.$metadata.httpStatusCode, 200);
    s3.destroy();
  } finally {
    child.kill('SIGTERM');
    upstream.close();
  }
});

/**
 * Whether Docker leaves `path` out of the build context under `.dockerignore` rules: the last rule matching the
 * path or one of its parent directories decides (`*` within one path segment, `**` across segments).
 */
function dockerIgnores(rules: string[], path: string): boolean {
  let ignored = false;
  const parts = path.split('/');
  for (const raw of rules) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const re = new RegExp(
      '^' +
        pattern
          .split(/(\*\*\/?|\*|\?)/)
          .map((t) => (t === '**/' ? '(?:.*/)?' : t === '**' ? '.*' : t === '*' ? '[^/]*' : t === '?' ? '[^/]' : t.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
          .join('') +
        '$',
    );
    for (let n = 1; n <= parts.length; n++) {
      if (re.test(parts.slice(0, n).join('/'))) {
        ignored = !negated;
        break;
      }
    }
  }
  return ignored;
}

function runNode(node: string, args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    execFile(node, args, { cwd, env, timeout: 60_000 }, (e, _out, err) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, err }));
  });
}

test('the Docker build context holds what the Dockerfile copies and leaves out .state/ (the development CA key), keys, TLS files, node_modules, dist and test output; a LICENSE matches package.json', () => {
  const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  // The matcher itself: Docker's semantics on the cases that matter.
  assert.equal(dockerIgnores(['*.pem'], 'deploy/tls/key.pem'), false, '*.pem is the context root only');
  assert.equal(dockerIgnores(['**/*.pem'], 'deploy/tls/key.pem'), true);
  assert.equal(dockerIgnores(['*', '!src/'], 'src/main.ts'), false);
  for (const left of ['.state/tls/ca-key.pem', 'src/.state/x', 'key.bin', 'demo/key.bin', 'deploy/tls/key.pem', 'tls/server.key', 'node_modules/pino/index.js', 'dist/main.js', '.git/config', 'test/unit/deploy.test.ts', 'bench/out.json', 'data.bin', 'proxy.log']) {
    assert.ok(dockerIgnores(rules, left), `${left} is in the build context`);
  }
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
  assert.ok(copied.includes('src') && copied.includes('package.json'));
  for (const f of [...copied, 'src/main.ts', 'bin/s3-ssec-proxy.js']) assert.ok(!dockerIgnores(rules, f), `${f} (copied by the Dockerfile) is left out of the build context`);
  const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  assert.equal((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string }).license, 'Apache-2.0');
  assert.match(license, /Apache License\s+Version 2\.0, January 2004/);
});
