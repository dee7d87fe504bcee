#!/usr/bin/env bash
# scripts/start-swift.sh [DIR] -- OpenStack Swift 2.30 (Debian 12) with its s3api middleware on loopback:
# the second real S3 implementation s3-ssec-proxy's store tests (test/stores/) run against, beside Ceph RGW.
#
# Adapted from ../shared/upstreams/start-swift-s3.sh. One replica, tempauth, no systemd; config, rings, logs
# and pid files live under DIR (default /tmp/s3-ssec-proxy-swift), object data on tmpfs (/dev/shm) because
# Swift keeps metadata in xattrs and ext4's ~4 KiB per inode answers 507 to objects with a few KiB of it.
# /etc/swift is not used. Idempotent and safe to call concurrently (flock on DIR/.lock):
#   - installs missing Debian packages (apt-get, through sudo when not root; `apt-get update` only when the
#     first install attempt fails);
#   - if the servers under DIR are already running and S3 answers, it just prints the info;
#   - otherwise it stops whatever it started earlier under DIR (by PID file), wipes DIR and starts afresh.
# Writes DIR/env (shell `export` lines) and prints it on stdout; progress goes to stderr.
# Stop with scripts/stop-swift.sh [DIR].
#
# Environment knobs (all optional):
#   SWIFT_PORT=8089        S3 (and Swift) port of the proxy server on 127.0.0.1
#   SWIFT_OBJ_PORT=6210, SWIFT_CONT_PORT=6211, SWIFT_ACC_PORT=6212   the storage servers' ports
#   SWIFT_NODE_DIR         object data (default /dev/shm/s3-ssec-proxy-swift-<hash of DIR>)
#
# S3 identity: access key `test:tester`, secret `testing` (tempauth account:user).
# Store limits the proxy meets here (docs/CLIENTS.md, "Stores"): no aws-chunked bodies (501), `?partNumber`
# GETs refused (405), user-metadata values over 256 bytes refused (500; that limit is only read from
# /etc/swift/swift.conf, which this script leaves alone), no SSE-C of its own.
set -euo pipefail

DIR=${1:-${SWIFT_DIR:-/tmp/s3-ssec-proxy-swift}}
DIR=$(mkdir -p "$DIR" && cd "$DIR" && pwd)
SWIFT_PORT=${SWIFT_PORT:-8089}
OBJ_PORT=${SWIFT_OBJ_PORT:-6210}
CONT_PORT=${SWIFT_CONT_PORT:-6211}
ACC_PORT=${SWIFT_ACC_PORT:-6212}
NODE_DIR=${SWIFT_NODE_DIR:-/dev/shm/s3-ssec-proxy-swift-$(echo "$DIR" | md5sum | cut -c1-8)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
trap 'echo "[start-swift] FAILED at line $LINENO; logs in $DIR/log" >&2' ERR

log() { echo "[start-swift $(date +%T)] $*" >&2; }
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

exec 9>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || { log "timed out waiting for $DIR/.lock"; exit 1; }
fi

answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$SWIFT_PORT/healthcheck" 2>/dev/null || true)
  [ "$code" = 200 ]
}

pid_alive() {  # pid_alive PIDFILE: the server recorded there runs with DIR's config
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF "$DIR/etc/"
}

port_busy() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root (or sudo) to run: $*"; return 1
  fi
}

print_info() {
  cat "$DIR/env"
  log "endpoint http://127.0.0.1:$SWIFT_PORT  (env file: $DIR/env, logs: $DIR/log)"
}

# ---------- 0. already running? ----------
if [ -f "$DIR/env" ] && grep -qF "127.0.0.1:$SWIFT_PORT" "$DIR/env" \
   && pid_alive "$DIR/run/proxy.pid" && pid_alive "$DIR/run/object.pid" \
   && pid_alive "$DIR/run/container.pid" && pid_alive "$DIR/run/account.pid" && answers; then
  log "already running under $DIR ($(elapsed)s)"
  print_info
  exit 0
fi

# ---------- 1. packages ----------
need=()
for b in swift-proxy-server:swift-proxy swift-object-server:swift-object swift-container-server:swift-container \
         swift-account-server:swift-account swift-ring-builder:swift curl:curl; do
  command -v "${b%%:*}" >/dev/null 2>&1 || need+=("${b##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "installing: ${need[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >&2 \
    || { as_root apt-get -o DPkg::Lock::Timeout=600 update >&2 \
         && as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >&2; }
  log "packages installed ($(elapsed)s)"
fi

# ---------- 2. clean slate ----------
if compgen -G "$DIR/run/*.pid" >/dev/null; then
  log "stale servers under $DIR: stopping them and wiping"
  bash "$HERE/stop-swift.sh" "$DIR" >&2 || true
fi
for p in "$SWIFT_PORT" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT"; do
  if port_busy "$p"; then
    log "port 127.0.0.1:$p is already in use by another process (set SWIFT_PORT/SWIFT_OBJ_PORT/SWIFT_CONT_PORT/SWIFT_ACC_PORT)"
    exit 1
  fi
done
case "$NODE_DIR" in /dev/shm/?*|/tmp/?*|"$DIR"/?*) ;; *) log "SWIFT_NODE_DIR must be a directory under /dev/shm, /tmp or DIR"; exit 2;; esac
rm -rf "${DIR:?}"/{etc,run,log,env,env.tmp} "${NODE_DIR:?}"
mkdir -p "$DIR"/{etc,run,log} "$NODE_DIR/d1"
echo "$NODE_DIR" > "$DIR/run/node_dir"

cat > "$DIR/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = s3ssecproxytest
swift_hash_path_prefix = s3ssecproxytest
[storage-policy:0]
name = Policy-0
default = yes
EOF

(
  cd "$DIR/etc"
  for r in object:$OBJ_PORT container:$CONT_PORT account:$ACC_PORT; do
    swift-ring-builder "${r%%:*}.builder" create 10 1 1 >/dev/null
    swift-ring-builder "${r%%:*}.builder" add "r1z1-127.0.0.1:${r##*:}/d1" 1 >/dev/null
    swift-ring-builder "${r%%:*}.builder" rebalance >/dev/null
  done
)

# The servers "drop privileges" to `user`; the data directory belongs to whoever runs this script.
RUN_AS=$(id -un)
common() {  # common PORT
  cat <<EOF
[DEFAULT]
devices = $NODE_DIR
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = $1
workers = 1
user = $RUN_AS
swift_dir = $DIR/etc
log_name = swift
log_address = /nonexistent
log_level = WARNING
EOF
}
for s in object:$OBJ_PORT container:$CONT_PORT account:$ACC_PORT; do
  n=${s%%:*}
  { common "${s##*:}"; printf '[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' "$n" "$n" "$n"; } \
    > "$DIR/etc/$n-server.conf"
done
cat > "$DIR/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $SWIFT_PORT
workers = 1
user = $RUN_AS
swift_dir = $DIR/etc
log_name = swift
log_address = /nonexistent
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# one node only: never error-limit it
error_suppression_limit = 1000000

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
# s3api insists on swift.cache being present; nothing needs to listen here
memcache_servers = 127.0.0.1:11299
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
s3_acl = false
allow_multipart_uploads = true
min_segment_size = 5242880
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF

# ---------- 3. servers ----------
# Each in a session of its own (stop-swift.sh kills the group: the server and its worker); none inherits the lock.
for s in account container object proxy; do
  setsid "swift-$s-server" "$DIR/etc/$s-server.conf" -v >"$DIR/log/$s.log" 2>&1 </dev/null 9>&- &
  echo $! > "$DIR/run/$s.pid"
done
for _ in $(seq 1 150); do answers && break; sleep 0.2; done
answers || { log "Swift did not answer on 127.0.0.1:$SWIFT_PORT; see $DIR/log"; exit 1; }

# Written last and atomically: its presence (with live servers) means "ready".
{
  echo "# written by scripts/start-swift.sh; source it: . $DIR/env"
  echo "export SWIFT_ENDPOINT=http://127.0.0.1:$SWIFT_PORT"
  echo "export SWIFT_ACCESS_KEY_ID=test:tester"
  echo "export SWIFT_SECRET_ACCESS_KEY=testing"
  echo "export SWIFT_REGION=us-east-1"
  echo "export SWIFT_DIR=$DIR"
} > "$DIR/env.tmp"
mv -f "$DIR/env.tmp" "$DIR/env"

rss=0
for p in "$DIR"/run/*.pid; do
  pid=$(cat "$p")
  for c in "$pid" $(pgrep -P "$pid" 2>/dev/null || true); do
    r=$(awk '/VmRSS/{print $2}' /proc/"$c"/status 2>/dev/null || echo 0); rss=$((rss + ${r:-0}))
  done
done
log "ready in $(elapsed)s; RSS of the four servers: $((rss / 1024)) MiB"
print_info
