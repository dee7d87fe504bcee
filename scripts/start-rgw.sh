#!/usr/bin/env bash
# scripts/start-rgw.sh [DIR] -- single-node Ceph (1 mon, 1 OSD, radosgw/beast) on loopback,
# the real S3 upstream for s3-ssec-proxy's integration tests and benchmarks.
#
# Adapted from ../shared/upstreams/start-rgw.sh (Debian 12, ceph 16.2.15). No systemd, no cephx
# (auth none); everything (config, data, logs, pid files, admin sockets) lives under DIR
# (default /tmp/s3-ssec-proxy-rgw). Idempotent and safe to call concurrently (flock on DIR/.lock):
#   - installs missing Debian packages (apt-get, through sudo when not root; `apt-get update` only
#     when the first install attempt fails);
#   - if the cluster under DIR is already running (mon, osd and rgw alive) and S3 answers, it just
#     prints the info (well under a second);
#   - otherwise it stops whatever it started earlier under DIR (by PID file), wipes DIR and builds a
#     fresh cluster (the data is throw-away test data).
# Writes DIR/env (shell `export` lines) and prints it on stdout; progress goes to stderr.
# Stop with scripts/stop-rgw.sh [DIR].
#
# Environment knobs (all optional):
#   RGW_PORT=7480          plain-HTTP S3 port on 127.0.0.1
#   RGW_TLS_PORT=          if set (e.g. 7443): also serve HTTPS there with a self-signed
#                          cert for 127.0.0.1/localhost (DIR/tls/cert.pem)
#   MON_PORT=3300          msgr2 port of the monitor on 127.0.0.1 (msgr1 is not used)
#   OSD_BACKEND=memstore   memstore (RAM, fastest start; grows with data) |
#                          bluestore (file-backed DIR/osd/0/block; use it for benchmarks)
#   OSD_SIZE_GB=8          memstore capacity / bluestore block file size (sparse file)
#   ACCESS_KEY / SECRET_KEY  keys of the main user (uid "proxytest")
#   S3TESTS_USERS=1        also create three extra test users (main, alt, tenant)
#   RGW_SSEC_NO_TLS=1      rgw_crypt_require_ssl=false, so RGW's native SSE-C works over plain HTTP
#                          (only for comparison baselines; the proxy never relies on it)
#
# Pitfalls solved here (see ../shared/upstreams/README.md):
#   - with auth none radosgw hangs 300 s unless `ms mon client mode = crc`;
#   - `rgw crypt default encryption key` breaks every CopyObject (501), so it is never set;
#   - pg_num must drop to 8 for size-1 pools (else "too many PGs per OSD" blocks pool creation).
set -euo pipefail

DIR=${1:-${RGW_DIR:-/tmp/s3-ssec-proxy-rgw}}
DIR=$(mkdir -p "$DIR" && cd "$DIR" && pwd)
RGW_PORT=${RGW_PORT:-7480}
RGW_TLS_PORT=${RGW_TLS_PORT:-}
MON_PORT=${MON_PORT:-3300}
OSD_BACKEND=${OSD_BACKEND:-memstore}
OSD_SIZE_GB=${OSD_SIZE_GB:-8}
ACCESS_KEY=${ACCESS_KEY:-PROXYTESTACCESSKEY01}
SECRET_KEY=${SECRET_KEY:-proxytestsecretkey000000000000000000000000}
S3TESTS_USERS=${S3TESTS_USERS:-1}
RGW_SSEC_NO_TLS=${RGW_SSEC_NO_TLS:-1}
CONF=$DIR/ceph.conf
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
trap 'echo "[start-rgw] FAILED at line $LINENO; logs in $DIR/log" >&2' ERR

case "$OSD_BACKEND" in memstore|bluestore) ;; *) echo "[start-rgw] OSD_BACKEND must be memstore or bluestore, not '$OSD_BACKEND'" >&2; exit 2;; esac

log() { echo "[start-rgw $(date +%T)] $*" >&2; }
t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# One start at a time per DIR (two test processes may call this at once).
exec 9>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 900 9 || { log "timed out waiting for $DIR/.lock"; exit 1; }
fi

s3_answers() {  # any HTTP status from the S3 port counts as "answering"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$RGW_PORT/" 2>/dev/null || true)
  [ -n "$code" ] && [ "$code" != "000" ]
}

pid_alive() {  # pid_alive PIDFILE: the daemon recorded there runs with DIR's ceph.conf
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF "$CONF"
}

port_busy() {  # port_busy PORT: something listens on 127.0.0.1:PORT
  if command -v ss >/dev/null 2>&1; then
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

print_info() {
  cat "$DIR/env"
  log "endpoint http://127.0.0.1:$RGW_PORT  (env file: $DIR/env, logs: $DIR/log)"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else log "need root (or sudo) to run: $*"; return 1
  fi
}

# ---------- 0. already running? ----------
if [ -f "$DIR/env" ] && grep -qF "127.0.0.1:$RGW_PORT" "$DIR/env" \
   && pid_alive "$DIR/run/mon.a.pid" && pid_alive "$DIR/run/osd.0.pid" && pid_alive "$DIR/run/client.rgw.0.pid" \
   && s3_answers; then
  log "already running under $DIR ($(elapsed)s)"
  print_info
  exit 0
fi

# ---------- 1. packages ----------
need=()
for b in ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw radosgw-admin:radosgw ceph:ceph-common \
         monmaptool:ceph-base curl:curl openssl:openssl; do
  command -v "${b%%:*}" >/dev/null 2>&1 || need+=("${b##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  log "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >&2 \
    || { as_root apt-get -o DPkg::Lock::Timeout=600 update >&2 \
         && as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >&2; }
  log "packages installed ($(elapsed)s)"
fi

# ---------- 2. clean slate ----------
if [ -f "$CONF" ] || [ -d "$DIR/run" ]; then
  log "stale cluster under $DIR: stopping it and wiping"
  bash "$HERE/stop-rgw.sh" "$DIR" >&2 || true
fi
for p in "$RGW_PORT" "$MON_PORT" ${RGW_TLS_PORT:+"$RGW_TLS_PORT"}; do
  if port_busy "$p"; then
    log "port 127.0.0.1:$p is already in use by another process (another cluster? set RGW_PORT/MON_PORT/RGW_TLS_PORT)"
    exit 1
  fi
done
rm -rf "${DIR:?}"/{ceph.conf,env,monmap,mon,osd,run,log,tls,out}
mkdir -p "$DIR"/{mon/a,osd/0,run,log}

FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
SIZE_BYTES=$((OSD_SIZE_GB * 1024 * 1024 * 1024))

FRONTEND="beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1"
if [ -n "$RGW_TLS_PORT" ]; then
  mkdir -p "$DIR/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" >/dev/null 2>&1
  FRONTEND="$FRONTEND ssl_endpoint=127.0.0.1:$RGW_TLS_PORT ssl_certificate=$DIR/tls/cert.pem ssl_private_key=$DIR/tls/key.pem"
fi

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
# auth 'none' only supports crc framing; radosgw defaults its mon connection to 'secure'
# and then hangs for 300 s
ms mon client mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
mon warn on insecure global id reclaim allowed = false
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $DIR/log/cluster.log
crash dir = $DIR/log/crash
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$id
osd objectstore = $OSD_BACKEND
memstore device bytes = $SIZE_BYTES
bluestore block create = true
bluestore block size = $SIZE_BYTES
bluestore fsck on mount = false
osd memory target = 1073741824
osd op num shards = 2
osd op num threads per shard = 2

[client.rgw.0]
rgw frontends = $FRONTEND
rgw crypt require ssl = $([ "$RGW_SSEC_NO_TLS" = 1 ] && echo false || echo true)
# Never set 'rgw crypt default encryption key': it breaks every CopyObject (501).
# SSE-KMS/SSE-S3 test backend (static keys) for KMS-style comparison tests
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = testkey-1=YmluCmJvb3N0CmJvb3N0LWJ1aWxkCmNlcGguY29uZgo= testkey-2=aWIKTWFrZWZpbGUKbWFuCm91dApzcmMKVGVzdGluZwo=
rgw thread pool size = 128
rgw enable usage log = false
rgw lc debug interval = 10
EOF

# ---------- 3. monitor ----------
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap"
ceph-mon -c "$CONF" -i a 9>&- 2>>"$DIR/log/mon.a.stderr.log"   # daemons must not inherit the lock fd
log "mon started ($(elapsed)s)"
for _ in $(seq 1 60); do ceph -c "$CONF" --connect-timeout 2 mon stat >/dev/null 2>&1 && break; sleep 0.5; done

# ---------- 4. OSD ----------
OSD_ID=$(ceph -c "$CONF" --connect-timeout 10 osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || { log "unexpected osd id $OSD_ID"; exit 1; }
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd.0.mkfs.log" 2>&1
ceph-osd -c "$CONF" -i 0 9>&- 2>>"$DIR/log/osd.0.stderr.log"
log "osd started, backend $OSD_BACKEND ($(elapsed)s)"
osd_up=0
for _ in $(seq 1 120); do
  if ceph -c "$CONF" --connect-timeout 2 osd dump 2>/dev/null | grep -q '^osd.0 up'; then osd_up=1; break; fi
  sleep 0.5
done
[ "$osd_up" = 1 ] || { log "osd.0 did not come up; see $DIR/log/osd.0.log"; exit 1; }

# ---------- 5. radosgw ----------
radosgw -c "$CONF" -n client.rgw.0 9>&- 2>>"$DIR/log/client.rgw.0.stderr.log"
log "radosgw started, waiting for S3 on 127.0.0.1:$RGW_PORT ($(elapsed)s)"
for _ in $(seq 1 240); do s3_answers && break; sleep 0.5; done
s3_answers || { log "radosgw did not answer; see $DIR/log/client.rgw.0.log"; exit 1; }
log "S3 answers ($(elapsed)s)"

# ---------- 6. users ----------
radosgw-admin -c "$CONF" user create --uid=proxytest --display-name="Proxy Test" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$DIR/log/user-proxytest.json"
if [ "$S3TESTS_USERS" = 1 ]; then
  # three extra test identities (Ceph vstart defaults)
  radosgw-admin -c "$CONF" user create --uid=testid --display-name="M. Tester" --email=tester@ceph.com \
    --access-key=0555b35654ad1656d804 --secret-key='h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q==' >/dev/null
  radosgw-admin -c "$CONF" user create --uid=56789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234 \
    --display-name=john.doe --email=john.doe@example.com \
    --access-key=NOPQRSTUVWXYZABCDEFG --secret-key=nopqrstuvwxyzabcdefghijklmnabcdefghijklm >/dev/null
  radosgw-admin -c "$CONF" user create --tenant=testx --uid=9876543210abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
    --display-name='testx$tenanteduser' --email=tenanteduser@example.com \
    --access-key=HIJKLMNOPQRSTUVWXYZA --secret-key=opqrstuvwxyzabcdefghijklmnopqrstuvwxyzab >/dev/null
fi

# Written last and atomically: its presence (with live daemons) means "ready".
{
  echo "# written by scripts/start-rgw.sh; source it: . $DIR/env"
  echo "export RGW_ENDPOINT=http://127.0.0.1:$RGW_PORT"
  echo "export RGW_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "export RGW_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "export RGW_REGION=us-east-1"
  echo "export RGW_DIR=$DIR"
  if [ -n "$RGW_TLS_PORT" ]; then
    echo "export RGW_TLS_ENDPOINT=https://127.0.0.1:$RGW_TLS_PORT"
    echo "export RGW_TLS_CA=$DIR/tls/cert.pem"
  fi
  echo "# the same under the names of ../shared/upstreams/start-rgw.sh and aws-cli"
  echo "export S3_ENDPOINT=http://127.0.0.1:$RGW_PORT"
  echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "export AWS_DEFAULT_REGION=us-east-1"
  echo "export CEPH_CONF=$CONF"
} > "$DIR/env.tmp"
mv -f "$DIR/env.tmp" "$DIR/env"

rss=0
for p in "$DIR"/run/*.pid; do
  pid=$(cat "$p"); r=$(awk '/VmRSS/{print $2}' /proc/"$pid"/status 2>/dev/null || echo 0); rss=$((rss + ${r:-0}))
done
log "ready in $(elapsed)s; RSS of mon+osd+rgw: $((rss / 1024)) MiB; backend $OSD_BACKEND"
print_info
