#!/usr/bin/env bash
# scripts/test.sh [TEST_FILE_OR_GLOB | --node-test-option ...]  -- what `npm test` runs.
#
#   npm test                                   all of test/unit, test/fast, test/integration, test/stores, test/e2e
#   npm test -- test/unit/dev-cert.test.ts     only these files (globs allowed, quote them)
#   npm test -- --test-name-pattern=ranged     arguments starting with '-' go to `node --test`
#
# 1. Installs what the tests need when missing (Debian): Ceph (mon, osd, radosgw) for the real S3
#    upstream, aws-cli 2 and boto3 for the client tests, chromium (a browser as the client), curl, openssl, softhsm2 (the PKCS#11 token of the KMS tests), python3-pykmip (the KMIP server of the KMS tests). `apt-get update` only when
#    an install fails. apt-get runs through sudo when not root.
# 2. Starts Ceph RGW on loopback (scripts/start-rgw.sh; a no-op when it already runs) and exports
#    RGW_ENDPOINT, RGW_ACCESS_KEY_ID, RGW_SECRET_ACCESS_KEY, RGW_REGION, RGW_DIR for the tests
#    (deliberately not AWS_* / S3_ENDPOINT, which aws-cli and SDKs would pick up on their own).
#    Skipped when every selected file is under test/unit/ or test/fast/ (NEED_RGW=1 forces it) or when
#    RGW_ENDPOINT is already set (an external upstream).
#    Likewise OpenStack Swift with s3api (scripts/start-swift.sh), the second store of test/stores/:
#    SWIFT_ENDPOINT, SWIFT_ACCESS_KEY_ID, SWIFT_SECRET_ACCESS_KEY, SWIFT_REGION, SWIFT_DIR; started only
#    when a selected file is under test/stores/ (as in the default list; NEED_SWIFT=1 forces it), not at
#    all when SWIFT_ENDPOINT is already set.
# 3. Runs the tests with Node 24 (node_modules/.bin/node), one file at a time.
# 4. Stops RGW and Swift again if this script started them (KEEP_RGW=1 / KEEP_SWIFT=1 leave them running).
# A missing or broken RGW or Swift is a failure, never a skip.
#
# Environment: RGW_DIR (default /tmp/s3-ssec-proxy-rgw), RGW_PORT, MON_PORT, OSD_BACKEND,
# OSD_SIZE_GB (passed to start-rgw.sh), KEEP_RGW=1, NEED_RGW=1, SKIP_APT=1 (never install packages),
# SWIFT_DIR (default /tmp/s3-ssec-proxy-swift), SWIFT_PORT (default 8089; passed to start-swift.sh),
# KEEP_SWIFT=1, NEED_SWIFT=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export RGW_DIR=${RGW_DIR:-/tmp/s3-ssec-proxy-rgw}
export SWIFT_DIR=${SWIFT_DIR:-/tmp/s3-ssec-proxy-swift}

log() { echo "[test.sh $(date +%T)] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# ---------- Node 24 ----------
NODE=$ROOT/node_modules/.bin/node
if [ ! -x "$NODE" ]; then
  NODE=$(command -v node || true)
  log "node_modules/.bin/node missing (run 'npm ci'); falling back to ${NODE:-nothing}"
fi
[ -n "$NODE" ] || { log "no node found; run 'npm ci' first"; exit 1; }
node_major=$("$NODE" -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 24 ]; then
  log "Node $("$NODE" --version) is too old: tests need Node 24 (npm ci installs it under node_modules/.bin)"
  exit 1
fi
[ -d "$ROOT/node_modules/tsx" ] || { log "node_modules incomplete (no tsx); run 'npm ci' first"; exit 1; }

# ---------- arguments ----------
files=()
node_opts=()
for a in "$@"; do
  case "$a" in
    -*) node_opts+=("$a") ;;
    *)
      if [[ "$a" != *[\*\?\[]* ]] && [ ! -e "$a" ]; then log "no such test file: $a"; exit 2; fi
      files+=("$a")
      ;;
  esac
done
if [ ${#files[@]} -eq 0 ]; then
  files=('test/unit/**/*.test.ts' 'test/fast/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/stores/**/*.test.ts' 'test/e2e/**/*.test.ts')
fi

need_rgw=${NEED_RGW:-0}
need_swift=${NEED_SWIFT:-0}
for f in "${files[@]}"; do
  case "$f" in test/unit/*|./test/unit/*|test/fast/*|./test/fast/*) ;; *) need_rgw=1 ;; esac
  case "$f" in test/stores*|./test/stores*) need_swift=1 ;; esac
done

# ---------- 1. Debian packages ----------
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root (or sudo) to run: $*"; return 1
  fi
}
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

PACKAGES=(ceph-mon ceph-osd radosgw ceph-common ceph-base swift swift-proxy swift-object swift-container swift-account
          awscli python3-boto3 rclone curl openssl chromium softhsm2 python3-pykmip)
if [ "${SKIP_APT:-0}" != 1 ] && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    t=$(now)
    log "installing Debian packages: ${missing[*]}"
    apt_install() {
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" >&2
    }
    apt_install "${missing[@]}" \
      || { as_root apt-get -o DPkg::Lock::Timeout=600 update >&2 && apt_install "${missing[@]}"; } \
      || { log "could not install: ${missing[*]}"; exit 1; }
    log "packages installed in $(since "$t")s"
  fi
fi
for c in curl openssl; do
  command -v "$c" >/dev/null 2>&1 || { log "'$c' is required but missing"; exit 1; }
done

# ---------- 2. RGW ----------
started_rgw=0
started_swift=0
cleanup() {
  local status=$?
  if [ "$started_rgw" = 1 ] && [ "${KEEP_RGW:-0}" != 1 ]; then
    log "stopping the RGW this run started ($RGW_DIR)"
    bash "$ROOT/scripts/stop-rgw.sh" "$RGW_DIR" >&2 || true
  fi
  if [ "$started_swift" = 1 ] && [ "${KEEP_SWIFT:-0}" != 1 ]; then
    log "stopping the Swift this run started ($SWIFT_DIR)"
    bash "$ROOT/scripts/stop-swift.sh" "$SWIFT_DIR" >&2 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${RGW_ENDPOINT:-}" ]; then
  log "using the RGW from the environment: $RGW_ENDPOINT"
  : "${RGW_ACCESS_KEY_ID:?RGW_ENDPOINT is set but RGW_ACCESS_KEY_ID is not}"
  : "${RGW_SECRET_ACCESS_KEY:?RGW_ENDPOINT is set but RGW_SECRET_ACCESS_KEY is not}"
  export RGW_REGION=${RGW_REGION:-us-east-1}
elif [ "$need_rgw" = 1 ]; then
  t=$(now)
  mkdir -p "$RGW_DIR"
  start_log=$RGW_DIR/start-rgw.log
  # stdout (the env file) is read below; progress (stderr) goes to the terminal and to the log
  if ! bash "$ROOT/scripts/start-rgw.sh" "$RGW_DIR" 2>&1 >/dev/null | tee "$start_log" >&2; then
    log "RGW did not start; see $start_log and $RGW_DIR/log/"
    if [ "${CI:-}" = true ]; then log "CI=true: a missing RGW fails the run"; fi
    exit 1
  fi
  grep -q 'already running under' "$start_log" || started_rgw=1
  env_value() { sed -n "s/^export $1=//p" "$RGW_DIR/env" | tail -n 1; }
  RGW_ENDPOINT=$(env_value RGW_ENDPOINT)
  RGW_ACCESS_KEY_ID=$(env_value RGW_ACCESS_KEY_ID)
  RGW_SECRET_ACCESS_KEY=$(env_value RGW_SECRET_ACCESS_KEY)
  RGW_REGION=$(env_value RGW_REGION)
  if [ -z "$RGW_ENDPOINT" ] || [ -z "$RGW_ACCESS_KEY_ID" ] || [ -z "$RGW_SECRET_ACCESS_KEY" ]; then
    log "$RGW_DIR/env lacks the RGW_* variables; see $start_log"
    exit 1
  fi
  export RGW_ENDPOINT RGW_ACCESS_KEY_ID RGW_SECRET_ACCESS_KEY RGW_REGION=${RGW_REGION:-us-east-1} RGW_DIR
  if [ "$started_rgw" = 1 ]; then
    log "RGW started in $(since "$t")s at $RGW_ENDPOINT"
  else
    log "RGW already running at $RGW_ENDPOINT (checked in $(since "$t")s)"
  fi
else
  log "only unit tests selected: not starting RGW (NEED_RGW=1 to force)"
fi

# ---------- 2b. Swift (the second store of test/stores/) ----------
if [ -n "${SWIFT_ENDPOINT:-}" ]; then
  log "using the Swift from the environment: $SWIFT_ENDPOINT"
  : "${SWIFT_ACCESS_KEY_ID:?SWIFT_ENDPOINT is set but SWIFT_ACCESS_KEY_ID is not}"
  : "${SWIFT_SECRET_ACCESS_KEY:?SWIFT_ENDPOINT is set but SWIFT_SECRET_ACCESS_KEY is not}"
  export SWIFT_REGION=${SWIFT_REGION:-us-east-1}
elif [ "$need_swift" = 1 ]; then
  t=$(now)
  mkdir -p "$SWIFT_DIR"
  start_log=$SWIFT_DIR/start-swift.log
  if ! bash "$ROOT/scripts/start-swift.sh" "$SWIFT_DIR" 2>&1 >/dev/null | tee "$start_log" >&2; then
    log "Swift did not start; see $start_log and $SWIFT_DIR/log/"
    if [ "${CI:-}" = true ]; then log "CI=true: a missing Swift fails the run"; fi
    exit 1
  fi
  grep -q 'already running under' "$start_log" || started_swift=1
  swift_value() { sed -n "s/^export $1=//p" "$SWIFT_DIR/env" | tail -n 1; }
  SWIFT_ENDPOINT=$(swift_value SWIFT_ENDPOINT)
  SWIFT_ACCESS_KEY_ID=$(swift_value SWIFT_ACCESS_KEY_ID)
  SWIFT_SECRET_ACCESS_KEY=$(swift_value SWIFT_SECRET_ACCESS_KEY)
  SWIFT_REGION=$(swift_value SWIFT_REGION)
  if [ -z "$SWIFT_ENDPOINT" ] || [ -z "$SWIFT_ACCESS_KEY_ID" ] || [ -z "$SWIFT_SECRET_ACCESS_KEY" ]; then
    log "$SWIFT_DIR/env lacks the SWIFT_* variables; see $start_log"
    exit 1
  fi
  export SWIFT_ENDPOINT SWIFT_ACCESS_KEY_ID SWIFT_SECRET_ACCESS_KEY SWIFT_REGION=${SWIFT_REGION:-us-east-1} SWIFT_DIR
  if [ "$started_swift" = 1 ]; then
    log "Swift started in $(since "$t")s at $SWIFT_ENDPOINT"
  else
    log "Swift already running at $SWIFT_ENDPOINT (checked in $(since "$t")s)"
  fi
fi

# ---------- 3. tests ----------
log "node $("$NODE" --version), aws $( (/usr/bin/aws --version 2>/dev/null || echo missing) | head -n 1)"
t=$(now)
status=0
"$NODE" --import tsx --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec \
  ${node_opts[@]+"${node_opts[@]}"} "${files[@]}" || status=$?
log "tests finished in $(since "$t")s with status $status"
exit "$status"
