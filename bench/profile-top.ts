/**
 * The top self-time functions of a V8 .cpuprofile (`node --cpu-prof`), as a share of all samples, idle and GC
 * included, so two profiles of the same load compare line by line.
 *
 *   node --import tsx bench/profile-top.ts <file.cpuprofile> [--top 30] [--inclusive] [--callers NAME [--depth 4]]
 *
 * --inclusive ranks by total time (self and callees: each function counted once per sample).
 * --callers lists the call paths (DEPTH frames up) that spend self time in functions whose name is NAME.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, callers: { type: 'string' }, depth: { type: 'string', default: '4' }, inclusive: { type: 'boolean', default: false } } });
const file = positionals[0];
if (!file) throw new Error('usage: profile-top.ts <file.cpuprofile> [--top N]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: ProfileNode) => {
  const { functionName, url, lineNumber } = n.callFrame;
  return `${functionName || '(anonymous)'}${url ? ` ${basename(url)}:${lineNumber + 1}` : ''}`;
};
const paths = new Map<string, number>();
const self = new Map<string, number>();
const total2 = new Map<string, number>();
let total = 0;
let idle = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  const { functionName } = byId.get(id)!.callFrame;
  total += dt;
  if (functionName === '(idle)') return void (idle += dt);
  const name = label(byId.get(id)!);
  self.set(name, (self.get(name) ?? 0) + dt);
  if (values.inclusive) {
    const seen = new Set<string>();
    for (let p = parent.get(id); p !== undefined; p = parent.get(p)) seen.add(label(byId.get(p)!));
    for (const n of seen) if (n !== name) total2.set(n, (total2.get(n) ?? 0) + dt);
  }
  if (values.callers !== undefined && functionName === values.callers) {
    const chain: string[] = [];
    for (let p = parent.get(id); p !== undefined && chain.length < Number(values.depth); p = parent.get(p)) chain.push(label(byId.get(p)!));
    const key = chain.join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + dt);
  }
});
const busy = total - idle;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy; % of busy time\n`);
if (values.inclusive) for (const [n, us] of self) total2.set(n, (total2.get(n) ?? 0) + us);
for (const [name, us] of [...(values.inclusive ? total2 : self)].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
  process.stdout.write(`${((100 * us) / busy).toFixed(1).padStart(5)} %  ${name}\n`);
}
if (values.callers !== undefined) {
  process.stdout.write(`\ncallers of ${values.callers}:\n`);
  for (const [chain, us] of [...paths].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    process.stdout.write(`${((100 * us) / busy).toFixed(1).padStart(5)} %  < ${chain}\n`);
  }
}
