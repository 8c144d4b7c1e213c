#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: its data and its Unix socket in one temporary
# directory, trust authentication for the `postgres` role, and durability turned off (fsync)
# because nothing in it is meant to outlive the run. With openssl on the machine it also listens
# on a free port of 127.0.0.1 with TLS, its certificate (for localhost and 127.0.0.1) signed by a
# CA made on the spot: DIR/tls-url is that URL (sslmode=require) and DIR/ca.pem the CA's
# certificate, for the TLS tests (OCO_TEST_POSTGRES_TLS, OCO_TEST_POSTGRES_CA).
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
    listen="''"
    tls=""
    if command -v openssl >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
      (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=oco test CA" \
          -keyout ca.key -out ca.pem >/dev/null 2>&1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
          -keyout server.key -out server.csr >/dev/null 2>&1
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
          -extfile server.ext -out server.crt >/dev/null 2>&1
        chmod 0600 server.key
        rm -f ca.key server.csr server.ext ca.srl
      )
      if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir/server.key" "$dir/server.crt"
      fi
      # A port the kernel says is free now.
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      listen="'127.0.0.1' -c port=$port -c ssl=on -c ssl_cert_file='$dir/server.crt' \
-c ssl_key_file='$dir/server.key'"
      tls="postgresql://postgres@localhost:${port}/postgres?sslmode=require"
    else
      listen="'' -c port=5432"
    fi
    as_owner "$bin/pg_ctl" start --pgdata="$dir/data" --log="$dir/postgres.log" --wait \
      --options="-c listen_addresses=$listen -c unix_socket_directories='$dir' \
-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      >/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
    if [ -n "$tls" ]; then
      echo "$tls" >"$dir/tls-url"
    fi
    socket_port=${port:-5432}
    # The socket directory, percent-encoded as the URL's host.
    host=$(printf '%s' "$dir" | sed 's|/|%2F|g')
    echo "postgresql://postgres@${host}:${socket_port}/postgres"
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
