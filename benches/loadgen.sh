#!/usr/bin/env bash
# The server load benchmark of benches/PERFORMANCE.md (the server rows), end to end:
#
#   1. builds the release binaries (oco-server-min, and loadgen of oco-benches);
#   2. seeds a temporary data directory with the fixed seed (`loadgen seed`: 20,000 computers,
#      1,000 polled with 20 Waiting jobs each, 1M jobs, every computer with its own keys);
#   3. starts the server on it, pinned to core 1 (`taskset -c 1`), on a free loopback port, and
#      waits until it listens;
#   4. runs the generator pinned to core 0 (`taskset -c 0`), 32 agents, 5 s warm-up + 60 s
#      measured, three times: signed hello polls with a new connection per request (as the OCO
#      agent does), the same with keep-alive, and update_job_state reports (new connection);
#   5. stops the server with SIGTERM (it must exit 0) and prints a summary.
#
# Run from anywhere in the workspace, on a quiet machine with at least 2 cores:
#
#   bash benches/loadgen.sh                  # the full run (about 4 minutes)
#   bash benches/loadgen.sh --small          # 2,000 computers, 100 polled: a quick check
#   DURATION=10 WARMUP=2 bash benches/loadgen.sh --small
#   KEEP=1 bash benches/loadgen.sh           # keep the data directory and the server log
#   PERF=1 bash benches/loadgen.sh           # also `perf record -g` the server during each run
#   SERVER_BIN=/tmp/old/oco-server-min bash benches/loadgen.sh   # measure another build (a baseline)
#
# Environment: DURATION (seconds measured, default 60), WARMUP (default 5), CONCURRENCY
# (default 32), KEEP (keep the temporary directory), PERF (profile the server during each
# measured window with `perf record -g` and keep the directory: the reports are written next to
# the server log), SERVER_BIN (the server binary to measure; default: this workspace's release
# build). Each run prints its figures and a `RESULT` line; the server's CPU time per
# request comes from /proc/PID/stat over the measured window.
set -euo pipefail

small=()
for arg in "$@"; do
    case "$arg" in
        --small) small=(--small) ;;
        *) echo "usage: $0 [--small]" >&2; exit 2 ;;
    esac
done
duration=${DURATION:-60}
warmup=${WARMUP:-5}
concurrency=${CONCURRENCY:-32}

cd "$(dirname "$0")/.."
cargo build --release --quiet -p oco-server-min -p oco-benches --bins
bin=${CARGO_TARGET_DIR:-target}/release
server_bin=${SERVER_BIN:-$bin/oco-server-min}

work=$(mktemp -d "${TMPDIR:-/tmp}/oco-loadgen.XXXXXX")
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "${KEEP:-}${PERF:-}" ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); nproc $(nproc); CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+dirty')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/loadgen" seed --data-dir "$work/data" "${small[@]}"

# Port 0: the kernel picks a free port, and the server logs the one it got.
taskset -c 1 "$server_bin" --listen 127.0.0.1:0 --data-dir "$work/data" \
    >"$work/server.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 1 300); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | sed 's/^listening on //' || true)
    [[ -n "$url" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "the server died" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$url" ]] || { cat "$work/server.log"; echo "the server does not listen" >&2; exit 1; }
echo "== server $server_bin, pid $server_pid at $url (pinned to core 1); generator pinned to core 0"

results=()
run() {
    local name=$1
    shift
    local perf_pid=
    if [[ -n "${PERF:-}" ]]; then
        # Sample the server during the measured window only.
        (sleep "$warmup"; exec perf record -g -F 999 -p "$server_pid" -o "$work/perf-$name.data" \
            -- sleep "$duration") >"$work/perf-$name.log" 2>&1 &
        perf_pid=$!
    fi
    echo "== $name"
    local out
    out=$(taskset -c 0 "$bin/loadgen" run --url "$url/api-agent.php" --concurrency "$concurrency" \
        --duration "$duration" --warmup "$warmup" --server-pid "$server_pid" "${small[@]}" "$@")
    echo "$out"
    results+=("$name: $(grep '^RESULT' <<<"$out")")
    if [[ -n "$perf_pid" ]]; then
        wait "$perf_pid" || true
        perf report -i "$work/perf-$name.data" --no-children --percent-limit 1 --stdio \
            >"$work/perf-$name.txt" 2>/dev/null || true
        echo "   perf report: $work/perf-$name.txt"
    fi
}
run hello-new-connection --method hello
run hello-keep-alive --method hello --keep-alive
run report-new-connection --method report

echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
echo "== server stopped with status $status"
echo "== summary"
printf '%s\n' "${results[@]}"
[[ "$status" == 0 ]]
