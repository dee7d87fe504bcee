/**
 * What a running tool tells its operator, on stderr: on a terminal one line redrawn in place (objects, bytes,
 * rate, ETA once the listing is complete), otherwise JSON lines (one per object, and the summary), which logs
 * and scripts read. Object keys are shown; keys' bytes never are (nothing here sees them).
 */
export interface ProgressOptions {
  /** Redraw a line (a TTY) rather than JSON lines. */
  readonly tty: boolean;
  readonly write: (text: string) => void;
  readonly now?: () => number;
}

export interface ObjectEvent {
  readonly bucket: string;
  readonly key: string;
  /** What happened to it, tool-specific ("encrypted", "already-encrypted", "changed", "failed", …). */
  readonly outcome: string;
  /** Stored bytes (as listed). */
  readonly bytes: number;
  readonly [more: string]: unknown;
}

/** C0/C1 controls (ESC, CSI, BEL, CR…) and the bidi overrides: what a terminal acts on rather than shows. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` safe to put on a terminal: controls shown as \uXXXX escapes (object keys and store errors are anyone's). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** An object's name on a terminal line: quoted and escaped as JSON writes it, controls included. */
export function shownKey(bucket: string, key: string): string {
  return printable(JSON.stringify(`${bucket}/${key}`));
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${UNITS[i]}`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class Progress {
  readonly #o: ProgressOptions;
  readonly #tool: string;
  readonly #started: number;
  readonly outcomes = new Map<string, { objects: number; bytes: number }>();
  #listedObjects = 0;
  #listedBytes = 0;
  #listingDone = false;
  #doneObjects = 0;
  #doneBytes = 0;
  /** Bytes of objects skipped from the state file: not part of this run's rate. */
  #resumedBytes = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(tool: string, o: ProgressOptions) {
    this.#o = o;
    this.#tool = tool;
    this.#started = this.#now();
    if (o.tty) this.#timer = setInterval(() => this.#draw(), 250).unref();
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  listed(bytes: number): void {
    this.#listedObjects++;
    this.#listedBytes += bytes;
  }

  listingDone(): void {
    this.#listingDone = true;
  }

  /** One object finished (whatever the outcome); `resumed`: done by an earlier run (the state file says). */
  object(e: ObjectEvent, resumed = false): void {
    this.#doneObjects++;
    this.#doneBytes += e.bytes;
    if (resumed) this.#resumedBytes += e.bytes;
    const o = this.outcomes.get(e.outcome) ?? { objects: 0, bytes: 0 };
    o.objects++;
    o.bytes += e.bytes;
    this.outcomes.set(e.outcome, o);
    if (this.#o.tty) {
      if (e.outcome === 'failed' || e.outcome === 'changed') this.#above(`${e.outcome}: ${shownKey(e.bucket, e.key)}${e.error ? `: ${printable(String(e.error))}` : ''}`);
    } else if (!resumed) this.#json({ event: 'object', ...e });
  }

  /** A line of its own (an event worth keeping: a pause, a warning). */
  note(event: Record<string, unknown>, text: string): void {
    if (this.#o.tty) this.#above(printable(text));
    else this.#json({ event: 'note', ...event });
  }

  /** The final line, and the counts it shows. */
  finish(extra: Record<string, unknown> = {}): Record<string, unknown> {
    if (this.#timer) clearInterval(this.#timer);
    const seconds = (this.#now() - this.#started) / 1000;
    const summary = {
      tool: this.#tool,
      objects: this.#doneObjects,
      bytes: this.#doneBytes,
      seconds: Math.round(seconds * 10) / 10,
      outcomes: Object.fromEntries(this.outcomes),
      ...extra,
    };
    if (this.#o.tty) {
      this.#o.write('\r\x1b[K');
      const parts = [...this.outcomes].map(([k, v]) => `${v.objects} ${k}`);
      this.#o.write(`${this.#tool}: ${this.#doneObjects} objects, ${formatBytes(this.#doneBytes)} in ${formatSeconds(seconds)}${parts.length ? ` (${parts.join(', ')})` : ''}\n`);
    } else this.#json({ event: 'summary', ...summary });
    return summary;
  }

  #json(o: Record<string, unknown>): void {
    this.#o.write(JSON.stringify({ tool: this.#tool, ...o }) + '\n');
  }

  #above(text: string): void {
    this.#o.write(`\r\x1b[K${text}\n`);
    this.#draw();
  }

  #draw(): void {
    const seconds = (this.#now() - this.#started) / 1000;
    const worked = this.#doneBytes - this.#resumedBytes;
    const rate = seconds > 0 ? worked / seconds : 0;
    const total = this.#listingDone ? `/${this.#listedObjects}` : '';
    const totalBytes = this.#listingDone ? `/${formatBytes(this.#listedBytes)}` : '';
    const eta = this.#listingDone && rate > 0 ? formatSeconds((this.#listedBytes - this.#doneBytes) / rate) : this.#listingDone ? '?' : 'listing…';
    const parts = [...this.outcomes].map(([k, v]) => `${v.objects} ${k}`).join(', ');
    this.#o.write(
      `\r\x1b[K${this.#tool}: ${this.#doneObjects}${total} objects, ${formatBytes(this.#doneBytes)}${totalBytes}, ${formatBytes(rate)}/s, ETA ${eta}${parts ? ` (${parts})` : ''}`,
    );
  }
}

/**
 * One stream's progress (decrypt): on a terminal a line redrawn with bytes, rate and ETA; otherwise a JSON line
 * every few seconds. `finish()` clears the line.
 */
export class ByteProgress {
  readonly #o: ProgressOptions;
  readonly #tool: string;
  readonly #total: number;
  readonly #started: number;
  #bytes = 0;
  #timer: NodeJS.Timeout;

  constructor(tool: string, total: number, o: ProgressOptions) {
    this.#o = o;
    this.#tool = tool;
    this.#total = total;
    this.#started = (o.now ?? Date.now)();
    this.#timer = setInterval(() => this.draw(), o.tty ? 250 : 5000).unref();
  }

  add(n: number): void {
    this.#bytes += n;
  }

  finish(): void {
    clearInterval(this.#timer);
    if (this.#o.tty) this.#o.write('\r\x1b[K');
  }

  /** The line (or JSON line) now; the timer calls it. */
  draw(): void {
    const seconds = ((this.#o.now ?? Date.now)() - this.#started) / 1000;
    const rate = seconds > 0 ? this.#bytes / seconds : 0;
    if (!this.#o.tty) {
      this.#o.write(JSON.stringify({ tool: this.#tool, event: 'progress', bytes: this.#bytes, total: this.#total }) + '\n');
      return;
    }
    const eta = rate > 0 ? formatSeconds((this.#total - this.#bytes) / rate) : '?';
    this.#o.write(`\r\x1b[K${this.#tool}: ${formatBytes(this.#bytes)}/${formatBytes(this.#total)}, ${formatBytes(rate)}/s, ETA ${eta}`);
  }
}
