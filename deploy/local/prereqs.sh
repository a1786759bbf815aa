#!/usr/bin/env bash
# Installs what sluice needs to build, run locally and test on Debian 12:
#   mariadb-server mariadb-client  — source/target servers and mariadb-binlog
#   etcd-server                    — coordination
#   etcd-client                    — etcdctl (the deploy guide's etcd user and
#                                    role commands, which a test runs)
#   protobuf-compiler              — protoc, needed to build the etcd client
#   libprotobuf-dev                — google/protobuf/*.proto that protoc imports
#                                    (only a Recommends of protobuf-compiler)
#   sysbench                       — the reference OLTP load for benchmarks
#   mydumper                       — mydumper/myloader, a reference of the
#                                    `sluice-bench snapshot` scenario
#   percona-toolkit                — pt-table-checksum, run against a source by
#                                    the tests (statement-format DML it writes)
#   openssl                        — the TLS tests make their certificates with it
#   chromium                       — headless browser the console (/ui) tests load
#                                    the page in
#   prometheus                     — promtool, which checks and unit-tests the alert
#                                    rules (deploy/prometheus) in the tests; the
#                                    package's own server is stopped and disabled
#                                    right after installing it (it would take port
#                                    9090, node-a's admin port in the quick start)
# As root it installs the missing ones with apt-get; otherwise it prints the
# command to run. A Rust toolchain (cargo >= 1.85) must already be present.
# `prereqs.sh --check` only reports (exit 1 if anything is missing).
set -euo pipefail
check_only=no
[ "${1:-}" = --check ] && check_only=yes

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mariadbd || need+=(mariadb-server)
have mariadb || need+=(mariadb-client)
have mariadb-binlog || need+=(mariadb-client)
have etcd || need+=(etcd-server)
have etcdctl || need+=(etcd-client)
have protoc || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
have sysbench || need+=(sysbench)
have pt-table-checksum || need+=(percona-toolkit)
have mydumper || need+=(mydumper)
have openssl || need+=(openssl)
have chromium || need+=(chromium)
have promtool || need+=(prometheus)
have cc || need+=(gcc)
have pkg-config || need+=(pkg-config)

if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  if [ "$check_only" = no ] && [ "$(id -u)" -eq 0 ]; then
    echo "prereqs: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if printf '%s\n' "${need[@]}" | grep -qx prometheus && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    echo "prereqs: missing packages; as root, run deploy/local/prereqs.sh or:" >&2
    echo "  apt-get update && apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "prereqs: cargo not found: install a Rust toolchain >= 1.85 (https://rustup.rs)" >&2
  exit 1
fi
echo "prereqs: ok" >&2
