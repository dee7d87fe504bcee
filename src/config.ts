/**
 * Configuration: an optional JSON file (--config) overridden by SSEC_PROXY_* environment variables, both
 * validated by one schema into a frozen Config. Every problem is reported together, each named by where its
 * value came from (the variable, or the file and field), so an operator fixes them in one go.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { availableCpus } from './cpus.ts';
import { jsonSyntaxProblem, parseLocalKeys } from './kms/local.ts';
import { KEY_ID_PATTERN } from './kms/kms.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';
import { isBucketPattern, parseBucketEncryption, type BucketEncryptionRule } from './sse-kms/bucket-encryption.ts';

export interface Credential {
  /** The key pair clients sign with. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The upstream identity requests are re-signed with. */
  readonly upstream: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Buckets this credential may use (`*` wildcards); undefined: any the upstream identity may. */
  readonly buckets?: readonly string[];
}

/** Which KMS holds the master keys (exactly one kind), and the default master key when not the first listed. */
export type KmsSettings =
  | { readonly localKeys: string; readonly defaultKeyId?: string }
  | {
      /** A PKCS#11 token (docs/FORMAT.md §13.5): module path, token label or slot index, user PIN. */
      readonly pkcs11: { readonly module: string; readonly token?: string; readonly slot?: number; readonly pin: string };
      readonly defaultKeyId: string;
    }
  | {
      /** A KMIP server (docs/FORMAT.md §13.6): host:port, PEM paths of its CA and of the client certificate and key. */
      readonly kmip: {
        readonly host: string;
        readonly port: number;
        readonly caFile?: string;
        readonly certFile: string;
        readonly keyFile: string;
        /** A Username and Password credential, for servers that ask for one besides the certificate (never logged). */
        readonly credentials?: { readonly username: string; readonly password: string };
      };
      readonly defaultKeyId: string;
    };

export interface Config {
  readonly listen: { readonly host: string; readonly port: number };
  /** PEM paths; undefined → a generated development certificate under stateDir. */
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  /** Optional plain-HTTP listener (sidecars). SSE-C is refused on it unless allowSsecFromLoopback. */
  readonly http:
    | {
        readonly host: string;
        readonly port: number;
        readonly allowSsecFromLoopback: boolean;
        /** Peers (IP addresses) trusted to terminate TLS and say so with `X-Forwarded-Proto: https`. */
        readonly trustedProxies: readonly string[];
      }
    | undefined;
  /** undefined → no store: the embedded one when `embedded` (development only), else serving refuses to start. */
  readonly upstream:
    | { readonly url: string; readonly region: string; readonly accessKeyId: string; readonly secretAccessKey: string }
    | undefined;
  /** Serve the embedded development store (said explicitly: --embedded, SSEC_PROXY_EMBEDDED, `embedded`). */
  readonly embedded?: boolean;
  /** The region clients sign for; defaults to the upstream's. */
  readonly region: string;
  /** Client credentials; empty → the upstream key pair itself is accepted. */
  readonly credentials: readonly Credential[];
  readonly stateDir: string;
  /** log2 of the plaintext chunk size for new objects (stored per object, so changing it is safe). */
  readonly chunkSizeLog2: number;
  /** How far a client's clock may be off, in ms (S3: 15 minutes). */
  readonly maxClockSkewMs: number;
  /**
   * The upstream does not give multipart objects `"…-N"` ETags (s3rver, some small stores), so every encrypted object's layout is
   * checked instead of only multipart ones.
   */
  readonly probeAllLayouts: boolean;
  /** SSE-C copies of objects above this many bytes use an upstream multipart copy (S3's single-copy limit). */
  readonly copyMultipartThreshold: number;
  /** Uploads (object and part bodies) streamed at once; beyond, S3's 503 SlowDown. */
  readonly maxConcurrentUploads: number;
  /** Client connections per listener; beyond, new ones are closed at once (the memory budget holds). */
  readonly maxConnections: number;
  /** An upload body silent this long fails with S3's RequestTimeout. */
  readonly bodyIdleMs: number;
  /**
   * Re-encrypt under a fresh data key whenever a copy changes the customer key, instead of re-sealing the
   * existing data key (docs/SECURITY.md). Costs a full read and write of the object through the proxy.
   */
  readonly reencryptOnKeyChange: boolean;
  /** Requests with no signature at all are forwarded unsigned (the store's ACLs decide); off: 403 at the proxy. */
  readonly allowAnonymous: boolean;
  /** The store keeps no bucket policies (the embedded development store): none to read or enforce. */
  readonly noBucketPolicies?: boolean;
  /**
   * Accept AWS Signature Version 2 (header, query and POST policy), verified and re-signed with SigV4 like any
   * request. Off: refused as S3 refuses it in regions without SigV2.
   */
  readonly allowSigV2: boolean;
  /**
   * Virtual-hosted-style addressing: requests to `bucket.<domain>` name the bucket in the Host header. The
   * certificate must cover `*.<domain>` (the generated development certificate does).
   */
  readonly virtualHostDomain: string | undefined;
  /** On SIGTERM, how long in-flight requests may run before they are cut (uploads cut are never stored). */
  readonly shutdownGraceMs: number;
  /** PEM bundle of CAs to trust for an https upstream (in addition to the system's). */
  readonly upstreamCa: string | undefined;
  /**
   * Worker processes sharing the listeners (node:cluster); 1: a single process, no cluster. Default: the CPUs
   * available to the process (cgroup quota included).
   */
  readonly workers: number;
  /** The admin listener (/metrics, /healthz, /readyz), off when undefined. */
  readonly admin: { readonly host: string; readonly port: number } | undefined;
  /** SSE-S3 / SSE-KMS: the `local` KMS's keys file or a PKCS#11 token; undefined: no KMS (such requests are refused). */
  readonly kms?: KmsSettings | undefined;
  /** Per-bucket encryption of writes that name none (first matching pattern wins); empty: none. */
  readonly bucketEncryption?: readonly BucketEncryptionRule[];
  /**
   * Bucket patterns whose objects are all written through this proxy with `chunkSizeLog2` (docs/MULTIPART.md,
   * "Listings"): a listing derives their plaintext sizes from the stored sizes instead of a HEAD each.
   */
  readonly encryptedOnlyBuckets?: readonly string[];
  /** The least severe log line written (access lines are `info`, the cause of a 5xx `warn`). @default 'info' */
  readonly logLevel?: LogLevel;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super('invalid configuration:\n' + problems.map((p) => '  - ' + p).join('\n'));
    this.name = 'ConfigError';
  }
}

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'must be host:port')
  .refine((s) => splitHostPort(s).port <= 65535, 'port out of range');
const nonEmpty = z.string().min(1, 'must not be empty');
const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: (i) => `"${String(i.input)}" is not an IP address` });
const seconds = (min: number, max: number) => z.number({ error: `must be a number of seconds, ${min}..${max}` }).min(min, `must be a number of seconds, ${min}..${max}`).max(max, `must be a number of seconds, ${min}..${max}`);
const count = (max: number) => z.number().int(`must be an integer, 1..${max}`).min(1, `must be an integer, 1..${max}`).max(max, `must be an integer, 1..${max}`);

// Strict: a misspelt field ("bucket" for "buckets") would otherwise be dropped and widen the credential.
const credentialSchema = z
  .object({
    accessKeyId: nonEmpty,
    secretAccessKey: nonEmpty,
    upstream: z.object({ accessKeyId: nonEmpty, secretAccessKey: nonEmpty }).strict().optional(),
    buckets: z.array(nonEmpty).optional(),
  })
  .strict();

/**
 * The one schema: the configuration file's shape. Environment variables (ENV below) set its fields, so both are
 * validated by the same rules. Every leaf is optional here; what is required together is checked in loadConfig.
 * Adding a setting: a field here, its variable in ENV, its use in loadConfig, a row in README.md.
 */
const schema = z.object({
  listen: hostPort.optional(),
  tls: z.object({ cert: nonEmpty.optional(), key: nonEmpty.optional() }).optional(),
  http: z
    .object({ listen: hostPort.optional(), allowSsecFromLoopback: z.boolean().optional(), trustedProxies: z.array(ipAddress).optional() })
    .optional(),
  upstream: z
    .object({
      url: z
        .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
        .refine((u) => new URL(u).pathname === '/' && !new URL(u).search, 'must not have a path or query (path-style S3 endpoint)')
        .optional(),
      region: nonEmpty.optional(),
      accessKeyId: nonEmpty.optional(),
      secretAccessKey: nonEmpty.optional(),
      multipartEtags: z.boolean().optional(),
      caFile: nonEmpty.optional(),
    })
    .optional(),
  /** The embedded development store when no upstream is set (never implied: a container must not lose data). */
  embedded: z.boolean().optional(),
  region: nonEmpty.optional(),
  credentials: z.array(credentialSchema).optional(),
  credentialsFile: nonEmpty.optional(),
  stateDir: nonEmpty.optional(),
  chunkSizeLog2: z.number().int().min(12).max(24).optional(),
  maxClockSkewMinutes: z.number().positive().max(60 * 24).optional(),
  copyMultipartThreshold: z
    .number()
    .int('must be a byte count between 5 MiB and 5 GiB')
    .min(5 * 1024 * 1024, 'must be a byte count between 5 MiB and 5 GiB')
    .max(5 * 1024 ** 3, 'must be a byte count between 5 MiB and 5 GiB')
    .optional(),
  maxConcurrentUploads: count(100_000).optional(),
  maxConnections: count(1_000_000).optional(),
  bodyIdleSeconds: seconds(1, 3600).optional(),
  reencryptOnKeyChange: z.boolean().optional(),
  allowAnonymous: z.boolean().optional(),
  allowSigV2: z.boolean().optional(),
  virtualHostDomain: z.string().regex(/^[a-z0-9.-]+$/i, 'must be a DNS name').optional(),
  shutdownGraceSeconds: seconds(0, 3600).optional(),
  adminListen: hostPort.optional(),
  workers: count(1024).optional(),
  kms: z
    .object({
      localKeys: nonEmpty.optional(),
      defaultKey: z.string().regex(KEY_ID_PATTERN, `must match ${KEY_ID_PATTERN}`).optional(),
      pkcs11: z
        .object({
          module: nonEmpty.optional(),
          token: nonEmpty.optional(),
          slot: z.number().int('must be a slot index, 0 or more').min(0, 'must be a slot index, 0 or more').optional(),
          pin: nonEmpty.optional(),
          pinFile: nonEmpty.optional(),
        })
        .optional(),
      kmip: z
        .object({
          endpoint: hostPort.optional(),
          caFile: nonEmpty.optional(),
          certFile: nonEmpty.optional(),
          keyFile: nonEmpty.optional(),
          username: nonEmpty.optional(),
          password: nonEmpty.optional(),
        })
        .optional(),
    })
    .optional(),
  /** `{"<bucket pattern>": "<policy>"}`, parsed by sse-kms/bucket-encryption.ts. */
  bucketEncryption: z.unknown().optional(),
  encryptedOnlyBuckets: z
    .array(z.string().refine(isBucketPattern), {
      error: 'must be a JSON array of bucket name patterns (a-z 0-9 . - and * wildcards), e.g. ["backups-*"]',
    })
    .optional(),
  logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).optional(),
});

type Settings = z.infer<typeof schema>;

/** How an environment variable's text becomes its field's value (then validated by the schema). */
const FROM_TEXT = {
  string: z.string(),
  boolean: z.stringbool({ truthy: ['1', 'true', 'yes', 'on'], falsy: ['0', 'false', 'no', 'off'], case: 'insensitive', error: 'must be true or false' }),
  number: z
    .string()
    .trim()
    .regex(/^-?\d+(\.\d+)?$/, 'must be a number')
    .transform(Number),
  json: z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  }),
  list: z.string().transform((text) => text.split(',').map((x) => x.trim()).filter(Boolean)),
} as const;

/**
 * Every environment variable, the schema field it sets and how its text is read. Each also has a NAME_FILE form
 * whose file content is the value (secrets mounted as files). Variables override the file's fields.
 */
export const ENV: Readonly<Record<string, { readonly path: string; readonly kind: keyof typeof FROM_TEXT }>> = {
  SSEC_PROXY_LISTEN: { path: 'listen', kind: 'string' },
  SSEC_PROXY_TLS_CERT: { path: 'tls.cert', kind: 'string' },
  SSEC_PROXY_TLS_KEY: { path: 'tls.key', kind: 'string' },
  SSEC_PROXY_HTTP_LISTEN: { path: 'http.listen', kind: 'string' },
  SSEC_PROXY_ALLOW_SSEC_OVER_LOOPBACK_HTTP: { path: 'http.allowSsecFromLoopback', kind: 'boolean' },
  SSEC_PROXY_TRUSTED_PROXIES: { path: 'http.trustedProxies', kind: 'list' },
  SSEC_PROXY_UPSTREAM_URL: { path: 'upstream.url', kind: 'string' },
  SSEC_PROXY_UPSTREAM_REGION: { path: 'upstream.region', kind: 'string' },
  SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: { path: 'upstream.accessKeyId', kind: 'string' },
  SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: { path: 'upstream.secretAccessKey', kind: 'string' },
  SSEC_PROXY_UPSTREAM_MULTIPART_ETAGS: { path: 'upstream.multipartEtags', kind: 'boolean' },
  SSEC_PROXY_UPSTREAM_CA_FILE: { path: 'upstream.caFile', kind: 'string' },
  SSEC_PROXY_EMBEDDED: { path: 'embedded', kind: 'boolean' },
  SSEC_PROXY_REGION: { path: 'region', kind: 'string' },
  SSEC_PROXY_CREDENTIALS_FILE: { path: 'credentialsFile', kind: 'string' },
  SSEC_PROXY_STATE_DIR: { path: 'stateDir', kind: 'string' },
  SSEC_PROXY_COPY_MULTIPART_THRESHOLD: { path: 'copyMultipartThreshold', kind: 'number' },
  SSEC_PROXY_MAX_CONCURRENT_UPLOADS: { path: 'maxConcurrentUploads', kind: 'number' },
  SSEC_PROXY_MAX_CONNECTIONS: { path: 'maxConnections', kind: 'number' },
  SSEC_PROXY_BODY_IDLE_SECONDS: { path: 'bodyIdleSeconds', kind: 'number' },
  SSEC_PROXY_REENCRYPT_ON_KEY_CHANGE: { path: 'reencryptOnKeyChange', kind: 'boolean' },
  SSEC_PROXY_ALLOW_ANONYMOUS: { path: 'allowAnonymous', kind: 'boolean' },
  SSEC_PROXY_ALLOW_SIGV2: { path: 'allowSigV2', kind: 'boolean' },
  SSEC_PROXY_VIRTUAL_HOST_DOMAIN: { path: 'virtualHostDomain', kind: 'string' },
  SSEC_PROXY_SHUTDOWN_GRACE_SECONDS: { path: 'shutdownGraceSeconds', kind: 'number' },
  SSEC_PROXY_ADMIN_LISTEN: { path: 'adminListen', kind: 'string' },
  SSEC_PROXY_WORKERS: { path: 'workers', kind: 'number' },
  SSEC_PROXY_KMS_LOCAL_KEYS: { path: 'kms.localKeys', kind: 'string' },
  SSEC_PROXY_KMS_DEFAULT_KEY: { path: 'kms.defaultKey', kind: 'string' },
  SSEC_PROXY_KMS_PKCS11_MODULE: { path: 'kms.pkcs11.module', kind: 'string' },
  SSEC_PROXY_KMS_PKCS11_TOKEN: { path: 'kms.pkcs11.token', kind: 'string' },
  SSEC_PROXY_KMS_PKCS11_SLOT: { path: 'kms.pkcs11.slot', kind: 'number' },
  SSEC_PROXY_KMS_PKCS11_PIN: { path: 'kms.pkcs11.pin', kind: 'string' },
  SSEC_PROXY_KMS_KMIP_ENDPOINT: { path: 'kms.kmip.endpoint', kind: 'string' },
  SSEC_PROXY_KMS_KMIP_CA_FILE: { path: 'kms.kmip.caFile', kind: 'string' },
  SSEC_PROXY_KMS_KMIP_CERT_FILE: { path: 'kms.kmip.certFile', kind: 'string' },
  SSEC_PROXY_KMS_KMIP_KEY_FILE: { path: 'kms.kmip.keyFile', kind: 'string' },
  SSEC_PROXY_KMS_KMIP_USERNAME: { path: 'kms.kmip.username', kind: 'string' },
  SSEC_PROXY_KMS_KMIP_PASSWORD: { path: 'kms.kmip.password', kind: 'string' },
  SSEC_PROXY_BUCKET_ENCRYPTION: { path: 'bucketEncryption', kind: 'json' },
  SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS: { path: 'encryptedOnlyBuckets', kind: 'json' },
  SSEC_PROXY_LOG_LEVEL: { path: 'logLevel', kind: 'string' },
};

/** What Kubernetes sets for a Service named `ssec-proxy` (service links), left alone. */
const K8S_SERVICE_LINK = /^SSEC_PROXY_(SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/;

/** Read by loadConfig itself, not a setting. */
const CONFIG_PATH_VARIABLE = 'SSEC_PROXY_CONFIG';

function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  let host = s.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(s.slice(i + 1)) };
}

export interface LoadOptions {
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** The CPUs available (the default worker count); measured when undefined. */
  cpus?: number;
  /**
   * For serving: an upstream (or the embedded store, said explicitly) is required. Without it the configuration
   * may name no store (tests and tools that bring their own).
   */
  serving?: boolean;
}

/** Where each value came from, so a problem names what the operator must edit. */
class Sources {
  private readonly fromEnv = new Map<string, string>();
  constructor(private readonly configPath: string | undefined) {}

  setFromEnv(path: string, variable: string): void {
    this.fromEnv.set(path, variable);
  }

  /** `SSEC_PROXY_TLS_CERT` or `config file /x.json: tls.cert`; for an unset field, every place that sets it. */
  where(path: string, fileHas = true): string {
    for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
      const v = this.fromEnv.get(p);
      if (v) return v;
    }
    const variable = Object.entries(ENV).find(([, s]) => s.path === path)?.[0];
    if (this.configPath && fileHas) return `config file ${this.configPath}: ${path}`;
    if (variable) return this.configPath ? `${variable} (or ${path} in config file ${this.configPath})` : variable;
    return this.configPath ? `config file ${this.configPath}: ${path}` : path;
  }
}

function getPath(o: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);
}

function setPath(o: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let at = o;
  for (const k of keys.slice(0, -1)) {
    const next = at[k];
    if (!next || typeof next !== 'object' || Array.isArray(next)) at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  if (value === undefined) delete at[keys.at(-1)!];
  else at[keys.at(-1)!] = value;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

function nearest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined;
}

/**
 * Validates `value` against `s` field by field, so one bad field never hides the others: a bad leaf is reported
 * and left out, its siblings are kept. Unknown fields are reported with the nearest known name.
 */
function validate(s: z.ZodType, value: unknown, path: string, sources: Sources, problems: string[]): unknown {
  const inner = s instanceof z.ZodOptional ? (s.unwrap() as z.ZodType) : s;
  if (value === undefined) return undefined;
  if (inner instanceof z.ZodObject && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const shape = inner.shape as Record<string, z.ZodType>;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in shape)) {
        const near = nearest(k, Object.keys(shape));
        problems.push(`${sources.where(p)}: unknown field${near ? ` (did you mean "${near}"?)` : ''}`);
        continue;
      }
      const checked = validate(shape[k]!, v, p, sources, problems);
      if (checked !== undefined) out[k] = checked;
    }
    return out;
  }
  const r = s.safeParse(value);
  if (r.success) return r.data;
  for (const issue of r.error.issues) {
    const sub = issue.path.length ? ` ${issue.path.join('.')}` : '';
    problems.push(`${sources.where(path)}${sub}: ${issue.message}`);
  }
  return undefined;
}

/** A file the configuration names: readable, and holding what it should (`marker`), else a problem. */
function readNamedFile(path: string, label: string, problems: string[], marker?: { re: RegExp; what: string }): string | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    if (marker && !marker.re.test(text)) {
      problems.push(`${label}: ${path} holds no ${marker.what}`);
      return undefined;
    }
    return text;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    problems.push(`${label}: ${err.code === 'ENOENT' ? `${path} does not exist` : err.message}`);
    return undefined;
  }
}

/** The file and the environment merged onto one document, and where each value came from. */
function gather(configPath: string | undefined, env: NodeJS.ProcessEnv, problems: string[]): { doc: Record<string, unknown>; sources: Sources } {
  const sources = new Sources(configPath);
  let doc: Record<string, unknown> = {};
  if (configPath) {
    let text: string | undefined;
    try {
      text = readFileSync(configPath, 'utf8');
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) doc = parsed as Record<string, unknown>;
      else problems.push(`config file ${configPath}: must be a JSON object`);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // A syntax error is placed, not quoted: the file may hold secrets.
      problems.push(`config file ${configPath}: ${err.code === 'ENOENT' ? 'does not exist' : text === undefined ? err.message : jsonSyntaxProblem(e, text)}`);
    }
  }
  const known = [CONFIG_PATH_VARIABLE, ...Object.keys(ENV), ...Object.keys(ENV).map((n) => `${n}_FILE`)];
  for (const name of Object.keys(env).sort()) {
    // Kubernetes injects SSEC_PROXY_SERVICE_HOST, SSEC_PROXY_PORT_… for a Service named ssec-proxy: not settings.
    if (name.startsWith('SSEC_PROXY_') && !known.includes(name) && !K8S_SERVICE_LINK.test(name)) {
      const near = nearest(name, known);
      problems.push(`${name}: not a setting of s3-ssec-proxy${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  for (const [name, { path, kind }] of Object.entries(ENV)) {
    let text = env[name];
    let from = name;
    if (text === undefined || text === '') {
      const file = env[`${name}_FILE`];
      text = undefined;
      if (file) {
        from = `${name}_FILE`;
        text = readNamedFile(file, from, problems)?.replace(/\r?\n$/, '');
        if (text === undefined) setPath(doc, path, undefined);
      }
    }
    if (text === undefined) continue;
    sources.setFromEnv(path, from);
    const r = FROM_TEXT[kind].safeParse(text);
    if (r.success) setPath(doc, path, r.data);
    else {
      // Reported here; the file's value is not used in its place.
      problems.push(`${from}: ${r.error.issues[0]?.message ?? 'invalid'}`);
      setPath(doc, path, undefined);
    }
  }
  return { doc, sources };
}

/** Reads, merges and validates. Throws ConfigError listing every problem. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const configPath = opts.configPath ?? (env[CONFIG_PATH_VARIABLE] || undefined);
  const { doc, sources } = gather(configPath, env, problems);
  const s = validate(schema, doc, '', sources, problems) as Settings;
  const where = (path: string) => sources.where(path, getPath(doc, path) !== undefined);

  const listen = s.listen ?? '127.0.0.1:8443';

  const cert = s.tls?.cert;
  const key = s.tls?.key;
  if ((cert === undefined) !== (key === undefined)) {
    problems.push(`${where('tls.cert')} and ${where('tls.key')}: must be given together`);
  }
  // Checked here, so a missing file is named at start rather than as a bare ENOENT when the listener opens.
  if (cert !== undefined) readNamedFile(cert, where('tls.cert'), problems, { re: /-----BEGIN CERTIFICATE-----/, what: 'PEM certificate' });
  if (key !== undefined) readNamedFile(key, where('tls.key'), problems, { re: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, what: 'PEM private key' });

  const upstreamCa = s.upstream?.caFile
    ? readNamedFile(s.upstream.caFile, where('upstream.caFile'), problems, { re: /BEGIN CERTIFICATE/, what: 'PEM certificate' })
    : undefined;

  const httpListen = s.http?.listen;
  const trustedProxies = s.http?.trustedProxies ?? [];

  const upUrl = s.upstream?.url;
  const upRegion = s.upstream?.region ?? 'us-east-1';
  const upAk = s.upstream?.accessKeyId;
  const upSk = s.upstream?.secretAccessKey;
  let upstream: Config['upstream'];
  if (upUrl !== undefined || getPath(doc, 'upstream.url') !== undefined) {
    if (upAk === undefined) problems.push(`${where('upstream.accessKeyId')}: required when an upstream URL is set`);
    if (upSk === undefined) problems.push(`${where('upstream.secretAccessKey')}: required when an upstream URL is set`);
    if (upUrl !== undefined) upstream = { url: upUrl.replace(/\/$/, ''), region: upRegion, accessKeyId: upAk ?? '', secretAccessKey: upSk ?? '' };
  } else if (upAk !== undefined || upSk !== undefined) {
    problems.push(`${where('upstream.url')}: required when upstream credentials are set`);
  }
  const embedded = s.embedded ?? false;
  if (embedded && upstream) {
    problems.push(`${where('embedded')}: the embedded store is for when no upstream is set, but ${where('upstream.url')} is`);
  } else if (opts.serving && !upstream && !embedded && getPath(doc, 'upstream.url') === undefined) {
    problems.push(
      `${where('upstream.url')}: no upstream S3 store is set. Set it (with the upstream credentials), or, for a local development ` +
        'store whose data lives in stateDir, pass --embedded (SSEC_PROXY_EMBEDDED=true)',
    );
  }

  const credentials: Credential[] = [];
  const addCredentials = (list: unknown, label: string) => {
    const parsed = z.array(credentialSchema).safeParse(list);
    if (!parsed.success) {
      problems.push(...parsed.error.issues.map((i) => `${label}${i.path.length ? ' ' + i.path.join('.') : ''}: ${i.message}`));
      return;
    }
    for (const c of parsed.data) {
      const up = c.upstream ?? (upstream ? { accessKeyId: upAk ?? '', secretAccessKey: upSk ?? '' } : undefined);
      if (!up) {
        problems.push(`${label}: credential ${c.accessKeyId} needs an upstream identity`);
        continue;
      }
      if (credentials.some((x) => x.accessKeyId === c.accessKeyId)) problems.push(`${label}: duplicate accessKeyId ${c.accessKeyId}`);
      credentials.push({ accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, upstream: up, ...(c.buckets ? { buckets: c.buckets } : {}) });
    }
  };
  if (s.credentials) addCredentials(s.credentials, where('credentials'));
  if (s.credentialsFile) {
    const text = readNamedFile(s.credentialsFile, where('credentialsFile'), problems);
    if (text !== undefined) {
      let list: unknown;
      try {
        list = JSON.parse(text);
      } catch (e) {
        problems.push(`credentials file ${s.credentialsFile}: ${jsonSyntaxProblem(e, text)}`);
      }
      if (list !== undefined) addCredentials(list, `credentials file ${s.credentialsFile}`);
    }
  }

  const { kms, bucketEncryption } = kmsSettings(s, where, problems);
  const logLevel: LogLevel = s.logLevel ?? 'info';
  if (problems.length) throw new ConfigError(problems);

  const config: Config = {
    listen: splitHostPort(listen),
    tls: cert !== undefined && key !== undefined ? { cert, key } : undefined,
    http: httpListen
      ? { ...splitHostPort(httpListen), allowSsecFromLoopback: s.http?.allowSsecFromLoopback ?? false, trustedProxies }
      : undefined,
    upstream,
    embedded: embedded && !upstream,
    region: s.region ?? upRegion,
    credentials,
    stateDir: s.stateDir ?? '.state',
    chunkSizeLog2: s.chunkSizeLog2 ?? 16,
    maxClockSkewMs: (s.maxClockSkewMinutes ?? 15) * 60_000,
    probeAllLayouts: !(s.upstream?.multipartEtags ?? true),
    copyMultipartThreshold: s.copyMultipartThreshold ?? 5 * 1024 ** 3,
    maxConcurrentUploads: s.maxConcurrentUploads ?? 128,
    // ~130 MiB + ~0.4 MiB per connection served (docs/OPERATIONS.md): 800 stays under the manifests' 512 Mi.
    maxConnections: s.maxConnections ?? 800,
    bodyIdleMs: (s.bodyIdleSeconds ?? 20) * 1000,
    reencryptOnKeyChange: s.reencryptOnKeyChange ?? false,
    allowAnonymous: s.allowAnonymous ?? true,
    // Many existing clients still sign with SigV2 (boto's s3 signer, s3cmd, old SDKs), so it is on by default.
    allowSigV2: s.allowSigV2 ?? true,
    virtualHostDomain: s.virtualHostDomain?.toLowerCase(),
    shutdownGraceMs: (s.shutdownGraceSeconds ?? 30) * 1000,
    workers: s.workers ?? opts.cpus ?? availableCpus(),
    admin: s.adminListen ? splitHostPort(s.adminListen) : undefined,
    upstreamCa,
    ...(kms ? { kms } : {}),
    ...(bucketEncryption.length ? { bucketEncryption } : {}),
    ...(s.encryptedOnlyBuckets?.length ? { encryptedOnlyBuckets: s.encryptedOnlyBuckets } : {}),
    logLevel,
  };
  return deepFreeze(config);
}

/**
 * The KMS: a `local` keys file (read here so a bad one stops the start) or a PKCS#11 token (module, token or slot,
 * PIN or PIN file; opened on first use), never both; the default master key; and the per-bucket encryption
 * policies (`{"<bucket pattern>": "sse-s3" | "sse-kms:<key id>" | …}`). Problems never echo the PIN or a key.
 */
function kmsSettings(s: Settings, where: (path: string) => string, problems: string[]): { kms: Config['kms']; bucketEncryption: BucketEncryptionRule[] } {
  const localKeys = s.kms?.localKeys;
  const defaultKey = s.kms?.defaultKey;
  const p11 = s.kms?.pkcs11;
  const module = p11?.module;
  let pin = p11?.pin;
  if (pin === undefined && p11?.pinFile) pin = readNamedFile(p11.pinFile, where('kms.pkcs11.pinFile'), problems)?.replace(/\r?\n$/, '');
  let kms: Config['kms'];
  let keyIds: string[] = [];
  const kmip = kmipSettings(s, where, problems);
  const anyKms = `${where('kms.localKeys')}, ${where('kms.pkcs11.module')} or ${where('kms.kmip.endpoint')}`;
  if ([localKeys, module, kmip].filter(Boolean).length > 1) {
    problems.push(`${anyKms}: configure one KMS, not several`);
  } else if (kmip) {
    if (defaultKey === undefined) problems.push(`${where('kms.defaultKey')}: the KMIP KMS needs the name of its default master key`);
    kms = { kmip, defaultKeyId: defaultKey ?? '' };
  } else if (localKeys) {
    const text = readNamedFile(localKeys, where('kms.localKeys'), problems);
    if (text !== undefined) {
      try {
        keyIds = [...parseLocalKeys(text).keys()];
        if (defaultKey !== undefined && !keyIds.includes(defaultKey)) problems.push(`${where('kms.defaultKey')}: "${defaultKey}" is not in ${localKeys}`);
      } catch (e) {
        problems.push(`${where('kms.localKeys')}: ${localKeys}: ${(e as Error).message}`);
      }
    }
    kms = { localKeys, ...(defaultKey !== undefined ? { defaultKeyId: defaultKey } : {}) };
  } else if (module) {
    if (!existsSync(module)) problems.push(`${where('kms.pkcs11.module')}: ${module} does not exist`);
    if ((p11?.token === undefined) === (p11?.slot === undefined)) problems.push(`${where('kms.pkcs11.token')} or ${where('kms.pkcs11.slot')}: name the token by exactly one`);
    if (pin === undefined) problems.push(`${where('kms.pkcs11.pin')} or its _FILE / kms.pkcs11.pinFile: the token needs the user PIN`);
    if (defaultKey === undefined) problems.push(`${where('kms.defaultKey')}: the PKCS#11 KMS needs the label of its default master key`);
    kms = {
      pkcs11: { module, ...(p11?.token !== undefined ? { token: p11.token } : {}), ...(p11?.slot !== undefined ? { slot: p11.slot } : {}), pin: pin ?? '' },
      defaultKeyId: defaultKey ?? '',
    };
  } else {
    for (const path of ['kms.pkcs11.token', 'kms.pkcs11.slot', 'kms.pkcs11.pin', 'kms.pkcs11.pinFile', 'kms.defaultKey'] as const) {
      if (getPath(s, path) !== undefined) problems.push(`${where(path)}: set, but no KMS is (${anyKms})`);
    }
  }
  let rules: BucketEncryptionRule[] = [];
  try {
    rules = parseBucketEncryption(s.bucketEncryption ?? {});
  } catch (e) {
    problems.push(`${where('bucketEncryption')}: ${(e as Error).message}`);
  }
  for (const r of rules) {
    if (r.policy.kind === 'sse-s3' || r.policy.kind === 'sse-kms') {
      if (!kms) problems.push(`${where('bucketEncryption')}: "${r.pattern}" needs a KMS (${anyKms})`);
      // A token's labels are checked when used (it is not opened at start).
      else if (r.policy.kind === 'sse-kms' && keyIds.length && !keyIds.includes(r.policy.keyId)) {
        problems.push(`${where('bucketEncryption')}: "${r.pattern}" names key "${r.policy.keyId}", which the KMS does not have`);
      }
    }
  }
  return { kms, bucketEncryption: rules };
}

/**
 * A KMIP server: kms.kmip.endpoint (host:port), caFile (its CA; else the system's), certFile and keyFile (the
 * client certificate and key, PEM), checked here so a bad path stops the start; the server is first reached by
 * the first SSE-S3/KMS request. username and password (or SSEC_PROXY_KMS_KMIP_PASSWORD_FILE), together: a
 * credential sent with each request.
 */
function kmipSettings(
  s: Settings,
  where: (path: string) => string,
  problems: string[],
): NonNullable<Extract<Config['kms'], { kmip: unknown }>>['kmip'] | undefined {
  const f = s.kms?.kmip;
  const endpoint = f?.endpoint;
  const { username, password } = f ?? {};
  if ((username === undefined) !== (password === undefined)) problems.push(`${where('kms.kmip.username')} and ${where('kms.kmip.password')}: give both or neither`);
  const files = { caFile: f?.caFile, certFile: f?.certFile, keyFile: f?.keyFile };
  if (endpoint === undefined) {
    for (const k of ['username', 'caFile', 'certFile', 'keyFile'] as const) {
      if (f?.[k] !== undefined) problems.push(`${where(`kms.kmip.${k}`)}: set, but ${where('kms.kmip.endpoint')} is not`);
    }
    return undefined;
  }
  const { host, port } = splitHostPort(endpoint);
  for (const [k, v] of Object.entries(files)) {
    const name = where(`kms.kmip.${k}`);
    if (v === undefined) {
      if (k !== 'caFile') problems.push(`${name}: the KMIP server needs the client certificate and its key (PEM files)`);
      continue;
    }
    readNamedFile(v, name, problems, { re: /-----BEGIN [A-Z ]+-----/, what: 'PEM' });
  }
  return {
    host,
    port,
    ...(files.caFile !== undefined ? { caFile: files.caFile } : {}),
    certFile: files.certFile ?? '',
    keyFile: files.keyFile ?? '',
    ...(username !== undefined && password !== undefined ? { credentials: { username, password } } : {}),
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
