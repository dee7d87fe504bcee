/**
 * Resume state: a header line naming the run (tool, bucket, prefix, target), then one JSON line per finished
 * object, appended (synchronously, so a killed run loses at most the line being written) to the --state file.
 * A re-run of the same run reads it back and skips those objects, replaying their results into its summary; a
 * file of another run (or an old one without a header) is refused, since skipping its objects would report
 * success with nothing done. A torn last line (the process killed mid-write) is ignored.
 */
import { appendFileSync, closeSync, existsSync, openSync, readFileSync } from 'node:fs';

export interface DoneEntry {
  /** The bucket and object key. */
  readonly b: string;
  readonly k: string;
  /** What the tool did (tool-specific: "encrypted", "skipped", …) and what it saw. */
  readonly r: Record<string, unknown>;
}

/**
 * What makes two runs the same run. `target`: what the objects end up under (the new SSE-C key's MD5, the KMS
 * key id, the mode), never a key itself.
 */
export interface RunFingerprint {
  readonly tool: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly target: string;
}

export class StateMismatch extends Error {}

export class ResumeState {
  readonly #path: string | undefined;
  /** Only the entries of earlier runs: this run's own go to the file alone (memory stays flat on huge buckets). */
  readonly #done = new Map<string, DoneEntry>();
  readonly #tool: string;

  /** `path` undefined: nothing is recorded (a re-run is still safe: each tool skips work already done). */
  constructor(path: string | undefined, run: RunFingerprint) {
    this.#path = path;
    this.#tool = run.tool;
    if (!path) return;
    const header = JSON.stringify({ state: 1, run: { tool: run.tool, bucket: run.bucket, prefix: run.prefix, target: run.target } });
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (!text.trim()) {
      closeSync(openSync(path, 'a', 0o600));
      appendFileSync(path, header + '\n');
      return;
    }
    const lines = text.split('\n');
    if (lines[0] !== header) throw new StateMismatch(`--state ${path} ${describeHeader(lines[0]!, run)}: use another file (or remove it to start over)`);
    for (const line of lines.slice(1)) {
      if (!line.trim()) continue;
      let e: DoneEntry | undefined;
      try {
        e = JSON.parse(line) as DoneEntry;
      } catch {
        continue; // a torn last line
      }
      if (typeof e.b === 'string' && typeof e.k === 'string') this.#done.set(id(e.b, e.k), e);
    }
  }

  /** How many objects earlier runs recorded. */
  get size(): number {
    return this.#done.size;
  }

  done(bucket: string, key: string): DoneEntry | undefined {
    return this.#done.get(id(bucket, key));
  }

  record(bucket: string, key: string, result: Record<string, unknown>): void {
    if (this.#path) appendFileSync(this.#path, JSON.stringify({ tool: this.#tool, b: bucket, k: key, r: result }) + '\n');
  }
}

/** Why the file's first line is not this run's header (what differs, never more than the header holds). */
function describeHeader(line: string, run: RunFingerprint): string {
  let h: { state?: unknown; run?: Partial<RunFingerprint> } | undefined;
  try {
    h = JSON.parse(line) as typeof h;
  } catch {
    h = undefined;
  }
  const other = h?.state === 1 ? h.run : undefined;
  if (!other || typeof other !== 'object') return 'has no run header (written by an older version or not a state file)';
  if (other.tool !== run.tool) return `records a run of "${String(other.tool)}", not "${run.tool}"`;
  if (other.bucket !== run.bucket || other.prefix !== run.prefix) return `records a run on ${String(other.bucket)}/${String(other.prefix)}, not ${run.bucket}/${run.prefix}`;
  return `records a run with another target (${String(other.target)}, not ${run.target})`;
}

function id(bucket: string, key: string): string {
  return `${bucket}\u0000${key}`;
}
