#!/usr/bin/env bash
# scripts/bench.sh -- what `npm run bench` runs: starts a Ceph RGW of its own (a separate cluster from the
# tests', memstore so the store is not disk-bound), runs every bench/*.ts that measures the proxy against
# the same RGW directly, and stops the cluster it started.
#   BENCH_SIZE_MIB=1024   object size (default 1 GiB)
#   RGW_ENDPOINT=...      use a running upstream instead (with RGW_ACCESS_KEY_ID / RGW_SECRET_ACCESS_KEY)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NODE=$ROOT/node_modules/.bin/node

started=0
if [ -z "${RGW_ENDPOINT:-}" ]; then
  DIR=${BENCH_RGW_DIR:-/tmp/s3-ssec-proxy-bench-rgw}
  RGW_PORT=${BENCH_RGW_PORT:-7481} MON_PORT=${BENCH_MON_PORT:-3301} OSD_SIZE_GB=${OSD_SIZE_GB:-8} \
    bash scripts/start-rgw.sh "$DIR" > /dev/null
  # shellcheck disable=SC1091
  . "$DIR/env"
  export RGW_ENDPOINT=$S3_ENDPOINT RGW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RGW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3_ENDPOINT
  started=1
  trap 'bash scripts/stop-rgw.sh "$DIR" >/dev/null 2>&1 || true' EXIT
fi

echo "== format primitives (one core, in-process)"
"$NODE" --import tsx bench/format.ts
echo
echo "== proxy vs direct RGW ($RGW_ENDPOINT), $(nproc) cores shared by client, proxy and RGW"
"$NODE" --import tsx bench/proxy-vs-direct.ts
[ "$started" = 1 ] && echo "(bench RGW stopped)"
