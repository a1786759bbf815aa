#!/usr/bin/env bash
# Quick start, command 1: install prerequisites, start a local source, target
# and etcd (deploy/local/servers.sh), build sluice and run it against them.
#
# Until the replication pipeline lands this validates pipeline.yaml and runs
# `sluice check`, which reports each server's state; stop the servers with
# `deploy/local/servers.sh stop`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

"$here/prereqs.sh"
"$here/servers.sh" start
cargo build --release --locked -p sluice
export SRC_PASSWORD="${SRC_PASSWORD:-repl_pw}"
./target/release/sluice validate --config pipeline.yaml
exec ./target/release/sluice check \
  --source "mysql://repl:${SRC_PASSWORD}@127.0.0.1:${SLUICE_SOURCE_PORT:-13306}" \
  --target "mysql://root@127.0.0.1:${SLUICE_TARGET_PORT:-13307}" \
  --etcd "http://127.0.0.1:${SLUICE_ETCD_PORT:-23790}"
