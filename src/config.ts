/**
 * Configuration: an optional JSON file (--config) overridden by SSEC_PROXY_* environment variables, validated
 * once into a frozen Config. Every problem is reported together so an operator fixes them in one go.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { availableCpus } from './cpus.ts';
import { parseLocalKeys } from './kms/local.ts';
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
  /** undefined → the embedded local S3 store (development only). */
  readonly upstream:
    | { readonly url: string; readonly region: string; readonly accessKeyId: string; readonly secretAccessKey: string }
    | undefined;
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
   * The upstream does not give multipart objects `"…-N"` ETags (s3rver), so every encrypted object's layout is
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

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'must be host:port');
const nonEmpty = z.string().min(1, 'must not be empty');

const credentialSchema = z.object({
  accessKeyId: nonEmpty,
  secretAccessKey: nonEmpty,
  upstream: z.object({ accessKeyId: nonEmpty, secretAccessKey: nonEmpty }).optional(),
  buckets: z.array(nonEmpty).optional(),
});

const fileSchema = z
  .object({
    listen: hostPort.optional(),
    tls: z.object({ cert: nonEmpty.optional(), key: nonEmpty.optional() }).strict().optional(),
    http: z
      .object({ listen: hostPort, allowSsecFromLoopback: z.boolean().optional(), trustedProxies: z.array(z.ipv4().or(z.ipv6())).optional() })
      .strict()
      .optional(),
    upstream: z
      .object({
        url: z.url({ protocol: /^https?$/ }).optional(),
        region: nonEmpty.optional(),
        accessKeyId: nonEmpty.optional(),
        secretAccessKey: nonEmpty.optional(),
        multipartEtags: z.boolean().optional(),
        caFile: nonEmpty.optional(),
      })
      .strict()
      .optional(),
    region: nonEmpty.optional(),
    credentials: z.array(credentialSchema).optional(),
    credentialsFile: nonEmpty.optional(),
    stateDir: nonEmpty.optional(),
    chunkSizeLog2: z.number().int().min(12).max(24).optional(),
    maxClockSkewMinutes: z.number().positive().max(60 * 24).optional(),
    copyMultipartThreshold: z.number().int().min(5 * 1024 * 1024).max(5 * 1024 ** 3).optional(),
    maxConcurrentUploads: z.number().int().min(1).max(100_000).optional(),
    maxConnections: z.number().int().min(1).max(1_000_000).optional(),
    bodyIdleSeconds: z.number().min(1).max(3600).optional(),
    reencryptOnKeyChange: z.boolean().optional(),
    allowAnonymous: z.boolean().optional(),
    allowSigV2: z.boolean().optional(),
    virtualHostDomain: z.string().regex(/^[a-z0-9.-]+$/i, 'must be a DNS name').optional(),
    shutdownGraceSeconds: z.number().min(0).max(3600).optional(),
    adminListen: hostPort.optional(),
    workers: z.number().int().min(1).max(1024).optional(),
    kms: z
      .object({
        localKeys: nonEmpty.optional(),
        defaultKey: nonEmpty.optional(),
        pkcs11: z
          .object({
            module: nonEmpty,
            token: nonEmpty.optional(),
            slot: z.number().int().min(0).optional(),
            pin: nonEmpty.optional(),
            pinFile: nonEmpty.optional(),
          })
          .strict()
          .optional(),
        kmip: z
          .object({ endpoint: hostPort, caFile: nonEmpty.optional(), certFile: nonEmpty, keyFile: nonEmpty, username: nonEmpty.optional(), password: nonEmpty.optional() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    bucketEncryption: z.record(z.string(), z.string()).optional(),
    encryptedOnlyBuckets: z.array(z.string()).optional(),
    logLevel: z.enum(LOG_LEVELS).optional(),
  })
  .strict();

type FileConfig = z.infer<typeof fileSchema>;

function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  let host = s.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(s.slice(i + 1)) };
}

function issuesOf(err: z.ZodError, where: string): string[] {
  return err.issues.map((i) => `${where}${i.path.length ? ' ' + i.path.join('.') : ''}: ${i.message}`);
}

export interface LoadOptions {
  configPath?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** The CPUs available (the default worker count); measured when undefined. */
  cpus?: number;
}

/** Reads, merges and validates. Throws ConfigError listing every problem. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  let file: FileConfig = {};
  const configPath = opts.configPath ?? env.SSEC_PROXY_CONFIG;
  if (configPath) {
    try {
      const parsed = fileSchema.safeParse(JSON.parse(readFileSync(configPath, 'utf8')));
      if (parsed.success) file = parsed.data;
      else problems.push(...issuesOf(parsed.error, configPath));
    } catch (e) {
      problems.push(`${configPath}: ${(e as Error).message}`);
    }
  }

  /** NAME from the environment, else NAME_FILE's content (secrets mounted as files), else the file's value. */
  const pick = (name: string, fromFile: string | undefined): string | undefined => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    const path = env[`${name}_FILE`];
    if (path) {
      try {
        return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        problems.push(`${name}_FILE: ${(e as Error).message}`);
      }
    }
    return fromFile;
  };
  const bool = (name: string, fromFile: boolean | undefined): boolean => {
    const v = env[name];
    if (v === undefined || v === '') return fromFile ?? false;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    problems.push(`${name}: must be true or false`);
    return false;
  };
  const checkHostPort = (name: string, v: string | undefined) => {
    if (v !== undefined && !hostPort.safeParse(v).success) problems.push(`${name}: must be host:port, got "${v}"`);
    if (v !== undefined) {
      const { port } = splitHostPort(v);
      if (!(port >= 0 && port <= 65535)) problems.push(`${name}: port out of range`);
    }
  };

  const listen = pick('SSEC_PROXY_LISTEN', file.listen) ?? '127.0.0.1:8443';
  checkHostPort('SSEC_PROXY_LISTEN', listen);

  const cert = pick('SSEC_PROXY_TLS_CERT', file.tls?.cert);
  const key = pick('SSEC_PROXY_TLS_KEY', file.tls?.key);
  if ((cert === undefined) !== (key === undefined)) {
    problems.push('SSEC_PROXY_TLS_CERT and SSEC_PROXY_TLS_KEY must be given together');
  }

  const upstreamCaFile = pick('SSEC_PROXY_UPSTREAM_CA_FILE', file.upstream?.caFile);
  let upstreamCa: string | undefined;
  if (upstreamCaFile) {
    try {
      upstreamCa = readFileSync(upstreamCaFile, 'utf8');
      if (!upstreamCa.includes('BEGIN CERTIFICATE')) problems.push(`SSEC_PROXY_UPSTREAM_CA_FILE: ${upstreamCaFile} holds no PEM certificate`);
    } catch (e) {
      problems.push(`SSEC_PROXY_UPSTREAM_CA_FILE: ${(e as Error).message}`);
    }
  }
  const adminListen = pick('SSEC_PROXY_ADMIN_LISTEN', file.adminListen);
  checkHostPort('SSEC_PROXY_ADMIN_LISTEN', adminListen);
  const httpListen = pick('SSEC_PROXY_HTTP_LISTEN', file.http?.listen);
  checkHostPort('SSEC_PROXY_HTTP_LISTEN', httpListen);
  const allowLoopback = bool('SSEC_PROXY_ALLOW_SSEC_OVER_LOOPBACK_HTTP', file.http?.allowSsecFromLoopback);
  const trustedText = pick('SSEC_PROXY_TRUSTED_PROXIES', undefined);
  const trustedProxies = trustedText !== undefined ? trustedText.split(',').map((x) => x.trim()).filter(Boolean) : (file.http?.trustedProxies ?? []);
  for (const ip of trustedProxies) {
    if (!z.ipv4().or(z.ipv6()).safeParse(ip).success) problems.push(`SSEC_PROXY_TRUSTED_PROXIES: "${ip}" is not an IP address`);
  }

  const upUrl = pick('SSEC_PROXY_UPSTREAM_URL', file.upstream?.url);
  const upRegion = pick('SSEC_PROXY_UPSTREAM_REGION', file.upstream?.region) ?? 'us-east-1';
  const upAk = pick('SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID', file.upstream?.accessKeyId);
  const upSk = pick('SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY', file.upstream?.secretAccessKey);
  let upstream: Config['upstream'];
  if (upUrl !== undefined) {
    if (!z.url({ protocol: /^https?$/ }).safeParse(upUrl).success) {
      problems.push(`SSEC_PROXY_UPSTREAM_URL: must be an http(s) URL, got "${upUrl}"`);
    } else if (new URL(upUrl).pathname !== '/' || new URL(upUrl).search) {
      problems.push('SSEC_PROXY_UPSTREAM_URL: must not have a path or query (path-style S3 endpoint)');
    }
    if (upAk === undefined) problems.push('SSEC_PROXY_UPSTREAM_ACCESS_KEY_ID: required when an upstream URL is set');
    if (upSk === undefined) {
      problems.push('SSEC_PROXY_UPSTREAM_SECRET_ACCESS_KEY: required when an upstream URL is set');
    }
    upstream = { url: upUrl.replace(/\/$/, ''), region: upRegion, accessKeyId: upAk ?? '', secretAccessKey: upSk ?? '' };
  } else if (upAk !== undefined || upSk !== undefined) {
    problems.push('SSEC_PROXY_UPSTREAM_URL: required when upstream credentials are set');
  }

  const credentials: Credential[] = [];
  const addCredentials = (list: unknown, where: string) => {
    const parsed = z.array(credentialSchema).safeParse(list);
    if (!parsed.success) {
      problems.push(...issuesOf(parsed.error, where));
      return;
    }
    for (const c of parsed.data) {
      const up = c.upstream ?? (upstream ? { accessKeyId: upAk ?? '', secretAccessKey: upSk ?? '' } : undefined);
      if (!up) {
        problems.push(`${where}: credential ${c.accessKeyId} needs an upstream identity`);
        continue;
      }
      if (credentials.some((x) => x.accessKeyId === c.accessKeyId)) {
        problems.push(`${where}: duplicate accessKeyId ${c.accessKeyId}`);
      }
      credentials.push({
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        upstream: up,
        ...(c.buckets ? { buckets: c.buckets } : {}),
      });
    }
  };
  if (file.credentials) addCredentials(file.credentials, 'credentials');
  const credFile = pick('SSEC_PROXY_CREDENTIALS_FILE', file.credentialsFile);
  if (credFile) {
    try {
      addCredentials(JSON.parse(readFileSync(credFile, 'utf8')), credFile);
    } catch (e) {
      problems.push(`${credFile}: ${(e as Error).message}`);
    }
  }

  const chunkSizeLog2 = file.chunkSizeLog2 ?? 16;
  const virtualHostDomain = pick('SSEC_PROXY_VIRTUAL_HOST_DOMAIN', file.virtualHostDomain);
  if (virtualHostDomain !== undefined && !/^[a-z0-9.-]+$/i.test(virtualHostDomain)) {
    problems.push(`SSEC_PROXY_VIRTUAL_HOST_DOMAIN: must be a DNS name, got "${virtualHostDomain}"`);
  }
  const graceText = env.SSEC_PROXY_SHUTDOWN_GRACE_SECONDS;
  let shutdownGraceMs = (file.shutdownGraceSeconds ?? 30) * 1000;
  if (graceText !== undefined && graceText !== '') {
    const n = Number(graceText);
    if (!(n >= 0 && n <= 3600)) problems.push('SSEC_PROXY_SHUTDOWN_GRACE_SECONDS: must be a number of seconds, 0..3600');
    else shutdownGraceMs = n * 1000;
  }
  const multipartEtags = bool('SSEC_PROXY_UPSTREAM_MULTIPART_ETAGS', file.upstream?.multipartEtags ?? true);
  const reencrypt = bool('SSEC_PROXY_REENCRYPT_ON_KEY_CHANGE', file.reencryptOnKeyChange);
  const allowAnonymous = bool('SSEC_PROXY_ALLOW_ANONYMOUS', file.allowAnonymous ?? true);
  // Many existing clients still sign with SigV2 (boto's s3 signer, s3cmd, old SDKs), so it is on by default.
  const allowSigV2 = bool('SSEC_PROXY_ALLOW_SIGV2', file.allowSigV2 ?? true);
  const thresholdText = env.SSEC_PROXY_COPY_MULTIPART_THRESHOLD;
  let copyMultipartThreshold = file.copyMultipartThreshold ?? 5 * 1024 ** 3;
  if (thresholdText !== undefined && thresholdText !== '') {
    const n = Number(thresholdText);
    if (!Number.isInteger(n) || n < 5 * 1024 * 1024 || n > 5 * 1024 ** 3) {
      problems.push('SSEC_PROXY_COPY_MULTIPART_THRESHOLD: must be a byte count between 5 MiB and 5 GiB');
    } else copyMultipartThreshold = n;
  }
  /** A whole-number setting from the environment, else the file, else its default; out of range is a problem. */
  const count = (name: string, fromFile: number | undefined, fallback: number, max: number): number => {
    const text = env[name];
    if (text === undefined || text === '') return fromFile ?? fallback;
    const n = Number(text);
    if (Number.isInteger(n) && n >= 1 && n <= max) return n;
    problems.push(`${name}: must be an integer, 1..${max}`);
    return fallback;
  };
  const maxConcurrentUploads = count('SSEC_PROXY_MAX_CONCURRENT_UPLOADS', file.maxConcurrentUploads, 128, 100_000);
  // ~130 MiB + ~0.4 MiB per connection served (docs/OPERATIONS.md): 800 stays under the manifests' 512 Mi.
  const maxConnections = count('SSEC_PROXY_MAX_CONNECTIONS', file.maxConnections, 800, 1_000_000);
  const workers = count('SSEC_PROXY_WORKERS', file.workers, opts.cpus ?? availableCpus(), 1024);
  const idleText = env.SSEC_PROXY_BODY_IDLE_SECONDS;
  let bodyIdleMs = (file.bodyIdleSeconds ?? 20) * 1000;
  if (idleText !== undefined && idleText !== '') {
    const n = Number(idleText);
    if (!(n >= 1 && n <= 3600)) problems.push('SSEC_PROXY_BODY_IDLE_SECONDS: must be a number of seconds, 1..3600');
    else bodyIdleMs = n * 1000;
  }
  const { kms, bucketEncryption } = kmsSettings(pick, file, problems);
  const encryptedOnlyBuckets = bucketPatterns('SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS', env.SSEC_PROXY_ENCRYPTED_ONLY_BUCKETS, file.encryptedOnlyBuckets, problems);
  const logLevel = pick('SSEC_PROXY_LOG_LEVEL', file.logLevel) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) problems.push(`SSEC_PROXY_LOG_LEVEL: must be one of ${LOG_LEVELS.join(', ')}`);
  if (problems.length) throw new ConfigError(problems);

  const config: Config = {
    listen: splitHostPort(listen),
    tls: cert !== undefined && key !== undefined ? { cert, key } : undefined,
    http: httpListen ? { ...splitHostPort(httpListen), allowSsecFromLoopback: allowLoopback, trustedProxies } : undefined,
    upstream,
    region: pick('SSEC_PROXY_REGION', file.region) ?? upRegion,
    credentials,
    stateDir: pick('SSEC_PROXY_STATE_DIR', file.stateDir) ?? '.state',
    chunkSizeLog2,
    maxClockSkewMs: (file.maxClockSkewMinutes ?? 15) * 60_000,
    probeAllLayouts: !multipartEtags,
    copyMultipartThreshold,
    maxConcurrentUploads,
    maxConnections,
    bodyIdleMs,
    reencryptOnKeyChange: reencrypt,
    allowAnonymous,
    allowSigV2,
    virtualHostDomain: virtualHostDomain?.toLowerCase(),
    shutdownGraceMs,
    workers,
    admin: adminListen ? splitHostPort(adminListen) : undefined,
    upstreamCa,
    ...(kms ? { kms } : {}),
    ...(bucketEncryption.length ? { bucketEncryption } : {}),
    ...(encryptedOnlyBuckets.length ? { encryptedOnlyBuckets } : {}),
    logLevel: logLevel as LogLevel,
  };
  return deepFreeze(config);
}

/** A JSON array of bucket name patterns (`*` wildcards) from the environment, else the file's list. */
function bucketPatterns(name: string, text: string | undefined, fromFile: readonly string[] | undefined, problems: string[]): string[] {
  let doc: unknown = fromFile ?? [];
  if (text !== undefined && text !== '') {
    try {
      doc = JSON.parse(text);
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
      return [];
    }
  }
  if (!Array.isArray(doc) || !doc.every((p) => typeof p === 'string' && isBucketPattern(p))) {
    problems.push(`${name}: must be a JSON array of bucket name patterns (a-z 0-9 . - and * wildcards), e.g. ["backups-*"]`);
    return [];
  }
  return doc as string[];
}

/**
 * The KMS: SSEC_PROXY_KMS_LOCAL_KEYS (the keys file, read here so a bad one stops the start) or a PKCS#11 token
 * (SSEC_PROXY_KMS_PKCS11_MODULE, _TOKEN or _SLOT, _PIN or _PIN_FILE; opened on first use), never both;
 * SSEC_PROXY_KMS_DEFAULT_KEY; and SSEC_PROXY_BUCKET_ENCRYPTION (JSON
 * `{"<bucket pattern>": "sse-s3" | "sse-kms:<key id>" | …}`). Problems never echo the PIN or a key.
 */
function kmsSettings(
  pick: (name: string, fromFile: string | undefined) => string | undefined,
  file: FileConfig,
  problems: string[],
): { kms: Config['kms']; bucketEncryption: BucketEncryptionRule[] } {
  const localKeys = pick('SSEC_PROXY_KMS_LOCAL_KEYS', file.kms?.localKeys);
  const defaultKey = pick('SSEC_PROXY_KMS_DEFAULT_KEY', file.kms?.defaultKey);
  const fileP11 = file.kms?.pkcs11;
  const module = pick('SSEC_PROXY_KMS_PKCS11_MODULE', fileP11?.module);
  const token = pick('SSEC_PROXY_KMS_PKCS11_TOKEN', fileP11?.token);
  const slotText = pick('SSEC_PROXY_KMS_PKCS11_SLOT', fileP11?.slot?.toString());
  let pin = pick('SSEC_PROXY_KMS_PKCS11_PIN', fileP11?.pin);
  if (pin === undefined && fileP11?.pinFile) {
    try {
      pin = readFileSync(fileP11.pinFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      problems.push(`kms.pkcs11.pinFile: ${(e as Error).message}`);
    }
  }
  if (defaultKey !== undefined && !KEY_ID_PATTERN.test(defaultKey)) problems.push(`SSEC_PROXY_KMS_DEFAULT_KEY: must match ${KEY_ID_PATTERN}`);
  let kms: Config['kms'];
  let keyIds: string[] = [];
  const kmip = kmipSettings(pick, file, problems);
  if ([localKeys, module, kmip].filter(Boolean).length > 1) {
    problems.push('SSEC_PROXY_KMS_LOCAL_KEYS, SSEC_PROXY_KMS_PKCS11_MODULE and SSEC_PROXY_KMS_KMIP_ENDPOINT: configure one KMS, not several');
  } else if (kmip) {
    if (defaultKey === undefined) problems.push('SSEC_PROXY_KMS_DEFAULT_KEY: the KMIP KMS needs the name of its default master key');
    kms = { kmip, defaultKeyId: defaultKey ?? '' };
  } else if (localKeys) {
    try {
      keyIds = [...parseLocalKeys(readFileSync(localKeys, 'utf8')).keys()];
      if (defaultKey !== undefined && !keyIds.includes(defaultKey)) problems.push(`SSEC_PROXY_KMS_DEFAULT_KEY: "${defaultKey}" is not in ${localKeys}`);
    } catch (e) {
      problems.push(`SSEC_PROXY_KMS_LOCAL_KEYS: ${localKeys}: ${(e as Error).message}`);
    }
    kms = { localKeys, ...(defaultKey !== undefined ? { defaultKeyId: defaultKey } : {}) };
  } else if (module) {
    const slot = slotText !== undefined ? Number(slotText) : undefined;
    if (!existsSync(module)) problems.push(`SSEC_PROXY_KMS_PKCS11_MODULE: ${module} does not exist`);
    if ((token === undefined) === (slot === undefined)) problems.push('SSEC_PROXY_KMS_PKCS11_TOKEN or SSEC_PROXY_KMS_PKCS11_SLOT: name the token by exactly one');
    if (slot !== undefined && !(Number.isInteger(slot) && slot >= 0)) problems.push('SSEC_PROXY_KMS_PKCS11_SLOT: must be a slot index, 0 or more');
    if (pin === undefined) problems.push('SSEC_PROXY_KMS_PKCS11_PIN or SSEC_PROXY_KMS_PKCS11_PIN_FILE: the token needs the user PIN');
    if (defaultKey === undefined) problems.push('SSEC_PROXY_KMS_DEFAULT_KEY: the PKCS#11 KMS needs the label of its default master key');
    kms = {
      pkcs11: { module, ...(token !== undefined ? { token } : {}), ...(slot !== undefined ? { slot } : {}), pin: pin ?? '' },
      defaultKeyId: defaultKey ?? '',
    };
  } else {
    const stray = [
      ['SSEC_PROXY_KMS_PKCS11_TOKEN', token],
      ['SSEC_PROXY_KMS_PKCS11_SLOT', slotText],
      ['SSEC_PROXY_KMS_PKCS11_PIN', pin],
      ['SSEC_PROXY_KMS_DEFAULT_KEY', defaultKey],
    ].filter(([, v]) => v !== undefined);
    for (const [name] of stray) problems.push(`${name}: set, but no KMS is (SSEC_PROXY_KMS_LOCAL_KEYS, SSEC_PROXY_KMS_PKCS11_MODULE or SSEC_PROXY_KMS_KMIP_ENDPOINT)`);
  }
  let rules: BucketEncryptionRule[] = [];
  const text = pick('SSEC_PROXY_BUCKET_ENCRYPTION', undefined);
  try {
    const doc: unknown = text !== undefined ? JSON.parse(text) : (file.bucketEncryption ?? {});
    rules = parseBucketEncryption(doc);
  } catch (e) {
    problems.push(`SSEC_PROXY_BUCKET_ENCRYPTION: ${(e as Error).message}`);
  }
  for (const r of rules) {
    if (r.policy.kind === 'sse-s3' || r.policy.kind === 'sse-kms') {
      if (!kms) problems.push(`SSEC_PROXY_BUCKET_ENCRYPTION: "${r.pattern}" needs a KMS (SSEC_PROXY_KMS_LOCAL_KEYS, SSEC_PROXY_KMS_PKCS11_MODULE or SSEC_PROXY_KMS_KMIP_ENDPOINT)`);
      // A token's labels are checked when used (it is not opened at start).
      else if (r.policy.kind === 'sse-kms' && keyIds.length && !keyIds.includes(r.policy.keyId)) {
        problems.push(`SSEC_PROXY_BUCKET_ENCRYPTION: "${r.pattern}" names key "${r.policy.keyId}", which the KMS does not have`);
      }
    }
  }
  return { kms, bucketEncryption: rules };
}

/**
 * A KMIP server: SSEC_PROXY_KMS_KMIP_ENDPOINT (host:port), SSEC_PROXY_KMS_KMIP_CA_FILE (its CA; else the system's),
 * SSEC_PROXY_KMS_KMIP_CERT_FILE and SSEC_PROXY_KMS_KMIP_KEY_FILE (the client certificate and key, PEM). The files
 * are checked here so a bad path stops the start; the server is first reached by the first SSE-S3/KMS request.
 * SSEC_PROXY_KMS_KMIP_USERNAME and _PASSWORD (or _PASSWORD_FILE), together: a credential sent with each request.
 */
function kmipSettings(
  pick: (name: string, fromFile: string | undefined) => string | undefined,
  file: FileConfig,
  problems: string[],
): NonNullable<Extract<Config['kms'], { kmip: unknown }>>['kmip'] | undefined {
  const f = file.kms?.kmip;
  const endpoint = pick('SSEC_PROXY_KMS_KMIP_ENDPOINT', f?.endpoint);
  const username = pick('SSEC_PROXY_KMS_KMIP_USERNAME', f?.username);
  const password = pick('SSEC_PROXY_KMS_KMIP_PASSWORD', f?.password);
  if ((username === undefined) !== (password === undefined)) problems.push('SSEC_PROXY_KMS_KMIP_USERNAME and SSEC_PROXY_KMS_KMIP_PASSWORD: give both or neither');
  const files = {
    caFile: pick('SSEC_PROXY_KMS_KMIP_CA_FILE', f?.caFile),
    certFile: pick('SSEC_PROXY_KMS_KMIP_CERT_FILE', f?.certFile),
    keyFile: pick('SSEC_PROXY_KMS_KMIP_KEY_FILE', f?.keyFile),
  };
  if (endpoint === undefined) {
    if (username !== undefined) problems.push('SSEC_PROXY_KMS_KMIP_USERNAME: set, but SSEC_PROXY_KMS_KMIP_ENDPOINT is not');
    for (const [k, v] of Object.entries(files)) {
      if (v !== undefined) problems.push(`SSEC_PROXY_KMS_KMIP_${k.slice(0, -4).toUpperCase()}_FILE: set, but SSEC_PROXY_KMS_KMIP_ENDPOINT is not`);
    }
    return undefined;
  }
  const { host, port } = splitHostPort(endpoint);
  if (!hostPort.safeParse(endpoint).success || !(port >= 1 && port <= 65535)) problems.push(`SSEC_PROXY_KMS_KMIP_ENDPOINT: must be host:port, got "${endpoint}"`);
  for (const [k, v] of Object.entries(files)) {
    const name = `SSEC_PROXY_KMS_KMIP_${k.slice(0, -4).toUpperCase()}_FILE`;
    if (v === undefined) {
      if (k !== 'caFile') problems.push(`${name}: the KMIP server needs the client certificate and its key (PEM files)`);
      continue;
    }
    try {
      const pem = readFileSync(v, 'utf8');
      if (!/-----BEGIN [A-Z ]+-----/.test(pem)) problems.push(`${name}: ${v} holds no PEM`);
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
    }
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
