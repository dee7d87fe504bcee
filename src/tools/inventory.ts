/**
 * `inventory`: how much of a bucket (or prefix) is stored in each encryption mode: objects and stored bytes
 * for plain, SSE-C, SSE-S3 and SSE-KMS (and per KMS key id), from one HEAD per object (a listing does not
 * say). Current versions only. Changes nothing.
 */
import { MODES, modeOf, type Mode } from './modes.ts';
import { formatBytes } from './progress.ts';
import { BULK_OPTIONS, bulk, CONFIG_OPTION, headListed, type Tool } from './run.ts';

interface Count {
  objects: number;
  bytes: number;
}

export const inventory: Tool = {
  name: 'inventory',
  summary: 'objects and bytes of a bucket by encryption mode',
  usage: '--bucket B [--prefix P] [--json] [--concurrency N] [--state FILE]',
  options: {
    ...BULK_OPTIONS,
    json: { type: 'boolean', help: 'print one JSON document on stdout (else a table)' },
    ...CONFIG_OPTION,
  },
  notes:
    'Modes: plain, sse-c, sse-s3, sse-kms (also by KMS key id), invalid (the proxy\'s metadata is there but\n' +
    'does not parse: such an object cannot be read), and store-sse-c (the store\'s own SSE-C, written past the\n' +
    'proxy). Bytes are stored bytes, as the store lists them.',
  async run(values, io) {
    const modes = Object.fromEntries(MODES.map((m) => [m, { objects: 0, bytes: 0 }])) as Record<Mode, Count>;
    const kmsKeys: Record<string, Count> = {};
    const add = (mode: Mode, keyId: string | undefined, bytes: number) => {
      modes[mode].objects++;
      modes[mode].bytes += bytes;
      if (keyId !== undefined) {
        const k = (kmsKeys[keyId] ??= { objects: 0, bytes: 0 });
        k.objects++;
        k.bytes += bytes;
      }
    };
    const { summary, code } = await bulk(
      'inventory',
      { ...values, 'dry-run': false },
      io,
      async (run, listed) => {
        const stored = await headListed(run, listed);
        if (stored === 'gone') return { outcome: 'gone' };
        const { mode, keyId } = stored === 'store-sse-c' ? { mode: stored, keyId: undefined } : modeOf(stored);
        const bytes = stored === 'store-sse-c' ? listed.size : stored.size;
        add(mode, keyId, bytes);
        return { outcome: mode, mode, bytes, ...(keyId !== undefined ? { keyId } : {}) };
      },
      {
        defaultConcurrency: 16,
        replay: (r) => {
          if (typeof r.mode === 'string' && (MODES as readonly string[]).includes(r.mode)) {
            add(r.mode as Mode, typeof r.keyId === 'string' ? r.keyId : undefined, Number(r.bytes ?? 0));
          }
        },
      },
    );
    const doc = {
      bucket: summary.bucket,
      ...(summary.prefix !== undefined ? { prefix: summary.prefix } : {}),
      complete: code === 0,
      objects: MODES.reduce((n, m) => n + modes[m].objects, 0),
      bytes: MODES.reduce((n, m) => n + modes[m].bytes, 0),
      modes,
      kmsKeys,
    };
    if (values.json) io.stdout(JSON.stringify(doc, null, 2) + '\n');
    else {
      const rows = [...MODES.map((m) => [m, modes[m]] as const), ...Object.entries(kmsKeys).map(([id, c]) => [`  key ${id}`, c] as const)];
      const w = Math.max(...rows.map(([n]) => n.length));
      io.stdout(
        `${doc.bucket}${doc.prefix ? `/${doc.prefix}` : ''}: ${doc.objects} objects, ${formatBytes(doc.bytes)}${doc.complete ? '' : ' (incomplete: see the errors above)'}\n` +
          rows.map(([n, c]) => `  ${n.padEnd(w)}  ${String(c.objects).padStart(8)} objects  ${formatBytes(c.bytes).padStart(10)}`).join('\n') +
          '\n',
      );
    }
    return code;
  },
};
