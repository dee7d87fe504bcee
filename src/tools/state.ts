/**
 * Resume state: one JSON line per finished object, appended (synchronously, so a killed run loses at most the
 * line being written) to the --state file. A re-run reads it back and skips those objects, replaying their
 * results into its summary. A torn last line (the process killed mid-write) is ignored.
 */
import { appendFileSync, closeSync, existsSync, openSync, readFileSync } from 'node:fs';

export interface DoneEntry {
  /** The bucket and object key. */
  readonly b: string;
  readonly k: string;
  /** What the tool did (tool-specific: "encrypted", "skipped", …) and what it saw. */
  readonly r: Record<string, unknown>;
}

export class ResumeState {
  readonly #path: string | undefined;
  readonly #done = new Map<string, DoneEntry>();
  readonly #tool: string;

  /** `path` undefined: nothing is recorded (a re-run is still safe: each tool skips work already done). */
  constructor(path: string | undefined, tool: string) {
    this.#path = path;
    this.#tool = tool;
    if (!path) return;
    if (existsSync(path)) {
      const lines = readFileSync(path, 'utf8').split('\n');
      for (const line of lines) {
        if (!line.trim()) continue;
        let e: (DoneEntry & { tool?: string }) | undefined;
        try {
          e = JSON.parse(line) as DoneEntry & { tool?: string };
        } catch {
          continue; // a torn last line
        }
        if (e.tool !== undefined && e.tool !== tool) throw new Error(`--state ${path} records a run of "${e.tool}", not "${tool}": use another file`);
        if (typeof e.b === 'string' && typeof e.k === 'string') this.#done.set(id(e.b, e.k), e);
      }
    } else closeSync(openSync(path, 'a', 0o600));
  }

  get size(): number {
    return this.#done.size;
  }

  done(bucket: string, key: string): DoneEntry | undefined {
    return this.#done.get(id(bucket, key));
  }

  record(bucket: string, key: string, result: Record<string, unknown>): void {
    const e: DoneEntry = { b: bucket, k: key, r: result };
    this.#done.set(id(bucket, key), e);
    if (this.#path) appendFileSync(this.#path, JSON.stringify({ tool: this.#tool, ...e }) + '\n');
  }
}

function id(bucket: string, key: string): string {
  return `${bucket}\u0000${key}`;
}
