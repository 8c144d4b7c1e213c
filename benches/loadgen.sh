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
# With --postgres, the same three runs on PostgreSQL, against one server process and then two:
#
#   1. as above;
#   2. starts a throwaway PostgreSQL cluster in the temporary directory
#      (oco-store-postgres/scripts/throwaway-cluster.sh: a Unix socket, fsync off), pinned to
#      core 1 (started under `taskset -c 1`, so the postmaster and every process it forks run
#      there), seeds it with the same seed (`loadgen seed --database URL`; the data directory
#      only holds the secrets file the server writes), then `VACUUM ANALYZE` and `CHECKPOINT`,
#      so that the runs start on a settled database without autovacuum catching up during them;
#   3. starts one server with `--database URL`, pinned to core 1 with PostgreSQL, and runs the
#      three runs; stops it; starts two servers on the same data directory and database, both
#      pinned to core 1, and runs the three runs again, the generator's agents spread over both
#      (agent a talks to server a mod 2, so each computer polls one of them);
#   4. each run reports, besides the servers' CPU per request, the CPU per request of the whole
#      cluster (`loadgen run --postgres-pid`: the postmaster, its live children and, through the
#      postmaster's reaped-children times, those that ended during the window) and the sum, and
#      what PostgreSQL did per request over the measured window (the deltas of pg_stat_database:
#      transactions committed and rolled back, rows inserted, updated, deleted; and of
#      pg_stat_user_tables per table; PostgreSQL publishes a busy backend's counters about once a
#      second, so these are within a few per cent). With STATEMENTS=1 the cluster loads
#      pg_stat_statements and each run also lists the statements executed per request in its
#      window (exact counts; it costs PostgreSQL some CPU, so measure CPU without it);
#   5. stops the servers (each must exit 0), prints each server log's WARN and ERROR lines, and
#      stops and removes the cluster (its log is kept with KEEP).
#
# With --fleet, the fleet benchmark instead: every computer of a large fleet polls in turn, so the
# working set is the whole fleet, and most computers have nothing to receive (see the module docs
# of benches/src/fleet.rs: 5 % deliverable with 20 jobs each, 45 % with jobs held by address or
# by time, 50 % none):
#
#   1. builds the release binaries (oco-server-min; loadgen and floor of oco-benches);
#   2. reuses the seeded fleet directory of --data DIR in place (written by `loadgen seed
#      --fleet`, which describes it in DIR/fleet.txt), or seeds a small fleet into a temporary
#      directory (FLEET_COMPUTERS, default 20,000; FLEET_JOBS, default 1,000,000);
#   3. starts the floor server (benches/src/bin/floor.rs: a hello's protocol work without
#      storage) and oco-server-min on the fleet, both pinned to core 1 (only one is loaded at a
#      time);
#   4. runs the generator pinned to core 0, every computer of the fleet in turn, a new connection
#      per request: first ours alone for WARM seconds (the cold start: an empty hello cache),
#      then A B A B: the mix against the floor, ours, the floor, ours, DURATION seconds each
#      after WARMUP; then a deploy to 100 computers through the admin API and the mix against
#      ours again (a deploy must not turn the fleet's next polls into misses); then each class
#      alone (deliverable, held, none), the floor then ours, DURATION/3 seconds each;
#   5. stops both servers (each must exit 0) and prints every run's RESULT line, and for each run
#      of ours its server CPU per hello as a ratio to the floor's: a class run to the floor's run
#      of the same class, the others to the mean of the floor's two mix runs.
#
# Run from anywhere in the workspace, on a quiet machine with at least 2 cores:
#
#   bash benches/loadgen.sh                  # the full run (about 4 minutes)
#   bash benches/loadgen.sh --small          # 2,000 computers, 100 polled: a quick check
#   DURATION=30 WARMUP=3 bash benches/loadgen.sh --postgres   # one and two processes on PostgreSQL
#   STATEMENTS=1 DURATION=10 bash benches/loadgen.sh --postgres --small # statements per request
#   DURATION=10 WARMUP=2 bash benches/loadgen.sh --small
#   KEEP=1 bash benches/loadgen.sh           # keep the data directory and the server log
#   PERF=1 bash benches/loadgen.sh           # also `perf record -g` the server during each run
#   SERVER_BIN=/tmp/old/oco-server-min bash benches/loadgen.sh   # measure another build (a baseline)
#   DURATION=15 bash benches/loadgen.sh --fleet                  # a small fleet, 20k/1M
#   bash benches/loadgen.sh --fleet --data /work/seeds/fleet-200k # a seeded fleet, in place
#   SERVER_ARGS="--hello-cache-memory 0" bash benches/loadgen.sh --fleet # ours without its hello cache
#
# Environment: DURATION (seconds measured, default 60), WARMUP (default 5), CONCURRENCY
# (default 32), DB_CONNECTIONS (with --postgres: each server's --database-connections; default
# the server's), WARM (seconds of the cold-start run of --fleet; default DURATION), KEEP (keep the
# temporary directory), STATEMENTS (with --postgres: count statements with pg_stat_statements),
# PERF (profile the server (or servers) during each
# measured window with `perf record -g` and keep the directory: the reports are written next to
# the server log), SERVER_BIN (the server binary to measure; default: this workspace's release
# build), SERVER_ARGS (extra options of the server, e.g. "--hello-cache-memory 0"); with --fleet also
# INTERVAL (each computer polls at most once per INTERVAL seconds; default: as fast as the
# server answers), AGENTS (only the first AGENTS computers poll), FLEET_COMPUTERS and FLEET_JOBS
# (the size of the fleet seeded when no --data is given). Each run prints its figures and a
# `RESULT` line; the server's CPU time per request comes from /proc/PID/stat over the measured
# window.
set -euo pipefail

small=()
fleet=
data=
postgres=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --small) small=(--small) ;;
        --postgres) postgres=1 ;;
        --fleet) fleet=1 ;;
        --data) [[ $# -ge 2 ]] || { echo "--data needs a directory" >&2; exit 2; }; data=$2; shift ;;
        *) echo "usage: $0 [--small] [--postgres] | --fleet [--data DIR]" >&2; exit 2 ;;
    esac
    shift
done
if [[ -n "$postgres" && -n "$fleet" ]]; then
    echo "--postgres and --fleet exclude each other" >&2
    exit 2
fi
if [[ -n "$data" && -z "$fleet" ]]; then
    echo "--data goes with --fleet" >&2
    exit 2
fi
if [[ -n "$fleet" && ${#small[@]} -gt 0 ]]; then
    echo "--small and --fleet exclude each other" >&2
    exit 2
fi
read -r -a server_args <<<"${SERVER_ARGS:-}"
duration=${DURATION:-60}
warmup=${WARMUP:-5}
concurrency=${CONCURRENCY:-32}

cd "$(dirname "$0")/.."
cargo build --release --quiet -p oco-server-min -p oco-benches --bins
bin=${CARGO_TARGET_DIR:-target}/release
server_bin=${SERVER_BIN:-$bin/oco-server-min}

work=$(mktemp -d "${TMPDIR:-/tmp}/oco-loadgen.XXXXXX")
server_pid=
second_pid=
floor_pid=
pg_dir=
cluster=$PWD/oco-store-postgres/scripts/throwaway-cluster.sh
stop() {
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$server_pid"
    stop "$second_pid"
    stop "$floor_pid"
    if [[ -n "$pg_dir" ]]; then
        cp "$pg_dir/postgres.log" "$work/postgres.log" 2>/dev/null || true
        bash "$cluster" stop "$pg_dir"
    fi
    if [[ -n "${KEEP:-}${PERF:-}" ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Starts `$@` on core 1 with its output in $work/$name.log, and waits until it listens: sets
# started_pid and started_url.
started_pid=
started_url=
start() {
    local name=$1
    shift
    # Port 0: the kernel picks a free port, and the server logs the one it got.
    taskset -c 1 "$@" --listen 127.0.0.1:0 >"$work/$name.log" 2>&1 &
    started_pid=$!
    started_url=
    for _ in $(seq 1 300); do
        started_url=$(grep -o 'listening on http://[0-9.:]*' "$work/$name.log" | sed 's/^listening on //' || true)
        [[ -n "$started_url" ]] && break
        kill -0 "$started_pid" 2>/dev/null || { cat "$work/$name.log"; echo "$name died" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$started_url" ]] || { cat "$work/$name.log"; echo "$name does not listen" >&2; exit 1; }
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); nproc $(nproc); CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo '+dirty')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

results=()
# run NAME PIDS URLS ARGS...: one generator run against the servers PIDS at URLS (each a
# comma-separated list: several server processes on one PostgreSQL database).
run() {
    local name=$1 pid=$2 target=$3
    shift 3
    local urls=() url_list
    IFS=, read -r -a urls <<<"$target"
    url_list=$(printf '%s/api-agent.php,' "${urls[@]}")
    url_list=${url_list%,}
    local perf_pid= stats_pid=
    if [[ -n "$postgres" ]]; then
        # The database's counters at both ends of the measured window.
        (sleep "$warmup"; pg_counters >"$work/pg-$name.before"
         sleep "$run_duration"; pg_counters >"$work/pg-$name.after") &
        stats_pid=$!
    fi
    if [[ -n "${PERF:-}" ]]; then
        # Sample the server during the measured window only.
        (sleep "$warmup"; exec perf record -g -F 999 -p "$pid" -o "$work/perf-$name.data" \
            -- sleep "$run_duration") >"$work/perf-$name.log" 2>&1 &
        perf_pid=$!
    fi
    echo "== $name"
    local out
    out=$(taskset -c 0 "$bin/loadgen" run --url "$url_list" --concurrency "$concurrency" \
        --duration "$run_duration" --warmup "$warmup" --server-pid "$pid" "${pg_args[@]}" "$@")
    echo "$out"
    results+=("$name: $(grep '^RESULT' <<<"$out")")
    if [[ -n "$stats_pid" ]]; then
        wait "$stats_pid"
        pg_per_request "$name" "$(grep '^RESULT' <<<"$out")"
    fi
    if [[ -n "$perf_pid" ]]; then
        wait "$perf_pid" || true
        perf report -i "$work/perf-$name.data" --no-children --percent-limit 1 --stdio \
            >"$work/perf-$name.txt" 2>/dev/null || true
        echo "   perf report: $work/perf-$name.txt"
    fi
}
run_duration=$duration
pg_args=()

# The PostgreSQL counters of the database (pg_stat_database) and of each table
# (pg_stat_user_tables), one `name value` line each; with STATEMENTS, each statement's calls and
# rows so far (pg_stat_statements; never reset, since a statement prepared before a reset is
# not counted again until it is prepared anew).
pg_counters() {
    psql "$db_url" -XAtq -F ' ' -c "
        SELECT 'transactions_committed', xact_commit FROM pg_stat_database WHERE datname = current_database()
        UNION ALL SELECT 'transactions_rolled_back', xact_rollback FROM pg_stat_database WHERE datname = current_database()
        UNION ALL SELECT 'rows_inserted', tup_inserted FROM pg_stat_database WHERE datname = current_database()
        UNION ALL SELECT 'rows_updated', tup_updated FROM pg_stat_database WHERE datname = current_database()
        UNION ALL SELECT 'rows_deleted', tup_deleted FROM pg_stat_database WHERE datname = current_database()
        UNION ALL SELECT relname || '.inserted', n_tup_ins FROM pg_stat_user_tables
        UNION ALL SELECT relname || '.updated', n_tup_upd FROM pg_stat_user_tables
        UNION ALL SELECT relname || '.updated_hot', n_tup_hot_upd FROM pg_stat_user_tables
        UNION ALL SELECT relname || '.deleted', n_tup_del FROM pg_stat_user_tables"
    if [[ -n "${STATEMENTS:-}" ]]; then
        psql "$db_url" -XAtq -F $'\t' -c "SELECT 'statement', queryid, calls, rows,
            regexp_replace(query, '\s+', ' ', 'g') FROM pg_stat_statements"
    fi
}

# pg_per_request NAME RESULT_LINE: the counters' deltas over the window, per request.
pg_per_request() {
    local name=$1 result=$2
    python3 - "$work/pg-$name.before" "$work/pg-$name.after" "$result" <<'PY'
import sys
def counters(path):
    values = {}
    for line in open(path):
        if line.startswith("statement\t"):
            continue
        key, value = line.split()
        values[key] = int(value)
    return values
before, after = counters(sys.argv[1]), counters(sys.argv[2])
fields = dict(f.split("=", 1) for f in sys.argv[3].split()[1:] if "=" in f)
requests = int(fields["ok"]) + int(fields["failed"])
per = lambda key: (after.get(key, 0) - before.get(key, 0)) / max(requests, 1)
print("  PostgreSQL per request over the window (%d requests): %s" % (requests, ", ".join(
    "%s %.3f" % (key, per(key)) for key in ["transactions_committed", "transactions_rolled_back",
                                            "rows_inserted", "rows_updated", "rows_deleted"])))
tables = sorted(k for k in after if "." in k and abs(per(k)) >= 0.0005)
if tables:
    print("  per table: " + ", ".join("%s %.3f" % (k, per(k)) for k in tables))
def statements(path):
    found = {}
    for line in open(path):
        if line.startswith("statement\t"):
            _, queryid, calls, rows, query = line.rstrip("\n").split("\t", 4)
            found[queryid] = (int(calls), int(rows), query)
    return found
first, last = statements(sys.argv[1]), statements(sys.argv[2])
deltas = sorted(((calls - first.get(q, (0, 0, ""))[0], rows - first.get(q, (0, 0, ""))[1], query)
                 for q, (calls, rows, query) in last.items()), reverse=True)
if last:
    print("  statements per request (pg_stat_statements, the window only):")
    for calls, rows, query in deltas:
        if calls / max(requests, 1) >= 0.001:
            print("    %7.3f calls, %7.3f rows: %s" % (calls / max(requests, 1), rows / max(requests, 1), query[:160]))
PY
}

# warnings NAME: the WARN and ERROR lines of $work/NAME.log.
warnings() {
    local count
    count=$(grep -cE ' (WARN|ERROR) ' "$work/$1.log" || true)
    echo "== $1: $count WARN/ERROR lines in its log"
    grep -E ' (WARN|ERROR) ' "$work/$1.log" | head -n 5 || true
}

if [[ -n "$postgres" ]]; then
    # The cluster's socket directory is inside $work: let its owner (`postgres` when run as
    # root) reach it.
    chmod 0711 "$work"
    pg_dir=$work/postgres
    # Pinned to core 1 with the servers: every process the postmaster forks inherits it.
    db_url=$(taskset -c 1 bash "$cluster" start "$pg_dir")
    as_owner() { if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    if [[ -n "${STATEMENTS:-}" ]]; then
        psql "$db_url" -XAtqc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
        # `restart` keeps the options of the first start (postmaster.opts).
        as_owner taskset -c 1 pg_ctl restart --pgdata="$pg_dir/data" --log="$pg_dir/postgres.log" \
            --wait >/dev/null
        psql "$db_url" -XAtqc "CREATE EXTENSION pg_stat_statements"
    fi
    postmaster=$(head -n 1 "$pg_dir/data/postmaster.pid")
    echo "== PostgreSQL $(postgres --version | awk '{print $NF}'), postmaster $postmaster (pinned to core 1: $(taskset -c -p "$postmaster" | sed 's/.*: //')), $pg_dir"
    "$bin/loadgen" seed --data-dir "$work/data" --database "$db_url" "${small[@]}"
    started=$(date +%s.%N)
    psql "$db_url" -XAtqc "VACUUM ANALYZE" -c "CHECKPOINT"
    echo "== VACUUM ANALYZE and CHECKPOINT: $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; database size $(psql "$db_url" -XAtqc "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    pg_args=(--postgres-pid "$postmaster")
    # The server's default pool (4 connections) unless DB_CONNECTIONS says otherwise.
    if [[ -n "${DB_CONNECTIONS:-}" ]]; then
        server_args=(--database-connections "$DB_CONNECTIONS" "${server_args[@]}")
    fi

    start server "$server_bin" --data-dir "$work/data" --database "$db_url" "${server_args[@]}"
    server_pid=$started_pid
    url=$started_url
    echo "== one server $server_bin, pid $server_pid at $url (pinned to core 1 with PostgreSQL); generator pinned to core 0"
    run one-hello-new-connection "$server_pid" "$url" "${small[@]}" --method hello
    run one-hello-keep-alive "$server_pid" "$url" "${small[@]}" --method hello --keep-alive
    run one-report-new-connection "$server_pid" "$url" "${small[@]}" --method report
    status=0
    kill -TERM "$server_pid"
    wait "$server_pid" || status=$?
    server_pid=
    echo "== server stopped with status $status"
    warnings server

    start server-a "$server_bin" --data-dir "$work/data" --database "$db_url" "${server_args[@]}"
    server_pid=$started_pid
    url_a=$started_url
    start server-b "$server_bin" --data-dir "$work/data" --database "$db_url" "${server_args[@]}"
    second_pid=$started_pid
    url_b=$started_url
    echo "== two servers, pids $server_pid and $second_pid at $url_a and $url_b (both pinned to core 1 with PostgreSQL); generator pinned to core 0"
    run two-hello-new-connection "$server_pid,$second_pid" "$url_a,$url_b" "${small[@]}" --method hello
    run two-hello-keep-alive "$server_pid,$second_pid" "$url_a,$url_b" "${small[@]}" --method hello --keep-alive
    run two-report-new-connection "$server_pid,$second_pid" "$url_a,$url_b" "${small[@]}" --method report

    echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    for pid in "$server_pid" "$second_pid"; do
        kill -TERM "$pid"
        wait "$pid" || status=$?
    done
    server_pid=
    second_pid=
    echo "== servers stopped with status $status"
    warnings server-a
    warnings server-b
    echo "== summary"
    printf '%s\n' "${results[@]}"
    [[ "$status" == 0 ]]
    exit
fi

if [[ -z "$fleet" ]]; then
    "$bin/loadgen" seed --data-dir "$work/data" "${small[@]}"
    start server "$server_bin" --data-dir "$work/data" "${server_args[@]}"
    server_pid=$started_pid
    url=$started_url
    echo "== server $server_bin, pid $server_pid at $url (pinned to core 1); generator pinned to core 0"
    run hello-new-connection "$server_pid" "$url" "${small[@]}" --method hello
    run hello-keep-alive "$server_pid" "$url" "${small[@]}" --method hello --keep-alive
    run report-new-connection "$server_pid" "$url" "${small[@]}" --method report

    echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    kill -TERM "$server_pid"
    status=0
    wait "$server_pid" || status=$?
    server_pid=
    echo "== server stopped with status $status"
    warnings server
    echo "== summary"
    printf '%s\n' "${results[@]}"
    [[ "$status" == 0 ]]
    exit
fi

# The fleet benchmark.
if [[ -n "$data" ]]; then
    [[ -f "$data/fleet.txt" && -f "$data/oco.db" ]] \
        || { echo "$data: no fleet seed (oco.db and fleet.txt of \`loadgen seed --fleet\`)" >&2; exit 1; }
    data_dir=$data
else
    data_dir=$work/data
    "$bin/loadgen" seed --data-dir "$data_dir" --fleet --computers "${FLEET_COMPUTERS:-20000}" \
        --jobs "${FLEET_JOBS:-1000000}"
fi
computers=$(sed -n 's/^computers=//p' "$data_dir/fleet.txt")
echo "== fleet $data_dir: $(tr '\n' ' ' <"$data_dir/fleet.txt")"
fleet_args=(--fleet --computers "$computers")
[[ -n "${AGENTS:-}" ]] && fleet_args+=(--agents "$AGENTS")
[[ -n "${INTERVAL:-}" ]] && fleet_args+=(--interval "$INTERVAL")

start floor "$bin/floor"
floor_pid=$started_pid
floor_url=$started_url
start server "$server_bin" --data-dir "$data_dir" "${server_args[@]}"
server_pid=$started_pid
url=$started_url
echo "== floor $bin/floor, pid $floor_pid at $floor_url; server $server_bin ${server_args[*]}, pid $server_pid at $url (both pinned to core 1); generator pinned to core 0"

# The cold start: the fleet's first polls of this server process (its hello cache is empty). It
# runs WARM seconds (default DURATION), long enough for the fleet to poll once at the cold rate,
# so that the runs after it measure the steady state.
run_duration=${WARM:-$duration}
run ours-warm "$server_pid" "$url" "${fleet_args[@]}"
run_duration=$duration
run floor-mix-1 "$floor_pid" "$floor_url" "${fleet_args[@]}"
run ours-mix-1 "$server_pid" "$url" "${fleet_args[@]}"
run floor-mix-2 "$floor_pid" "$floor_url" "${fleet_args[@]}"
run ours-mix-2 "$server_pid" "$url" "${fleet_args[@]}"

# A deploy to 100 computers of the fleet, through the admin API: one package to the first 100
# computers without jobs, in a container that holds its jobs (IP ranges without loopback), so
# that their hellos still hand out nothing. Then the mix again: a deploy forgets the hello
# cache's outlooks of those 100 computers only, so the fleet's polls/s and CPU per hello after it
# are those of the steady state.
token=$(sed -n 's/^admin-token *= *"\(.*\)"/\1/p' "$data_dir/oco-secrets.toml")
api="$url/api/v1"
deploy_body=$(curl -sf -H "Authorization: Bearer $token" "$api/computers?limit=1000" \
    | python3 -c '
import json, sys
page = json.load(sys.stdin)
# Fleet computer n has no jobs when n % 40 >= 30 (benches/src/fleet.rs).
ids = [c["id"] for c in page["items"] if int(c["hostname"][3:]) % 40 >= 30][:100]
print(json.dumps({"container": {"name": "fleet deploy", "policy": {"ip_ranges": "10.0.0.0/8"}},
                  "computers": ids, "packages": [int(sys.argv[1])]}))
' "$(curl -sf -H "Authorization: Bearer $token" "$api/packages?limit=1" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])')")
deployed=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "$api/containers/deploy" -d "$deploy_body" \
    | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["container"]["id"], len(d["jobs"]))')
echo "== deployed container ${deployed% *} with ${deployed#* } jobs to 100 computers"
run ours-after-deploy "$server_pid" "$url" "${fleet_args[@]}"
curl -sf -X DELETE -H "Authorization: Bearer $token" "$api/containers/${deployed% *}" >/dev/null

run_duration=$(awk -v d="$duration" 'BEGIN { printf "%g", d / 3 }')
# Each class against the floor on the same class: a class's replies (20 jobs, or none) cost the
# floor what they cost it, so the ratio is ours over the floor's for the same computers.
for class in deliverable held none; do
    run "floor-$class" "$floor_pid" "$floor_url" "${fleet_args[@]}" --class "$class"
    run "ours-$class" "$server_pid" "$url" "${fleet_args[@]}" --class "$class"
done

echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for pid in "$floor_pid" "$server_pid"; do
    kill -TERM "$pid"
    wait "$pid" || status=$?
done
floor_pid=
server_pid=
echo "== servers stopped with status $status"
echo "== summary"
printf '%s\n' "${results[@]}"
echo "== server CPU per hello, as a ratio to the floor's: a class run to the floor's run of the same class, the other runs to the mean of the floor's two mix runs"
printf '%s\n' "${results[@]}" | awk '
    { name = $1; sub(/:$/, "", name); cpu = ""
      for (i = 2; i <= NF; i++) if ($i ~ /^server_cpu_ms=/) { cpu = substr($i, 15) }
      names[++n] = name; cpus[n] = cpu
      if (name ~ /^floor-mix-/) { mix_sum += cpu; mixes++ }
      else if (name ~ /^floor-/) { class = name; sub(/^floor-/, "", class); floors[class] = cpu } }
    END {
      if (mixes == 0) exit
      mix = mix_sum / mixes
      printf "floor, mix: %.4f ms per hello\n", mix
      for (i = 1; i <= n; i++) if (names[i] ~ /^ours-/) {
        class = names[i]; sub(/^ours-/, "", class)
        floor = (class in floors) ? floors[class] : mix
        printf "%s: %.4f ms per hello, %.2f x the floor (%.4f ms)\n", names[i], cpus[i], cpus[i] / floor, floor
      }
    }'
[[ "$status" == 0 ]]
