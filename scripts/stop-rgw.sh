#!/usr/bin/env bash
# scripts/stop-rgw.sh [DIR] -- stop the daemons scripts/start-rgw.sh started under DIR
# (default /tmp/s3-ssec-proxy-rgw).
# Kills only the PIDs recorded in DIR/run/*.pid, and only if that PID's command line still names
# DIR's ceph.conf: radosgw first, then the OSD, then the mon. WIPE=1 also deletes DIR's cluster data.
set -uo pipefail
DIR=${1:-${RGW_DIR:-/tmp/s3-ssec-proxy-rgw}}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)

stop_one() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF "$DIR/ceph.conf"; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop_one "$DIR/run/client.rgw.0.pid"
stop_one "$DIR/run/osd.0.pid"
stop_one "$DIR/run/mon.a.pid"
rm -f "$DIR/env"
if [ "${WIPE:-0}" = 1 ]; then
  rm -rf "${DIR:?}"/{ceph.conf,env,env.tmp,monmap,mon,osd,run,log,tls}
  echo "wiped $DIR"
fi
