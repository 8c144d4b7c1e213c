#!/usr/bin/env bash
# The admin rows of benches/PERFORMANCE.md, end to end over HTTP against the release server on
# the load generator's seed (20,000 computers, 1M jobs; see benches/src/sqlite.rs):
#
#   1. builds the release binaries (oco-server-min, and loadgen of oco-benches) unless
#      SERVER_BIN and LOADGEN_BIN name them;
#   2. seeds a temporary data directory (`loadgen seed`), starts the server on it, and creates
#      four more empty subgroups of `office` (untimed);
#   3. times each operation RUNS times with curl (`time_total`, request to last byte), and before
#      each resets the server's peak RSS (`echo 5 > /proc/PID/clear_refs`) so that `VmHWM`
#      after it, minus `VmRSS` before it, is the extra memory the operation took at its peak:
#      - move an empty group: `office/new` to the top and back (each move is one sample);
#      - one computer joins the 100-package rule (`office/new` gets a computer of the join pool,
#        100 jobs inserted), and leaves again (100 jobs deleted; measured apart);
#      - `GET /rules/1/statistics` (980,000 jobs) and `GET /containers/1/statistics` (5,000);
#   4. runs four heavy operations at once (the four extra groups moved at the same time, then
#      back), RUNS / 2 times, and reports the wall time of the slowest and the server's peak RSS;
#   5. evaluates the rule in full (`POST /rules/1/evaluate`: its 980,000 jobs read, nothing to
#      change) RUNS / 3 times as in 3, then four times at once as in 4, once;
#   6. stops the server with SIGTERM and prints a summary (medians, and the largest extra RSS).
#
# Run from anywhere in the workspace:
#
#   bash benches/admin.sh                         # this workspace's build
#   SERVER_BIN=/tmp/old/oco-server-min RUNS=5 bash benches/admin.sh   # another build (a baseline)
#   bash benches/admin.sh --small                 # 2,000 computers, 50,000 jobs: a quick check
#
# Environment: RUNS (samples per operation, default 9), PHASES (default `single four evaluate`:
# the steps 3, 4 and 5 to run), SERVER_BIN, LOADGEN_BIN, KEEP (keep the temporary directory). Needs curl, and root or the server's owner (for clear_refs).
set -euo pipefail

small=()
for arg in "$@"; do
    case "$arg" in
        --small) small=(--small) ;;
        *) echo "usage: $0 [--small]" >&2; exit 2 ;;
    esac
done
runs=${RUNS:-9}
phases=" ${PHASES:-single four evaluate} "

cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/release
if [[ -z "${SERVER_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
    cargo build --release --quiet -p oco-server-min -p oco-benches --bins
fi
server_bin=${SERVER_BIN:-$bin/oco-server-min}
loadgen_bin=${LOADGEN_BIN:-$bin/loadgen}

work=$(mktemp -d "${TMPDIR:-/tmp}/oco-admin.XXXXXX")
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "${KEEP:-}" ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); nproc $(nproc); CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); server $server_bin"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$loadgen_bin" seed --data-dir "$work/data" "${small[@]}"

"$server_bin" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 1 600); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$work/server.log" | sed 's/^listening on //' || true)
    [[ -n "$url" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "the server died" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$url" ]] || { cat "$work/server.log"; echo "the server does not listen" >&2; exit 1; }
token=$(sed -n 's/^admin-token *= *"\(.*\)"/\1/p' "$work/data/oco-secrets.toml")
api="$url/api/v1"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
peak() { awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status"; }
reset_peak() { echo 5 >"/proc/$server_pid/clear_refs"; }
# call METHOD PATH [BODY]: prints "status seconds".
call() {
    curl -s -o "$work/reply" -w '%{http_code} %{time_total}\n' -X "$1" \
        -H "authorization: Bearer $token" -H 'content-type: application/json' \
        ${3:+--data "$3"} "$api$2"
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
maximum() { sort -g | tail -1; }

# The seed's ids: `office` is computer group 1, `office/new` 2, the rule 1, container 1. The
# last computer not polled (lg-19999, or lg-01999 in the small seed) is in the join pool.
last=$(( ${#small[@]} ? 1999 : 19999 ))
joiner=$(curl -s -H "authorization: Bearer $token" "$api/computers?limit=1&after=$((last - 1))" \
    | sed -n 's/.*"id":\([0-9]*\).*/\1/p' | head -1)
[[ -n "$joiner" ]] || { echo "no computer $last in the seed" >&2; exit 1; }
extra_groups=()
for n in 1 2 3 4; do
    call POST /computer-groups "{\"name\": \"office/extra-$n\", \"parent\": 1}" >/dev/null
    extra_groups+=("$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' "$work/reply" | head -1)")
done
echo "== server pid $server_pid at $url; RSS after start $(( $(rss) / 1024 )) MiB; joiner $joiner; extra groups ${extra_groups[*]}"

results=()
# sample NAME METHOD PATH [BODY]: one timed call, recorded with its extra RSS.
sample() {
    local name=$1 before out status secs
    before=$(rss)
    reset_peak
    out=$(call "$2" "$3" "${4:-}")
    status=${out%% *}
    secs=${out##* }
    if [[ "$status" != 2* ]]; then
        echo "$name: HTTP $status: $(head -c 300 "$work/reply")" >&2
        exit 1
    fi
    echo "$name $secs $(( ($(peak) - before) / 1024 ))" >>"$work/samples"
}
report() {
    local name=$1 ms rss_med rss_max
    ms=$(awk -v n="$name" '$1 == n {print $2 * 1000}' "$work/samples" | median)
    rss_med=$(awk -v n="$name" '$1 == n {print $3}' "$work/samples" | median)
    rss_max=$(awk -v n="$name" '$1 == n {print $3}' "$work/samples" | maximum)
    printf '%-26s median %10.1f ms   extra RSS median %5s MiB, max %5s MiB   (%s samples)\n' \
        "$name" "$ms" "$rss_med" "$rss_max" "$(awk -v n="$name" '$1 == n' "$work/samples" | wc -l)"
    results+=("RESULT $name ms=$ms extra_rss_mib=$rss_max")
}

# at_once NAME METHOD PATH BODY...: the four calls (one per BODY, or four of the first) at once;
# records the slowest and the server's peak RSS.
at_once() {
    local name=$1 method=$2 path=$3 pids=() n=0 slowest
    shift 3
    reset_peak
    for body in "$@"; do
        n=$((n + 1))
        call "$method" "${path//\{\}/$n}" "$body" >"$work/once-$n" &
        pids+=($!)
    done
    wait "${pids[@]}"
    for i in $(seq 1 "$n"); do
        read -r status secs <"$work/once-$i"
        [[ "$status" == 2* ]] || { echo "$name: HTTP $status" >&2; exit 1; }
        echo "$secs"
    done | maximum >"$work/slowest"
    slowest=$(cat "$work/slowest")
    echo "$name $slowest $(( $(peak) / 1024 ))" >>"$work/samples"
}
report_once() {
    local name=$1 ms peak_max
    ms=$(awk -v n="$name" '$1 == n {print $2 * 1000}' "$work/samples" | median)
    peak_max=$(awk -v n="$name" '$1 == n {print $3}' "$work/samples" | maximum)
    printf '%-26s median %10.1f ms (the slowest of the four)   peak RSS max %5s MiB\n' "$name" "$ms" "$peak_max"
    results+=("RESULT $name ms=$ms peak_rss_mib=$peak_max")
}

if [[ "$phases" == *" single "* ]]; then
    for _ in $(seq 1 "$runs"); do
        sample move_empty_group PUT /computer-groups/2/parent '{"parent": null}'
        sample move_empty_group PUT /computer-groups/2/parent '{"parent": 1}'
        sample join_rule PUT /computer-groups/2/members "{\"members\": [$joiner]}"
        sample leave_rule PUT /computer-groups/2/members '{"members": []}'
        sample rule_statistics GET /rules/1/statistics
        sample container_statistics GET /containers/1/statistics
    done
    for name in move_empty_group join_rule leave_rule rule_statistics container_statistics; do
        report "$name"
    done
fi

# Four at once: the extra groups moved together, to the top then back under `office`.
if [[ "$phases" == *" four "* ]]; then
    for _ in $(seq 1 $(( (runs + 1) / 2 ))); do
        for parent in null 1; do
            reset_peak
            pids=()
            n=0
            for group in "${extra_groups[@]}"; do
                n=$((n + 1))
                call PUT "/computer-groups/$group/parent" "{\"parent\": $parent}" >"$work/once-$n" &
                pids+=($!)
            done
            wait "${pids[@]}"
            for i in 1 2 3 4; do
                read -r status secs <"$work/once-$i"
                [[ "$status" == 2* ]] || { echo "four at once: HTTP $status" >&2; exit 1; }
                echo "$secs"
            done | maximum >"$work/slowest"
            echo "four_moves_at_once $(cat "$work/slowest") $(( $(peak) / 1024 ))" >>"$work/samples"
        done
    done
    report_once four_moves_at_once
fi

# The rule evaluated in full, alone then four at once: the heaviest admin operation there is.
# Last, since the memory it frees stays with the process and would count in the peaks above.
if [[ "$phases" == *" evaluate "* ]]; then
    for _ in $(seq 1 $(( (runs + 2) / 3 ))); do
        sample evaluate_rule POST /rules/1/evaluate
    done
    report evaluate_rule
    at_once four_evaluations_at_once POST /rules/1/evaluate '' '' '' ''
    report_once four_evaluations_at_once
fi

kill -TERM "$server_pid"
wait "$server_pid" && status=0 || status=$?
server_pid=
echo "== server exited with $status; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${results[@]}"
