/**
 * The real CLI (`bin/s3-ssec-proxy.js`) as a child process over the test RGW, for what only a process shows:
 * signals, and every byte it writes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { ensureDevCertificate } from '../../src/tls/dev-cert.ts';
import { freePort } from './net.ts';
import type { UpstreamInfo } from './proxy.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface CliProxy {
  readonly child: ChildProcess;
  readonly port: number;
  readonly caPem: string;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output(): Buffer;
  /** An SDK client for the proxy (destroyed by stop()). */
  client(): S3Client;
  /** SIGTERM (once) and wait for the exit. */
  stop(): Promise<void>;
}

export async function startCli(up: UpstreamInfo, env: Record<string, string> = {}): Promise<CliProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'ssec-cli-'));
  const cert = await ensureDevCertificate(dir);
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js')], {
    env: {
      ...process.env,
      SSEC_PROXY_LISTEN: `127.0.0.1:${port}`,
      SSEC_PROXY_STATE_DIR: dir,
      SSEC_PROXY_UPSTREAM_URL: up.endpoint,
      SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: up.accessKeyId,
      SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: up.secretAccessKey,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const written: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => written.push(c));
  child.stderr!.on('data', (c: Buffer) => written.push(c));
  const output = () => Buffer.concat(written);
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', () => output().toString().includes('listening on') && resolve());
    child.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${output().toString()}`)));
  });
  const agent = new https.Agent({ ca: cert.caPem, keepAlive: true });
  const clients: S3Client[] = [];
  return {
    child,
    port,
    caPem: cert.caPem,
    output,
    client() {
      const c = new S3Client({
        endpoint: `https://127.0.0.1:${port}`,
        region: up.region,
        forcePathStyle: true,
        credentials: { accessKeyId: up.accessKeyId, secretAccessKey: up.secretAccessKey },
        requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
      });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.destroy();
      agent.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export interface ToolRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stderr's JSON lines (the tools' progress when stderr is not a terminal). */
  readonly events: Array<Record<string, unknown>>;
}

/**
 * One run of a tool subcommand (`s3-ssec-proxy <args>`) as the bin starts it, over `up` with no proxy (none:
 * no upstream configured at all).
 * `onEvent` sees each JSON line of stderr as it comes (with the child, to signal it).
 */
export function runToolCli(
  up: UpstreamInfo | undefined,
  args: string[],
  env: Record<string, string> = {},
  onEvent?: (event: Record<string, unknown>, child: ChildProcess) => void,
): Promise<ToolRun> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/s3-ssec-proxy.js'), ...args], {
    env: {
      ...process.env,
      ...(up
        ? {
            SSEC_PROXY_UPSTREAM_URL: up.endpoint,
            SSEC_PROXY_UPSTREAM_REGION: up.region,
            SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: up.accessKeyId,
            SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: up.secretAccessKey,
          }
        : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const events: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stdout!.on('data', (c: Buffer) => out.push(c));
  child.stderr!.on('data', (c: Buffer) => {
    err.push(c);
    const lines = (partial + c.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      events.push(e);
      onEvent?.(e, child);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), events }),
    );
  });
}
