/**
 * The default worker count honours a container's CPU quota (cgroup v2 cpu.max, v1 cpu.cfs_quota_us).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { availableCpus, cgroupCpuLimit } from '../../src/cpus.ts';
import { loadConfig } from '../../src/config.ts';

test('cgroup v2 cpu.max: quota / period rounded up, "max" is no limit', () => {
  const cases: Array<[string, number | undefined]> = [
    ['max 100000\n', undefined],
    ['200000 100000\n', 2],
    ['150000 100000\n', 2],
    ['50000 100000\n', 1],
    ['1000 100000\n', 1],
    ['400000 50000', 8],
    ['max', undefined],
  ];
  for (const [cpuMax, want] of cases) assert.equal(cgroupCpuLimit({ cpuMax }), want, JSON.stringify(cpuMax));
});

test('cgroup v1 cfs quota: -1 is no limit, period defaults to 100 ms', () => {
  assert.equal(cgroupCpuLimit({ cfsQuota: '-1\n', cfsPeriod: '100000\n' }), undefined);
  assert.equal(cgroupCpuLimit({ cfsQuota: '300000\n', cfsPeriod: '100000\n' }), 3);
  assert.equal(cgroupCpuLimit({ cfsQuota: '250000\n' }), 3);
  assert.equal(cgroupCpuLimit({}), undefined);
  // v2 wins when both are mounted (hybrid hosts).
  assert.equal(cgroupCpuLimit({ cpuMax: '100000 100000', cfsQuota: '800000', cfsPeriod: '100000' }), 1);
});

test('SSEC_PROXY_WORKERS: the CPUs available by default, an integer 1..1024 otherwise, or the file\'s "workers"', () => {
  assert.equal(loadConfig({ env: {}, cpus: 6 }).workers, 6);
  assert.equal(loadConfig({ env: {} }).workers, availableCpus());
  assert.ok(availableCpus() >= 1);
  assert.equal(loadConfig({ env: { SSEC_PROXY_WORKERS: '1' }, cpus: 6 }).workers, 1);
  const file = join(mkdtempSync(join(tmpdir(), 'ssec-cpus-')), 'config.json');
  writeFileSync(file, JSON.stringify({ workers: 3 }));
  assert.equal(loadConfig({ configPath: file, env: {}, cpus: 6 }).workers, 3);
  assert.equal(loadConfig({ configPath: file, env: { SSEC_PROXY_WORKERS: '2' }, cpus: 6 }).workers, 2);
  assert.throws(() => loadConfig({ env: { SSEC_PROXY_WORKERS: '0' } }), /SSEC_PROXY_WORKERS: must be an integer, 1\.\.1024/);
  assert.throws(() => loadConfig({ env: { SSEC_PROXY_WORKERS: 'auto' } }), /SSEC_PROXY_WORKERS/);
});
