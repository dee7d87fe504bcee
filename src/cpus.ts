/**
 * How many CPUs the process may use: the host's (or its affinity mask's), capped by a cgroup CPU quota — a
 * container limited to 2 CPUs on a 64-core node runs 2 workers, not 64.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** The cgroup files that limit CPU, as read (undefined: absent). */
export interface CgroupCpuFiles {
  /** cgroup v2 `cpu.max`: "<quota|max> <period>". */
  readonly cpuMax?: string | undefined;
  /** cgroup v1 `cpu.cfs_quota_us` (-1: none) and `cpu.cfs_period_us`. */
  readonly cfsQuota?: string | undefined;
  readonly cfsPeriod?: string | undefined;
}

/** Whole CPUs a cgroup quota allows (rounded up: 1.5 CPUs keep 2 workers busy), undefined when unlimited. */
export function cgroupCpuLimit(files: CgroupCpuFiles): number | undefined {
  const cpus = (quota: number, period: number) => (quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined);
  if (files.cpuMax !== undefined) {
    const [quota, period] = files.cpuMax.trim().split(/\s+/);
    if (quota === 'max' || quota === undefined) return undefined;
    return cpus(Number(quota), Number(period ?? '100000'));
  }
  if (files.cfsQuota !== undefined) return cpus(Number(files.cfsQuota.trim()), Number((files.cfsPeriod ?? '100000').trim()));
  return undefined;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The process's own cgroup files: its path from /proc/self/cgroup (a host's service), else the mount root (a
 * container with its own cgroup namespace sees its cgroup there).
 */
function ownCgroupFiles(): CgroupCpuFiles {
  const self = read('/proc/self/cgroup') ?? '';
  const v2Path = /^0::(\/.*)$/m.exec(self)?.[1];
  const v1Path = /^\d+:[^:]*\bcpu\b[^:]*:(\/.*)$/m.exec(self)?.[1];
  for (const dir of [v2Path && v2Path !== '/' ? `/sys/fs/cgroup${v2Path}` : undefined, '/sys/fs/cgroup']) {
    const cpuMax = dir && read(`${dir}/cpu.max`);
    if (cpuMax) return { cpuMax };
  }
  for (const root of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
    for (const dir of [v1Path && v1Path !== '/' ? root + v1Path : undefined, root]) {
      const cfsQuota = dir && read(`${dir}/cpu.cfs_quota_us`);
      if (cfsQuota) return { cfsQuota, cfsPeriod: read(`${dir}/cpu.cfs_period_us`) };
    }
  }
  return {};
}

/** The default worker count: the CPUs available to the process, at most its cgroup's quota. */
export function availableCpus(): number {
  return Math.max(1, Math.min(availableParallelism(), cgroupCpuLimit(ownCgroupFiles()) ?? Infinity));
}
