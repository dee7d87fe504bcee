#!/usr/bin/env bash
# scripts/bench.sh [--quick] -- what `npm run bench` runs (docs/BENCHMARKS.md): builds dist/ (the proxy runs as
# the bin runs it), starts a Ceph RGW of its own (a separate cluster from the tests', memstore so the store is
# not disk-bound, plain HTTP and HTTPS, native SSE-C allowed over HTTP for the comparison), runs bench/run.ts
# (floors, direct HTTP/HTTPS, RGW SSE-C, proxy 1 and N workers, multipart, 4 KiB objects, rclone crypt,
# worker scaling, RSS at 64 streams; table + docs/bench.svg), then, in a full run, the format primitives and
# bench/proxy-vs-direct.ts (replicas, key rotation, crowds, hostile clients), and stops the cluster it started.
#   --quick               64 MiB objects, small counts (~2 min): a smoke run; the chart goes to /tmp
#   BENCH_SIZE_MIB=1024   object size (default 1 GiB, 64 MiB with --quick)
#   BENCH_WORKERS=2       N for the N-worker proxy (SSEC_PROXY_WORKERS)
#   BENCH_RGW_DIR, BENCH_RGW_PORT=7490, BENCH_RGW_TLS_PORT=7493, BENCH_MON_PORT=3390, OSD_BACKEND, OSD_SIZE_GB=12
#   RGW_ENDPOINT=...      use a running upstream instead (with RGW_ACCESS_KEY_ID / RGW_SECRET_ACCESS_KEY, and
#                         RGW_TLS_ENDPOINT / RGW_TLS_CA for the HTTPS baseline)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NODE=$ROOT/node_modules/.bin/node
QUICK=
[ "${1:-}" = "--quick" ] && QUICK=--quick

echo "[bench] npm run build (the proxy runs from dist/, as bin/s3-ssec-proxy.js does)" >&2
npm run --silent build >&2

started=0
if [ -z "${RGW_ENDPOINT:-}" ]; then
  DIR=${BENCH_RGW_DIR:-/tmp/ssec-bench-rgw}
  echo "[bench] starting the bench RGW under $DIR" >&2
  RGW_PORT=${BENCH_RGW_PORT:-7490} RGW_TLS_PORT=${BENCH_RGW_TLS_PORT:-7493} MON_PORT=${BENCH_MON_PORT:-3390} \
    RGW_SSEC_NO_TLS=1 S3TESTS_USERS=0 OSD_SIZE_GB=${OSD_SIZE_GB:-12} \
    bash scripts/start-rgw.sh "$DIR" > /dev/null
  # shellcheck disable=SC1091
  . "$DIR/env"
  export RGW_ENDPOINT=$S3_ENDPOINT RGW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RGW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
  export RGW_TLS_ENDPOINT RGW_TLS_CA BENCH_RGW_CONF=$DIR/ceph.conf
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3_ENDPOINT
  started=1
  trap 'bash scripts/stop-rgw.sh "$DIR" >/dev/null 2>&1 || true; echo "[bench] bench RGW stopped" >&2' EXIT
fi

"$NODE" --import tsx bench/run.ts $QUICK
if [ -z "$QUICK" ]; then
  echo
  echo "== format primitives (one core, in-process)"
  "$NODE" --import tsx bench/format.ts
  echo
  echo "== replicas, key rotation, crowds, hostile clients ($RGW_ENDPOINT, 256 MiB objects)"
  BENCH_SIZE_MIB=${BENCH_PVD_SIZE_MIB:-256} "$NODE" --import tsx bench/proxy-vs-direct.ts
  echo
  echo "== cold listing of 10,000 SSE-C objects, bucket declared encrypted-only (target <= 1.2x direct)"
  "$NODE" --import tsx bench/listing.ts "${BENCH_LIST_COUNT:-10000}"
fi
