#!/usr/bin/env bash
# Hostile clients against the server (the "Hostile clients" rows of benches/PERFORMANCE.md):
#
#   1. builds oco-server-min, loadgen and hostile (release; `--quick`: the debug build);
#   2. seeds a temporary data directory (`loadgen seed --small`: 2,000 computers, 100 polled);
#   3. starts the server under a descriptor limit of 1,024, soft and hard (`ulimit -n`,
#      `ulimit -Hn`: raising the soft limit at start cannot help), on a free loopback port;
#   4. runs `hostile`: 5,000 idle connections, 500 that never finish their request head and 500
#      that send their body a byte a second, then a signed hello every 100 ms for 30 s; it
#      reports the hello latency, the server's memory and what became of the hostile
#      connections, then stops the server with SIGTERM with them still open and times the stop;
#   5. fails (status 1) when a hello failed or took over 100 ms, the stop took over 5 s, or the
#      server did not exit with status 0.
#
# Run from anywhere in the workspace:
#
#   bash benches/hostile.sh              # the full run (about a minute after the build)
#   bash benches/hostile.sh --quick      # CI's short form: debug build, 300 + 50 + 50 hostile
#                                        # connections under a 256-descriptor limit, 3 s of hellos
#   HARD=0 bash benches/hostile.sh       # only the soft limit at 1,024: the server raises it
#
# Environment: IDLE, SLOW_HEADER, SLOW_BODY (connection counts), DURATION (seconds of hellos),
# NOFILE (the server's descriptor limit), HARD (0: leave the hard limit alone), KEEP (keep the
# temporary directory and the server log), SERVER_ARGS (more options for the server).
set -euo pipefail

quick=
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
    esac
done
if [[ -n "$quick" ]]; then
    idle=${IDLE:-300} slow_header=${SLOW_HEADER:-50} slow_body=${SLOW_BODY:-50}
    duration=${DURATION:-3} nofile=${NOFILE:-256} profile=debug settle=1
else
    idle=${IDLE:-5000} slow_header=${SLOW_HEADER:-500} slow_body=${SLOW_BODY:-500}
    duration=${DURATION:-30} nofile=${NOFILE:-1024} profile=release settle=2
fi

cd "$(dirname "$0")/.."
if [[ "$profile" == release ]]; then
    cargo build --release --quiet -p oco-server-min -p oco-benches --bins
else
    cargo build --quiet -p oco-server-min -p oco-benches --bins
fi
bin=${CARGO_TARGET_DIR:-target}/$profile

work=$(mktemp -d "${TMPDIR:-/tmp}/oco-hostile.XXXXXX")
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "${KEEP:-}" ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); nproc $(nproc); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+dirty'); $profile build"
"$bin/loadgen" seed --data-dir "$work/data" --small >/dev/null

# The server's own limit, in a subshell; the generator needs room for its own sockets.
(
    # Soft first: bash's plain `ulimit -n` would set the hard limit too.
    ulimit -Sn "$nofile"
    [[ "${HARD:-1}" == 0 ]] || ulimit -Hn "$nofile"
    # shellcheck disable=SC2086
    exec "$bin/oco-server-min" --listen 127.0.0.1:0 --data-dir "$work/data" ${SERVER_ARGS:-}
) >"$work/server.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 1 300); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | sed 's/^listening on //' || true)
    [[ -n "$url" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "the server died" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$url" ]] || { cat "$work/server.log"; echo "the server does not listen" >&2; exit 1; }
grep -o 'descriptor limit.*' "$work/server.log" | sed 's/^/== server: /'
ulimit -n "$(ulimit -Hn)"

status=0
"$bin/hostile" --url "$url/api-agent.php" --server-pid "$server_pid" --small \
    --idle "$idle" --slow-header "$slow_header" --slow-body "$slow_body" \
    --duration "$duration" --settle "$settle" || status=$?
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
echo "== server exited with status $server_status"
grep -E 'connections open \(the limit\)|accepting a connection|stopping|cut off' "$work/server.log" \
    | sed 's/^/   log: /' || true
[[ "$status" == 0 && "$server_status" == 0 ]]
