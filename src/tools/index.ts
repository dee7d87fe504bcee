/**
 * The operator's tools, subcommands of the one CLI: `inventory`, `encrypt-existing`, `rotate`, `decrypt`. They
 * talk to the upstream store directly (no proxy running) through objects/, the same code the proxy reads and
 * writes with; none imports the HTTP server (lint enforces it).
 */
import { decrypt } from './decrypt.ts';
import { encryptExisting } from './encrypt-existing.ts';
import { inventory } from './inventory.ts';
import { rotate } from './rotate.ts';
import { runTool, type Tool } from './run.ts';

const TOOLS: ReadonlyMap<string, Tool> = new Map([inventory, encryptExisting, rotate, decrypt].map((t) => [t.name, t]));

/** One line per tool for the CLI's help. */
export const TOOLS_HELP = [...TOOLS.values()].map((t) => `       s3-ssec-proxy ${t.name} --help   (${t.summary})`).join('\n');

/** The tool `name` run on `argv` (its exit code), or undefined when `name` is no tool. */
export function runNamedTool(name: string | undefined, argv: string[]): Promise<number> | undefined {
  const tool = name === undefined ? undefined : TOOLS.get(name);
  if (!tool) return undefined;
  return runTool(tool, argv, {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    stderrIsTty: process.stderr.isTTY === true,
    env: process.env,
  });
}
