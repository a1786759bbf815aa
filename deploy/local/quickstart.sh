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
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

"$here/prereqs.sh"
"$here/servers.sh" start
cargo build --release --locked -p sluice
export SRC_PASSWORD="${SRC_PASSWORD:-repl_pw}"
./target/release/sluice validate --config pipeline.yaml

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
  SLUICE_ADMIN_PORT="$3" ./target/release/sluice run --config pipeline.yaml \
    --node-id "$1" --server-id "$2" > >(trap '' INT TERM; exec sed -u "s/^/[$1] /") 2>&1 &
}
node node-a 4001 9090
pid_a=$!
node node-b 4002 9091
pid_b=$!
echo "quickstart: node-a (pid $pid_a, admin http://127.0.0.1:9090/status) and node-b (pid $pid_b, admin http://127.0.0.1:9091/status); Ctrl-C stops both" >&2
stop() { kill -TERM "$pid_a" "$pid_b" 2>/dev/null || true; }
trap stop INT TERM
status=0
wait "$pid_a" || status=$?
wait "$pid_b" || status=$?
exit "$status"
