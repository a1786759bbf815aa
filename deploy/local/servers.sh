#!/usr/bin/env bash
# Local servers for the quick start: a binlog source, a target and etcd, each
# under $SLUICE_STATE (default: <repo>/.state, ignored by git).
#
#   deploy/local/servers.sh start    # idempotent: starts what is not running
#   deploy/local/servers.sh stop     # clean shutdown of all three
#   deploy/local/servers.sh status   # one line per server
#
# Ports (environment, with defaults):
#   SLUICE_SOURCE_PORT=13306  SLUICE_TARGET_PORT=13307
#   SLUICE_ETCD_PORT=23790    SLUICE_ETCD_PEER_PORT=23780
# The source gets a replication account `repl` with password $SRC_PASSWORD
# (default `repl_pw`); root on both servers has no password and is reachable
# from 127.0.0.1 only. Servers run as the current user (root: --user=root).
#
# Each server runs in a session of its own (setsid): it is in no terminal's
# process group, so a Ctrl-C meant for sluice nodes in the same terminal
# (the quick start) never reaches it. Only `stop` ends them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${SLUICE_STATE:-$repo/.state}"
src_port="${SLUICE_SOURCE_PORT:-13306}"
tgt_port="${SLUICE_TARGET_PORT:-13307}"
etcd_port="${SLUICE_ETCD_PORT:-23790}"
etcd_peer="${SLUICE_ETCD_PEER_PORT:-23780}"
src_password="${SRC_PASSWORD:-repl_pw}"

sbin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || { echo "missing $1: run deploy/local/prereqs.sh" >&2; exit 1; }; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # what, deadline seconds, command...
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "$what did not become ready; see logs in $state" >&2; return 1; fi
    sleep 0.1
  done
}

mariadb_start() { # name port server_id binlog(yes/no)
  local name=$1 port=$2 id=$3 binlog=$4 dir="$state/$1"
  if alive "$dir/mysqld.pid"; then echo "$name: already running on 127.0.0.1:$port"; return; fi
  mkdir -p "$dir"
  chmod 700 "$state" "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mkdir -p "$dir/tmp"
    "$(sbin mariadb-install-db)" --no-defaults --user="$(id -un)" --datadir="$dir/data" --tmpdir="$dir/tmp" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || { echo "$name: mariadb-install-db failed, see $dir/install.log" >&2; exit 1; }
  fi
  cat >"$dir/init.sql" <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY '${src_password//\'/\'\'}';
ALTER USER 'repl'@'127.0.0.1' IDENTIFIED BY '${src_password//\'/\'\'}';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, REPLICATION MASTER ADMIN, SELECT ON *.* TO 'repl'@'127.0.0.1';
SQL
  chmod 600 "$dir/init.sql"
  # A private tmpdir: a starting mariadbd deletes every #sql* file in its
  # tmpdir, which would break another server sharing the system one.
  mkdir -p "$dir/tmp"
  local args=(--no-defaults --user="$(id -un)" --datadir="$dir/data" --port="$port" --tmpdir="$dir/tmp"
    --bind-address=127.0.0.1 --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid"
    --log-error="$dir/error.log" --init-file="$dir/init.sql" --server-id="$id"
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    --skip-name-resolve --default-time-zone=+00:00 --max-allowed-packet=256M)
  if [ "$binlog" = yes ]; then
    args+=(--log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL
      --binlog-row-metadata=FULL --binlog-checksum=CRC32 --gtid-strict-mode=1
      --log-slave-updates=1)
  fi
  setsid "$(sbin mariadbd)" "${args[@]}" </dev/null >/dev/null 2>&1 &
  wait_for "$name" 60 "$(sbin mariadb-admin)" --no-defaults -h127.0.0.1 -P"$port" -uroot ping
  echo "$name: started on 127.0.0.1:$port (data $dir/data)"
}

etcd_start() {
  local dir="$state/etcd"
  if alive "$dir/etcd.pid"; then echo "etcd: already running on 127.0.0.1:$etcd_port"; return; fi
  mkdir -p "$dir"; chmod 700 "$dir"
  rm -f "$dir/etcd.pid"
  # The pid is written by the process itself, which then becomes etcd, so it
  # is right whether or not setsid had to fork.
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' - "$dir/etcd.pid" "$(sbin etcd)" \
    --name=sluice-local --data-dir="$dir/data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="sluice-local=http://127.0.0.1:$etcd_peer" --logger=zap --log-outputs=stderr \
    </dev/null >>"$dir/etcd.log" 2>&1 &
  wait_for etcd 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$etcd_port"
  echo "etcd: started on 127.0.0.1:$etcd_port (data $dir/data)"
}

stop_pid() { # name pidfile
  if alive "$2"; then
    local pid; pid=$(cat "$2"); kill "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    echo "$1: stopped"
  else
    echo "$1: not running"
  fi
  rm -f "$2"
}

status_line() { # name pidfile port
  if alive "$2"; then echo "$1: running (pid $(cat "$2")) on 127.0.0.1:$3"; else echo "$1: stopped"; fi
}

case "${1:-}" in
  start)
    mkdir -p "$state"; chmod 700 "$state"
    mariadb_start source "$src_port" 1 yes
    mariadb_start target "$tgt_port" 2 no
    etcd_start
    ;;
  stop)
    stop_pid source "$state/source/mysqld.pid"
    stop_pid target "$state/target/mysqld.pid"
    stop_pid etcd "$state/etcd/etcd.pid"
    ;;
  status)
    status_line source "$state/source/mysqld.pid" "$src_port"
    status_line target "$state/target/mysqld.pid" "$tgt_port"
    status_line etcd "$state/etcd/etcd.pid" "$etcd_port"
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
