#!/usr/bin/env bash
# Quick start, command 1: install prerequisites, start a local source, target
# and etcd (deploy/local/servers.sh), build sluice and run the pipeline of
# pipeline.yaml in the foreground (Ctrl-C stops it gracefully; run this
# script again to resume where it stopped).
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

exec ./target/release/sluice run --config pipeline.yaml
