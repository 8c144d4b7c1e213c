#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: its data and its Unix socket in one temporary
# directory, no TCP port, trust authentication for the `postgres` role, and durability turned
# off (fsync) because nothing in it is meant to outlive the run.
#
#   scripts/throwaway-cluster.sh start [DIR]   creates DIR (or a new temporary directory),
#                                              starts a cluster there and prints its URL
#   scripts/throwaway-cluster.sh stop DIR      stops that cluster and removes DIR
#
#   dir=$(mktemp -d); export OCO_TEST_POSTGRES=$(scripts/throwaway-cluster.sh start "$dir")
#
# PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user (which
# Debian's packages create); otherwise as the caller.
set -euo pipefail

find_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return
  fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$newest" ]; then
    echo "no PostgreSQL found (initdb is not on PATH nor under /usr/lib/postgresql/*/bin)" >&2
    exit 1
  fi
  echo "$newest"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
  start)
    bin=$(find_bin)
    dir="${2:-$(mktemp -d /tmp/oco-postgres.XXXXXX)}"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
      if ! id postgres >/dev/null 2>&1; then
        echo "running as root, but there is no postgres user to run PostgreSQL as" >&2
        exit 1
      fi
      chown postgres: "$dir"
    fi
    chmod 0755 "$dir"
    as_owner "$bin/initdb" --pgdata="$dir/data" --username=postgres --auth=trust \
      --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" start --pgdata="$dir/data" --log="$dir/postgres.log" --wait \
      --options="-c listen_addresses='' -c unix_socket_directories='$dir' -c port=5432 \
-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
    # The socket directory, percent-encoded as the URL's host.
    host=$(printf '%s' "$dir" | sed 's|/|%2F|g')
    echo "postgresql://postgres@${host}:5432/postgres"
    ;;
  stop)
    dir="${2:?usage: $0 stop DIR}"
    if [ -f "$dir/data/postmaster.pid" ]; then
      bin=$(find_bin)
      as_owner "$bin/pg_ctl" stop --pgdata="$dir/data" --mode=immediate --wait >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start [DIR] | stop DIR" >&2
    exit 2
    ;;
esac
