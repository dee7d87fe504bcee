// Lint: typescript-eslint's recommended rules on src/, test/ and bench/, and the import rules of the layout
// (docs/ARCHITECTURE.md): each folder imports only from the floors below it. test/unit/lint-rules.test.ts
// shows each rule failing on a violation.
import tseslint from 'typescript-eslint';

/** no-restricted-imports with regex patterns over the import specifier. */
const only = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

/** Reaching the store other than through the counted door (context.ts `upstreamRequest`). */
const UPSTREAM_DOOR = {
  selector: "MemberExpression[property.name='request'][object.property.name='upstream']",
  message: 'Reach the upstream only through upstreamRequest (context.ts): it counts and releases every request.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.state/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The format is pure bytes: node's own modules and itself, nothing of HTTP or S3.
    files: ['src/format/**/*.ts'],
    rules: only([{ regex: '^(?!node:|\\./)', message: 'format/ imports only node:* and format/ itself.' }]),
  },
  {
    // S3 vocabulary: nothing from the proxy's other folders (packages are fine).
    files: ['src/s3/**/*.ts'],
    rules: only([{ regex: '^\\.\\./', message: 's3/ imports only s3/ (and packages).' }]),
  },
  {
    files: ['src/sse-c/**/*.ts'],
    rules: only([
      { regex: '^\\.\\./(handlers|objects|sigv4)/', message: 'sse-c/ sits below handlers/, objects/ and sigv4/.' },
      { regex: '^\\.\\./(context|upstream|server|pipeline|passthrough)\\.ts$', message: 'sse-c/ knows nothing of requests or the upstream.' },
      { regex: '^(undici|http-proxy-3)$', message: 'sse-c/ knows nothing of HTTP.' },
    ]),
  },
  {
    files: ['src/objects/**/*.ts'],
    rules: {
      ...only([
        { regex: '^\\.\\./handlers/', message: 'objects/ sits below the handlers.' },
        { regex: '^(undici|http-proxy-3)$', message: 'objects/ reaches the upstream only through context.ts.' },
      ]),
      'no-restricted-syntax': ['error', UPSTREAM_DOOR],
    },
  },
  {
    files: ['src/handlers/**/*.ts'],
    rules: {
      ...only([
        { regex: '^\\./', message: 'A handler never imports another handler: move the shared piece down a floor (objects/, s3/, sse-c/).' },
        { regex: '^(undici|http-proxy-3)$', message: 'handlers/ reach the upstream only through context.ts.' },
      ]),
      'no-restricted-syntax': ['error', UPSTREAM_DOOR],
    },
  },
  {
    // Key managers: keys in, keys out; nothing of S3 requests, HTTP or the store.
    files: ['src/kms/**/*.ts'],
    rules: only([
      { regex: '^\\.\\./(handlers|objects|policy|sse-kms|sigv4|sigv2)/', message: 'kms/ sits below everything that speaks S3.' },
      { regex: '^\\.\\./(context|upstream|server|pipeline|passthrough)\\.ts$', message: 'kms/ knows nothing of requests or the upstream.' },
      { regex: '^(undici|http-proxy-3)$', message: 'kms/ knows nothing of HTTP to the store.' },
    ]),
  },
  {
    // SSE-S3/KMS as S3 speaks it: headers, contexts, the metadata entry; below handlers/ and objects/.
    files: ['src/sse-kms/**/*.ts'],
    rules: only([
      { regex: '^\\.\\./(handlers|objects)/', message: 'sse-kms/ sits below handlers/ and objects/.' },
      { regex: '^(undici|http-proxy-3)$', message: 'sse-kms/ knows nothing of HTTP to the store.' },
    ]),
  },
  {
    // Bucket policies: documents and their evaluation, and the replica's read of the store's copy.
    files: ['src/policy/**/*.ts'],
    rules: only([
      { regex: '^\\.\\./(handlers|objects)/', message: 'policy/ sits below handlers/ and objects/.' },
      { regex: '^(undici|http-proxy-3)$', message: 'policy/ reaches the upstream through upstream.ts.' },
    ]),
  },
  {
    // The operator's tools reach the store through objects/ and upstream.ts, the layers the proxy uses, and
    // never the HTTP server: `decrypt` must work with no proxy at all.
    files: ['src/tools/**/*.ts'],
    rules: {
      ...only([
        {
          regex: '^\\.\\./(?!(format|sse-c|sse-kms|kms|objects|s3|sigv4)/|(upstream|config|context)\\.ts$)',
          message: 'tools/ imports only format/, sse-c/, sse-kms/, kms/, objects/, s3/, sigv4/, upstream.ts, config.ts, context.ts: never the server, pipeline or handlers.',
        },
        { regex: '^(undici|http-proxy-3)$', message: 'tools/ reach the upstream only through upstream.ts and context.ts.' },
      ]),
      'no-restricted-syntax': ['error', UPSTREAM_DOOR],
    },
  },
  {
    files: ['src/passthrough.ts'],
    rules: only([{ regex: '^\\./(handlers|sigv4)/', message: 'The pass-through uses neither handlers nor SigV4 verification.' }]),
  },
);
