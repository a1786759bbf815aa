#!/usr/bin/env bash
# Quick start, command 1: install prerequisites, start a local source, target
# and etcd (deploy/local/servers.sh), build sluice and run the pipeline of
# pipeline.yaml as an active/standby pair of nodes, node-a and node-b, in the
# foreground, their logs prefixed with their names (Ctrl-C stops both
# gracefully; run this script again to resume where they stopped). Kill the
# active one (`kill <pid>` as printed) to watch the other take over.
#
# pipeline.yaml starts at the source's `latest` position, so once sluice has
# registered with the source a small demo writer creates `shop.orders` there
# and writes a few transactions; they appear in `shop_copy.orders` on the
# target. Stop the servers with `deploy/local/servers.sh stop`.
#
# Environment (defaults): the ports and state of servers.sh
# (SLUICE_SOURCE_PORT=13306, SLUICE_TARGET_PORT=13307, SLUICE_ETCD_PORT=23790,
# SLUICE_ETCD_PEER_PORT=23780, SLUICE_STATE=<repo>/.state), which
# pipeline.yaml reads too; SRC_PASSWORD=repl_pw; the nodes' admin ports
# SLUICE_NODE_A_ADMIN_PORT=9090 and SLUICE_NODE_B_ADMIN_PORT=9091; and
# SLUICE_BIN, a sluice binary to run instead of building
# ./target/release/sluice.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

"$here/prereqs.sh"
"$here/servers.sh" start
if [ -z "${SLUICE_BIN:-}" ]; then
  cargo build --release --locked -p sluice
  SLUICE_BIN=./target/release/sluice
fi
export SRC_PASSWORD="${SRC_PASSWORD:-repl_pw}"
"$SLUICE_BIN" validate --config pipeline.yaml
admin_a="${SLUICE_NODE_A_ADMIN_PORT:-9090}"
admin_b="${SLUICE_NODE_B_ADMIN_PORT:-9091}"

src_port="${SLUICE_SOURCE_PORT:-13306}"
tgt_port="${SLUICE_TARGET_PORT:-13307}"
src() { mariadb -h127.0.0.1 -P"$src_port" -uroot --batch --skip-column-names "$@"; }
tgt() { mariadb -h127.0.0.1 -P"$tgt_port" -uroot --batch --skip-column-names "$@"; }

# The demo writer: waits (bounded) until sluice is registered as a replica
# of the source, writes 20 small transactions, then reports what the target
# holds.
demo() {
  local i
  for i in $(seq 1 120); do
    src -e "SHOW SLAVE HOSTS" 2>/dev/null | grep -q . && break
    sleep 0.5
  done
  src -e "CREATE DATABASE IF NOT EXISTS shop;
          CREATE TABLE IF NOT EXISTS shop.orders (
            id BIGINT AUTO_INCREMENT PRIMARY KEY,
            customer VARCHAR(64) NOT NULL,
            amount DECIMAL(12,2) NOT NULL,
            created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
  for i in $(seq 1 20); do
    src -e "INSERT INTO shop.orders (customer, amount) VALUES ('demo-$i', $i.50)"
  done
  for i in $(seq 1 60); do
    if [ "$(src -e 'SELECT COUNT(*) FROM shop.orders')" = "$(tgt -e 'SELECT COUNT(*) FROM shop_copy.orders' 2>/dev/null)" ]; then
      echo "quickstart: shop.orders on the source and shop_copy.orders on the target both hold $(tgt -e 'SELECT COUNT(*) FROM shop_copy.orders') rows" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "quickstart: the target has not caught up with the demo rows yet; see the log above" >&2
}
demo &

# The HA pair: same pipeline file, own node id, replica server id and admin
# port each.
# Ctrl-C reaches every process of the group: the nodes stop gracefully by
# themselves, and the log prefixers ignore it so that their last lines (the
# drain and the final position) still get through.
node() {
  SLUICE_ADMIN_PORT="$3" "$SLUICE_BIN" run --config pipeline.yaml \
    --node-id "$1" --server-id "$2" > >(trap '' INT TERM; exec sed -u "s/^/[$1] /") 2>&1 &
}
node node-a 4001 "$admin_a"
pid_a=$!
node node-b 4002 "$admin_b"
pid_b=$!
echo "quickstart: node-a (pid $pid_a, admin http://127.0.0.1:$admin_a/status) and node-b (pid $pid_b, admin http://127.0.0.1:$admin_b/status); Ctrl-C stops both" >&2
stop() { kill -TERM "$pid_a" "$pid_b" 2>/dev/null || true; }
trap stop INT TERM
# A node's exit status, also when a trapped signal interrupts `wait` (which
# then returns early, with the node still draining).
wait_node() {
  while kill -0 "$1" 2>/dev/null; do wait "$1" || true; done
  local rc=0
  wait "$1" || rc=$?
  return "$rc"
}
status=0
wait_node "$pid_a" || status=$?
wait_node "$pid_b" || status=$?
echo "quickstart: both nodes stopped (exit $status); the servers keep running (deploy/local/servers.sh stop)" >&2
exit "$status"
