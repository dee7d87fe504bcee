#!/usr/bin/env bash
# scripts/stop-swift.sh [DIR] -- stop the servers scripts/start-swift.sh started under DIR
# (default /tmp/s3-ssec-proxy-swift).
# Kills only the PIDs recorded in DIR/run/*.pid, and only if that PID's command line still names DIR's config;
# each server runs in a session of its own, so its worker goes with its process group. WIPE=1 also deletes
# DIR's config and the object data on tmpfs.
set -uo pipefail
DIR=${1:-${SWIFT_DIR:-/tmp/s3-ssec-proxy-swift}}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)

stop_one() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF "$DIR/etc/"; then
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid"; }
    echo "stopped swift $(basename "$pidfile" .pid) (pid $pid)"
  fi
  rm -f "$pidfile"
}

for s in proxy object container account; do stop_one "$DIR/run/$s.pid"; done
rm -f "$DIR/env"
if [ "${WIPE:-0}" = 1 ]; then
  if [ -f "$DIR/run/node_dir" ]; then
    nd=$(cat "$DIR/run/node_dir")
    case "$nd" in /dev/shm/s3-ssec-proxy-swift-*|"$DIR"/*) rm -rf "$nd" ;; esac
  fi
  rm -rf "${DIR:?}"/{etc,run,log,env,env.tmp}
  echo "wiped $DIR"
fi
