/**
 * Issue 15: deploy/ is safe by default — nothing `kubectl apply -k` writes over (no placeholder Secret), config
 * edits roll the pods, no budget that blocks a drain, a sidecar's NetworkPolicy that lets its application talk,
 * a preStop delay and topology spread, a pinned base image and compose images that exist — and its monitoring
 * (alert rules, dashboard) names only metrics a running proxy exports.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { Metrics, startAdmin } from '../../src/admin.ts';
import { loadConfig } from '../../src/config.ts';
import { startProxy } from '../../src/server.ts';
import { ensureDevCertificate } from '../../src/tls/dev-cert.ts';
import { Upstream } from '../../src/upstream.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendered manifests are plain JSON
type Manifest = Record<string, any>;

function kustomize(dir: string): Promise<Manifest[]> {
  return new Promise((resolve, reject) =>
    execFile('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }, (e, out, err) =>
      e ? reject(new Error(`kubectl kustomize ${dir}: ${err}`)) : resolve(parseAllDocuments(out).map((d) => d.toJSON() as Manifest)),
    ),
  );
}

const overlay = (name: string, root = join(ROOT, 'deploy/k8s')) => kustomize(join(root, 'overlays', name));
const OVERLAYS = ['standalone', 'sidecar'];

function pieces(objects: Manifest[]) {
  const deployment = objects.find((o) => o.kind === 'Deployment')!;
  const pod = deployment.spec.template.spec;
  return {
    deployment,
    pod,
    proxy: pod.containers.find((c: Manifest) => c.name === 'proxy'),
    config: objects.find((o) => o.kind === 'ConfigMap' && o.data?.SSEC_PROXY_LISTEN)!,
  };
}

test('no Secret is rendered (a placeholder would overwrite the real one on every apply); the pods name the Secrets created outside', async () => {
  for (const name of OVERLAYS) {
    const objects = await overlay(name);
    assert.deepEqual(objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name), [], name);
    assert.ok(!JSON.stringify(objects).includes('CHANGE-ME'), `${name}: a placeholder value`);
    const { pod, proxy } = pieces(objects);
    assert.ok(proxy.envFrom.some((e: Manifest) => e.secretRef?.name === 's3-ssec-proxy-upstream' && e.secretRef.optional !== true), `${name}: upstream credentials Secret`);
    assert.ok(pod.volumes.some((v: Manifest) => v.secret?.secretName === 's3-ssec-proxy-tls'), `${name}: TLS Secret`);
  }
});

test('the proxy\'s ConfigMap is generated with a hash suffix the Deployment names: an edit of its settings rolls the pods', async () => {
  const copy = mkdtempSync(join(tmpdir(), 'ssec-kustomize-'));
  cpSync(join(ROOT, 'deploy/k8s'), copy, { recursive: true });
  for (const name of OVERLAYS) {
    const { proxy, config } = pieces(await overlay(name));
    assert.match(config.metadata.name, /^s3-ssec-proxy-[a-z0-9]{10}$/, name);
    assert.ok(proxy.envFrom.some((e: Manifest) => e.configMapRef?.name === config.metadata.name), `${name}: the Deployment names the generated ConfigMap`);
  }
  const before = pieces(await overlay('standalone', copy)).config.metadata.name;
  const env = join(copy, 'base/proxy.env');
  writeFileSync(env, readFileSync(env, 'utf8').replace('SSEC_PROXY_LOG_LEVEL=info', 'SSEC_PROXY_LOG_LEVEL=debug'));
  const after = pieces(await overlay('standalone', copy));
  assert.equal(after.config.data.SSEC_PROXY_LOG_LEVEL, 'debug');
  assert.notEqual(after.config.metadata.name, before, 'an edited setting gives a new ConfigMap name, so a new pod template');
  assert.ok(after.proxy.envFrom.some((e: Manifest) => e.configMapRef?.name === after.config.metadata.name));
});

test('no PodDisruptionBudget blocks a node drain: every budget allows an eviction at the lowest replica count', async () => {
  for (const name of OVERLAYS) {
    const objects = await overlay(name);
    const { deployment } = pieces(objects);
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler');
    const replicas = Math.min(deployment.spec.replicas ?? 1, hpa?.spec.minReplicas ?? Infinity);
    for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
      const allowed = pdb.spec.maxUnavailable !== undefined ? pdb.spec.maxUnavailable : replicas - pdb.spec.minAvailable;
      assert.ok(allowed >= 1, `${name}: ${JSON.stringify(pdb.spec)} allows no eviction of ${replicas} replica(s)`);
    }
  }
  // The sidecar's pod is the application's: its budget is the application's own (two budgets on one pod fail every eviction).
  assert.ok(!(await overlay('sidecar')).some((o) => o.kind === 'PodDisruptionBudget'));
});

test('the sidecar overlay\'s NetworkPolicy lets the application talk: its ports reachable, its egress not cut', async () => {
  const objects = await overlay('sidecar');
  const { pod } = pieces(objects);
  const policy = objects.find((o) => o.kind === 'NetworkPolicy')!;
  const allowedPorts = policy.spec.ingress.filter((r: Manifest) => !r.from).flatMap((r: Manifest) => (r.ports ?? []).map((p: Manifest) => p.port));
  const app = pod.containers.filter((c: Manifest) => c.name !== 'proxy');
  assert.ok(app.length);
  for (const c of app) {
    for (const p of c.ports ?? []) assert.ok(allowedPorts.includes(p.name) || allowedPorts.includes(p.containerPort), `application port ${p.name ?? p.containerPort} is cut off`);
  }
  const egressCut = policy.spec.policyTypes.includes('Egress') && !(policy.spec.egress ?? []).some((r: Manifest) => !r.to && !r.ports);
  assert.ok(!egressCut, 'the application\'s egress is limited to the proxy\'s store and DNS');
  // The standalone proxy keeps its tight policy: clients on 8443, metrics from monitoring, egress to the store.
  const standalone = (await overlay('standalone')).find((o) => o.kind === 'NetworkPolicy')!;
  assert.ok(standalone.spec.policyTypes.includes('Egress'));
});

test('pods wait before SIGTERM (preStop) and spread over nodes and zones', async () => {
  for (const name of OVERLAYS) {
    const { pod, proxy, deployment } = pieces(await overlay(name));
    assert.ok(proxy.lifecycle?.preStop?.sleep?.seconds >= 5, `${name}: preStop delay`);
    const keys = pod.topologySpreadConstraints.map((t: Manifest) => t.topologyKey);
    assert.deepEqual(keys.sort(), ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'], name);
    const podLabels = deployment.spec.template.metadata.labels;
    for (const t of pod.topologySpreadConstraints) {
      for (const [k, v] of Object.entries(t.labelSelector.matchLabels)) assert.equal(podLabels[k], v, `${name}: the spread selects the proxy's own pods`);
    }
  }
});

test('the base image is pinned to the Node release the tests run on; compose names a locally built image and pinned ones', () => {
  const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  assert.ok(arg, 'ARG NODE_IMAGE');
  assert.match(arg, /^node:\d+\.\d+\.\d+-[a-z]+(@sha256:[0-9a-f]{64})?$/, 'an exact version tag (or a digest)');
  for (const m of dockerfile.matchAll(/^FROM (\S+)/gm)) assert.equal(m[1], '${NODE_IMAGE}', `FROM ${m[1]}`);
  const tested = (JSON.parse(readFileSync(join(ROOT, 'node_modules/node/package.json'), 'utf8')) as { version: string }).version;
  assert.equal(arg.split(':')[1]!.split('-')[0], tested, 'the image runs the Node release the tests ran on');
  assert.equal(process.version, `v${tested}`);

  const compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8')) as { services: Record<string, Manifest> };
  for (const [name, s] of Object.entries(compose.services)) {
    if (s.build) {
      assert.equal(s.pull_policy, 'build', `${name}: built here, never pulled`);
    } else {
      assert.match(s.image, /^[\w.-]+(\/[\w.-]+)+(:[\w.-]*\d[\w.-]*)?(@sha256:[0-9a-f]{64})?$/, `${name}: ${s.image}`);
      assert.ok(/@sha256:|:[\w.-]*\d/.test(s.image) && !s.image.endsWith(':latest'), `${name}: ${s.image} is not pinned`);
      // Docker Hub's minio/minio is gone; MinIO publishes on quay.io.
      assert.ok(!/^minio\//.test(s.image), `${name}: ${s.image} is no longer published`);
    }
  }
});

/** Metric names a PromQL expression reads: selectors (followed by `{` or `[`) and every `ssec_proxy_` name. */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const m of withoutStrings.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)) names.add(m[1]!);
  for (const m of withoutStrings.matchAll(/\bssec_proxy_[a-zA-Z0-9_]+/g)) names.add(m[0]);
  return [...names];
}

test('the alert rules and the dashboard name only metrics a running proxy exports', async () => {
  assert.deepEqual(metricNames('sum by (code) (rate(foo_total{code="x{"}[5m])) / ssec_proxy_bar').sort(), ['foo_total', 'ssec_proxy_bar']);
  const objects = await overlay('standalone');
  const rules = objects.find((o) => o.kind === 'PrometheusRule')!;
  const exprs: Array<[string, string]> = rules.spec.groups.flatMap((g: Manifest) => g.rules.map((r: Manifest) => [`alert ${r.alert}`, r.expr]));
  const board = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1')!;
  const dashboard = JSON.parse(board.data['s3-ssec-proxy.json']) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
  assert.deepEqual(dashboard, JSON.parse(readFileSync(join(ROOT, 'deploy/k8s/components/monitoring/dashboard.json'), 'utf8')));
  for (const p of dashboard.panels) for (const t of p.targets) exprs.push([`panel "${p.title}"`, t.expr]);
  for (const alert of ['SsecProxyIntegrityFailure', 'SsecProxyUpstreamErrors', 'SsecProxyUploadSlotsNearMax', 'SsecProxyConnectionsNearMax', 'SsecProxyKmsFailures']) {
    assert.ok(exprs.some(([where]) => where === `alert ${alert}`), `alert ${alert}`);
  }

  // A running proxy's /metrics (over a store it never needs to reach for this).
  const dir = mkdtempSync(join(tmpdir(), 'ssec-metrics-names-'));
  const cert = await ensureDevCertificate(dir);
  const config = loadConfig({ env: { SSEC_PROXY_LISTEN: '127.0.0.1:0', SSEC_PROXY_UPSTREAM_URL: 'http://127.0.0.1:9', SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: 'a', SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: 'b' } });
  const metrics = new Metrics();
  const upstream = new Upstream(config.upstream!.url, 'us-east-1', { observer: metrics.upstreamObserver });
  const proxy = await startProxy({ config, upstream, tls: { cert: cert.certPem, key: cert.keyPem }, metrics, log: () => {} });
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, metrics, upstream, identity: config.upstream! });
  let text: string;
  try {
    text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  } finally {
    await admin.close();
    await proxy.close();
    await upstream.close();
    metrics.close();
  }
  const exported = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    exported.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) exported.add(name + s);
  }
  assert.ok(exported.has('ssec_proxy_integrity_failures_total'));
  const missing = exprs.flatMap(([where, expr]) => metricNames(expr).filter((n) => !exported.has(n)).map((n) => `${where}: ${n}`));
  assert.deepEqual(missing, []);
});

test('a Deployment scaled by an autoscaler states no replica count (every apply would reset the autoscaler\'s)', async () => {
  for (const name of OVERLAYS) {
    const objects = await overlay(name);
    const { deployment } = pieces(objects);
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler');
    if (hpa) {
      assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
      assert.equal(deployment.spec.replicas, undefined, `${name}: replicas beside an HPA`);
    } else assert.ok(deployment.spec.replicas >= 1, name);
  }
});
