//! The server load generator of `benches/PERFORMANCE.md` (the server rows): simulated OCO agents
//! that poll `oco-server-min` with signed `oco.agent.hello` calls, or send
//! `oco.agent.update_job_state` progress reports, and measure what the server sustains.
//!
//! - `loadgen seed --data-dir DIR [--small]` writes `DIR/oco.db` with the fixed seed of the
//!   SQLite rows ([`oco_benches::sqlite::seed`]: 20,000 computers `lg-00001`…, the 1,000 polled
//!   ones with 20 Waiting jobs each, 1M jobs; `--small`: 2,000 computers, 100 polled, 50,000
//!   jobs). Every computer gets its own agent key and server key, derived from its hostname and a
//!   fixed salt ([`derive_key`]), so no key exchange (TOFU) happens during a run and the generator
//!   knows every key. The polled computers' containers are opened to loopback agents at any time
//!   (see [`open_polled_containers`]), so a hello hands out the 20 jobs. With `--database
//!   postgres://…` the same seed, through the same calls, goes into that PostgreSQL database
//!   instead (the data directory is only created: the server keeps its secrets file and payloads
//!   there); the seed and the keys are timed apart.
//! - `loadgen run --url http://127.0.0.1:PORT/api-agent.php --method hello|report ...` runs
//!   `--concurrency` agents for `--warmup` + `--duration` seconds. The polled computers are shared
//!   out round-robin (agent `a` of `n` takes computers `a`, `a + n`, …, so no computer ever has
//!   two requests in flight) and each agent polls its computers in turn. Every request is what
//!   the OCO agent 1.2.0 sends: Python `json.dumps` formatting, its headers, the
//!   `x-oco-agent-signature` HMAC, a timestamp that strictly increases per computer (the run's
//!   start in units of 10⁻⁴ s plus a per-computer counter), and a new connection per request
//!   unless `--keep-alive`. Against a server on IPv4 loopback each computer's connections come
//!   from its own address, the same in every run ([`computer_address`]), as real agents come
//!   from hosts of their own (a kept-alive connection from its agent's, [`source_address`]). `report` first sends one hello per computer to learn its job ids, then
//!   reports Executing (state 2) with output on them in turn, which the server accepts every time.
//!   Every response must be a 200 with a valid `x-oco-server-signature` (the computer's server
//!   key) and a `result.timestamp` above the previous one of that computer; anything else is
//!   counted as an error, by kind. Given `--server-pid`, the server's CPU time (utime + stime of
//!   `/proc/PID/stat`, read at the start and end of the measured window) per request and its
//!   memory (`VmRSS`, `VmHWM`) are reported.
//! - Several server processes sharing a PostgreSQL database: `--url` and `--server-pid` take a
//!   list (repeated, or separated by commas); agent `a` talks to URL `a` modulo their number, so
//!   each computer polls one process, and the CPU time and memory are summed over the processes.
//!   `--postgres-pid POSTMASTER` adds the CPU time of the whole cluster per request (see
//!   [`cluster_ticks`]) and its sum with the servers'.
//!
//! The fleet (see [`oco_benches::fleet`] for the seed's classes):
//!
//! - `loadgen seed --data-dir DIR --fleet --computers N --jobs M` writes the fleet seed (computers
//!   `fl-0000001`…; 5 % deliverable with 20 jobs a hello hands out, 45 % whose jobs, the rest of
//!   the `M` shared evenly, are held by their containers' IP list or time frame, 50 % without
//!   jobs; every computer keyed) a chunk of computers at a time, prints the mix, the seeding time,
//!   the size on disk (with `-wal`) and the peak RSS, and describes the seed in `DIR/fleet.txt`
//!   (`computers=`, `jobs=`, `seeded_at=`, `hold_window=`).
//! - `loadgen run --fleet --computers N` polls every computer of the fleet in turn (hello only),
//!   shared out to the `--concurrency` connections as above, so that the working set is the whole
//!   fleet. `--class deliverable|held|none|mix` picks the classes that poll, `--agents N` only the
//!   first N of them in number order (classes repeat every 40 numbers, so a prefix keeps the mix).
//!   Besides the checks above, a hello must hand out exactly the jobs of the computer's class (20
//!   or none; counted as a `jobs` failure otherwise), which tells whether the server plans right.
//!   The report adds the number of distinct computers that succeeded in the window and the
//!   generator's own memory: a computer costs it about 100 bytes (its name, uid and keys are
//!   derived from its number; the keys are kept as bytes and prepared per request).
//! - `--interval SECONDS` (any run) paces each connection so that each of its computers polls at
//!   most once per interval: its requests start at least `SECONDS / share` apart, so the whole
//!   generator offers at most computers / SECONDS polls per second (fewer if the server is
//!   slower; a late request is never made up for by a burst).
//!
//! Run it through `benches/loadgen.sh` (`--fleet` for the fleet, against the floor server of
//! `src/bin/floor.rs` and ours), which pins the server and the generator to different cores. By
//! hand: `cargo run --release -p oco-benches --bin loadgen -- --help`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use oco_benches::agent::{
    computer_address, derive_key, envelope, epoch_ticks, exchange, hello_data, keyed, memory_kib,
    percentile, report_data, request, result_timestamp, seeded_credentials, sign, source_address,
    HmacSha256, Result, Target,
};
use oco_benches::fleet::{fleet_hostname, seed_fleet, Class, FleetCase};
use oco_benches::sqlite::{seed, SeedCase, SEED_1M, SEED_TEST};
use oco_benches::SHORT_IP_LIST;
use oco_core::chrono::{DateTime, Utc};
use oco_core::constraint::{IpRanges, TimeFrames};
use oco_core::model::Schedule;
use oco_core::store::{Change, ChangeSet, Page, Store};
use oco_store_postgres::PgStore;
use oco_store_sqlite::{Options, SqliteStore};
use tokio::net::TcpStream;

/// How long one request may take before it counts as an I/O error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(about = "Load generator for oco-server-min: simulated, signing OCO agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Writes DIR/oco.db (or the PostgreSQL database of --database) with the fixed seed and
    /// every computer's keys.
    Seed {
        /// The server's data directory (created if missing; must not hold an oco.db yet). With
        /// --database it holds no database, only what the server writes there (its secrets file
        /// and payloads).
        #[arg(long)]
        data_dir: PathBuf,
        /// A PostgreSQL URL (`postgres://user@host/dbname`): the fixed seed goes into that
        /// database, which must hold no computers yet, instead of DIR/oco.db.
        #[arg(long, value_name = "URL", conflicts_with = "fleet")]
        database: Option<String>,
        /// The scaled-down seed: 2,000 computers, 100 polled, 50,000 jobs.
        #[arg(long, conflicts_with = "fleet")]
        small: bool,
        /// The fleet seed instead (`fl-0000001`…; see the module docs of `oco_benches::fleet`).
        #[arg(long)]
        fleet: bool,
        /// With --fleet: the fleet's computers.
        #[arg(long, requires = "fleet", default_value_t = 20_000)]
        computers: usize,
        /// With --fleet: the fleet's jobs (20 per deliverable computer, the rest held).
        #[arg(long, requires = "fleet", default_value_t = 1_000_000)]
        jobs: usize,
    },
    /// Runs simulated agents against a server and reports what it sustained.
    Run(RunArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct RunArgs {
    /// The agent API's URL (http only). Several (repeated, or separated by commas): one per
    /// server process sharing a database; agent `a` of the run talks to URL `a` modulo their
    /// number, so each computer polls one of them.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080/api-agent.php"
    )]
    url: Vec<String>,
    /// What the agents send.
    #[arg(long, value_enum, default_value_t = Method::Hello)]
    method: Method,
    /// Simulated agents with a request in flight each.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// One connection per agent, kept alive (the OCO agent opens a new one per request).
    #[arg(long)]
    keep_alive: bool,
    /// The server's process id: report its CPU time per request and its memory. Several
    /// (repeated, or separated by commas): the sum over those processes.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// The PostgreSQL postmaster's process id: report the CPU time per request of the whole
    /// cluster (the postmaster, every child of it, and the children that ended during the
    /// window, which the postmaster's reaped-children times hold), and its sum with the
    /// servers'.
    #[arg(long)]
    postgres_pid: Option<u32>,
    /// The server was seeded with `seed --small` (100 polled computers instead of 1,000).
    #[arg(long, conflicts_with = "fleet")]
    small: bool,
    /// The server was seeded with `seed --fleet`: its computers poll (hello only).
    #[arg(long)]
    fleet: bool,
    /// With --fleet: the fleet's computers, as seeded.
    #[arg(long, requires = "fleet", default_value_t = 20_000)]
    computers: usize,
    /// With --fleet: only the first N computers of the chosen classes, in number order (which
    /// keeps the class mix).
    #[arg(long, requires = "fleet")]
    agents: Option<usize>,
    /// With --fleet: the classes whose computers poll.
    #[arg(long, value_enum, requires = "fleet", default_value_t = ClassChoice::Mix)]
    class: ClassChoice,
    /// Each computer polls at most once per this many seconds (the generator paces itself to
    /// computers / SECONDS polls per second); without it, as fast as the server answers.
    #[arg(long, value_name = "SECONDS")]
    interval: Option<f64>,
}

/// Which fleet computers poll.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ClassChoice {
    /// Those with 20 jobs to hand out.
    Deliverable,
    /// Those with jobs held by address or by time.
    Held,
    /// Those without jobs.
    None,
    /// All of them.
    Mix,
}

impl ClassChoice {
    fn takes(self, class: Class) -> bool {
        match self {
            ClassChoice::Deliverable => class == Class::Deliverable,
            ClassChoice::Held => class.is_held(),
            ClassChoice::None => class == Class::Idle,
            ClassChoice::Mix => true,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ClassChoice::Deliverable => "deliverable",
            ClassChoice::Held => "held",
            ClassChoice::None => "none",
            ClassChoice::Mix => "mix",
        }
    }
}

/// The fleet computers that poll: the first `agents` (all if `None`) of `computers` whose class
/// `choice` takes, in number order.
fn fleet_numbers(computers: usize, choice: ClassChoice, agents: Option<usize>) -> Vec<usize> {
    (1..=computers)
        .filter(|&n| choice.takes(Class::of(n)))
        .take(agents.unwrap_or(usize::MAX))
        .collect()
}

/// The least time between the starts of two requests of one agent that polls `share` computers
/// in turn, so that each of them polls at most once per `interval` (rounded up to the
/// nanosecond).
fn pacing_gap(interval: Duration, share: usize) -> Duration {
    let share = u128::try_from(share.max(1)).unwrap_or(u128::MAX);
    let nanos = interval.as_nanos().div_ceil(share);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// Signed `oco.agent.hello` polls.
    Hello,
    /// `oco.agent.update_job_state` progress reports (state 2 with output).
    Report,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Seed {
            data_dir,
            fleet: true,
            computers,
            jobs,
            ..
        } => seed_fleet_dir(&data_dir, FleetCase { computers, jobs }),
        Command::Seed {
            data_dir,
            small,
            database,
            ..
        } => seed_data_dir(&data_dir, small, database.as_deref()),
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(args))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The clock: a load generator measures time, so it reads the clock (here only).

#[allow(clippy::disallowed_methods)]
fn instant_now() -> Instant {
    Instant::now()
}

// ---------------------------------------------------------------------------------------------
// The seed.

fn seed_data_dir(dir: &Path, small: bool, database: Option<&str>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let case = if small { SEED_TEST } else { SEED_1M };
    let started = instant_now();
    let (store, target): (Box<dyn Store>, String) = match database {
        None => {
            let path = dir.join("oco.db");
            if path.exists() {
                return Err(
                    format!("{} exists already: seed an empty directory", path.display()).into(),
                );
            }
            // One connection, the writer: closing it checkpoints the write-ahead log into the
            // file, so the server starts on a settled database.
            let options = Options {
                readers: 0,
                ..Options::default()
            };
            let store = SqliteStore::open_with(&path, &options)?;
            (Box::new(store), path.display().to_string())
        }
        Some(url) => {
            // One connection: the seed writes one change set after the other.
            let options = oco_store_postgres::Options {
                max_connections: 1,
                ..oco_store_postgres::Options::default()
            };
            let store = PgStore::connect_with(url, &options)?;
            if !store.list_computers(Page::first(1))?.is_empty() {
                return Err(
                    "the PostgreSQL database holds computers already: seed an empty \
                            database"
                        .into(),
                );
            }
            (Box::new(store), "the PostgreSQL database".to_owned())
        }
    };
    let (opened, seed_seconds, key_seconds) = seed_store(store.as_ref(), case)?;
    // SQLite: closing checkpoints.
    drop(store);
    println!(
        "seeded {target}: {} computers ({} polled), {} jobs, {} containers opened to loopback \
         agents, every computer keyed; {:.1} s (the seed {:.1} s, the keys {:.1} s)",
        case.computers,
        case.polled(),
        case.jobs(),
        opened,
        started.elapsed().as_secs_f64(),
        seed_seconds,
        key_seconds,
    );
    Ok(())
}

/// Writes the fixed seed of `case` into `store`, opens the polled computers' containers and
/// keys every computer; returns how many containers were opened, and the seconds of the seed
/// (with the opening) and of the keys.
fn seed_store(store: &dyn Store, case: SeedCase) -> Result<(usize, f64, f64)> {
    let started = instant_now();
    let seeded = seed(store, case)?;
    let opened = open_polled_containers(store)?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let started = instant_now();
    for &id in &seeded.computers {
        let computer = store.computer(id)?;
        store.set_credentials(id, &seeded_credentials(computer.hostname.as_str()))?;
    }
    Ok((opened, seed_seconds, started.elapsed().as_secs_f64()))
}

/// The file next to `oco.db` that describes a fleet seed, for `loadgen.sh --fleet --data DIR`.
const FLEET_FILE: &str = "fleet.txt";

#[allow(clippy::disallowed_methods)]
fn utc_now() -> DateTime<Utc> {
    DateTime::from(std::time::SystemTime::now())
}

/// Writes the fleet of `case` into `DIR/oco.db` and describes it in `DIR/fleet.txt`.
#[allow(clippy::cast_precision_loss)]
fn seed_fleet_dir(dir: &Path, case: FleetCase) -> Result<()> {
    case.held_jobs()?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("oco.db");
    if path.exists() {
        return Err(format!("{} exists already: seed an empty directory", path.display()).into());
    }
    let now = utc_now();
    let (each, extra) = case.held_jobs()?;
    println!(
        "fleet of {} computers, {} jobs, seeded at {now}: {} deliverable (20 jobs each), {} held \
         by address and {} held by time ({each} jobs each, the first {extra} one more), {} none",
        case.computers,
        case.jobs,
        case.count(Class::Deliverable),
        case.count(Class::HeldByAddress),
        case.count(Class::HeldByTime),
        case.count(Class::Idle),
    );
    let started = instant_now();
    let options = Options {
        readers: 0,
        ..Options::default()
    };
    let store = SqliteStore::open_with(&path, &options)?;
    let step = (case.computers / 10).max(1);
    let mut next_report = step;
    let seeded = seed_fleet(&store, case, now, |computers, jobs| {
        if computers >= next_report || computers == case.computers {
            eprintln!(
                "  {computers} computers, {jobs} jobs ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            next_report = computers + step;
        }
    })?;
    let written = started.elapsed().as_secs_f64();
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = dir.join("oco.db-wal");
    let before_close = size(&path) + size(&wal);
    drop(store);
    let seconds = started.elapsed().as_secs_f64();
    let after_close = size(&path) + size(&wal);
    let (_, hwm) = memory_kib("self")?;
    std::fs::write(
        dir.join(FLEET_FILE),
        format!(
            "computers={}\njobs={}\nseeded_at={}\nhold_window={}\n",
            case.computers,
            case.jobs,
            now.to_rfc3339(),
            seeded.hold_window
        ),
    )?;
    println!(
        "seeded {}: {} computers, {} jobs, {} containers, {} packages, every computer keyed; \
         held by time: {} (UTC); {written:.1} s written, {seconds:.1} s with the close; \
         {:.1} MiB on disk before the close (with -wal), {:.1} MiB after; peak RSS {:.0} MiB",
        path.display(),
        case.computers,
        seeded.jobs,
        seeded.containers,
        seeded.packages,
        seeded.hold_window,
        before_close as f64 / 1_048_576.0,
        after_close as f64 / 1_048_576.0,
        hwm as f64 / 1024.0,
    );
    Ok(())
}

/// Opens the polled computers' containers to the generator: their policies allow loopback
/// agents (the seed's short IP list plus `127.0.0.0/8, ::1`) at any time (no time frames), and
/// their schedules never end. The seed's jobs are held otherwise: its time frames are Berlin
/// office hours and its IP list names no loopback address, and a hello that hands out no jobs
/// would be neither the load of `PERFORMANCE.md` nor a source of job ids for the reports.
/// Returns how many containers were changed.
fn open_polled_containers(store: &dyn Store) -> Result<usize> {
    let ranges: IpRanges = format!("{SHORT_IP_LIST}, 127.0.0.0/8, ::1").parse()?;
    let mut changes = ChangeSet::default();
    for mut container in store.list_containers(Page::first(1_000))? {
        container.policy.ip_ranges = ranges.clone();
        container.policy.time_frames = TimeFrames::default();
        container.schedule = Schedule::new(container.schedule.start(), None)?;
        changes.push(Change::UpdateContainer { container });
    }
    let count = changes.changes.len();
    store.apply(&changes)?;
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Simulated agents.

/// The length of a derived key ([`derive_key`]).
const KEY_LEN: usize = 30;

/// One computer as its agent knows it. Small, so that a generator of a million computers stays
/// near 100 MiB: its name and uid follow from its number, and its keys are kept as bytes and
/// prepared for each request (which costs about a microsecond).
struct Computer {
    /// Its number: `lg-00020` and `fl-0000020` are 20.
    number: u32,
    /// A fleet computer (`fl-…`, see [`fleet_hostname`]) rather than one of the fixed seed.
    fleet: bool,
    /// Whether a request of it succeeded in the measured window.
    counted: bool,
    /// Requests sent: the timestamp is the run's start plus this, in 10⁻⁴ s.
    sent: u32,
    /// The last `result.timestamp` accepted.
    last_server_timestamp: f64,
    /// Its agent key, then its server key.
    keys: [u8; 2 * KEY_LEN],
    /// Wire ids of its jobs (JSON), from a hello.
    jobs: Vec<String>,
    next_job: u32,
}

impl Computer {
    /// Computer `n` of the fixed seed (`lg-…`), or of the fleet seed if `fleet`.
    fn new(number: u32, fleet: bool) -> Computer {
        let n = number as usize;
        let hostname = if fleet {
            fleet_hostname(n)
        } else {
            oco_benches::agent::hostname(n)
        };
        let mut keys = [0; 2 * KEY_LEN];
        keys[..KEY_LEN].copy_from_slice(derive_key("agent", &hostname).as_bytes());
        keys[KEY_LEN..].copy_from_slice(derive_key("server", &hostname).as_bytes());
        Computer {
            number,
            fleet,
            counted: false,
            sent: 0,
            last_server_timestamp: 0.0,
            keys,
            jobs: Vec::new(),
            next_job: 0,
        }
    }

    fn hostname(&self) -> String {
        let n = self.number as usize;
        if self.fleet {
            fleet_hostname(n)
        } else {
            oco_benches::agent::hostname(n)
        }
    }

    fn uid(&self) -> String {
        format!("4c4c4544-0030-4810-8052-{:012}", self.number)
    }

    fn agent_key(&self) -> HmacSha256 {
        keyed(&self.keys[..KEY_LEN])
    }

    fn server_key(&self) -> HmacSha256 {
        keyed(&self.keys[KEY_LEN..])
    }

    /// The jobs a hello must hand out, if the seed says (the fleet's computers).
    fn expected_jobs(&self) -> Option<usize> {
        self.fleet
            .then(|| Class::of(self.number as usize).handed_out())
    }
}

/// What went wrong with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Not a 200.
    Status(u16),
    /// A missing or wrong server signature.
    Signature,
    /// No `result.timestamp`, or one not above the last.
    Timestamp,
    /// A hello reply offering keys: the seed's keys were not taken.
    KeyExchange,
    /// Connecting, writing, reading or parsing failed, or the request timed out.
    Io,
    /// A fleet computer's hello handed out another number of jobs than its class has.
    Jobs,
}

/// What one agent measured.
#[derive(Debug, Default)]
struct Tally {
    /// Successful requests that ended in the window.
    ok: u64,
    /// Their latencies, in nanoseconds.
    latencies: Vec<u64>,
    /// Failed requests that ended in the window, by kind: status, signature, timestamp, keys,
    /// I/O, jobs.
    failures: [u64; 6],
    /// Computers with a successful request in the window.
    distinct: u64,
    /// Failed requests outside the window.
    failures_outside: u64,
    /// The first few failures, described.
    samples: Vec<String>,
}

impl Tally {
    fn fail(&mut self, failure: Failure, measured: bool, describe: impl FnOnce() -> String) {
        let kind = match failure {
            Failure::Status(_) => 0,
            Failure::Signature => 1,
            Failure::Timestamp => 2,
            Failure::KeyExchange => 3,
            Failure::Io => 4,
            Failure::Jobs => 5,
        };
        if measured {
            self.failures[kind] += 1;
        } else {
            self.failures_outside += 1;
        }
        if self.samples.len() < 3 {
            self.samples.push(describe());
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.distinct += other.distinct;
        self.latencies.extend(other.latencies);
        for (a, b) in self.failures.iter_mut().zip(other.failures) {
            *a += b;
        }
        self.failures_outside += other.failures_outside;
        for sample in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(sample);
            }
        }
    }

    fn failed(&self) -> u64 {
        self.failures.iter().sum()
    }
}

/// What every agent shares.
struct Plan {
    /// The servers; agent `a` talks to `targets[a % targets.len()]`.
    targets: Vec<Target>,
    keep_alive: bool,
    /// The run's start, in 10⁻⁴ s since the epoch (the base of every agent timestamp).
    base_ticks: u64,
}

/// One agent's connection and buffers.
struct Agent {
    plan: Arc<Plan>,
    /// The server it talks to.
    target: Target,
    /// Where its connections come from (see [`source_address`]).
    source: Option<IpAddr>,
    conn: Option<TcpStream>,
    body: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Agent {
    /// Agent number `index` of the run.
    fn new(plan: Arc<Plan>, index: usize) -> Agent {
        let target = plan.targets[index % plan.targets.len()].clone();
        Agent {
            source: source_address(target.addr, index),
            target,
            plan,
            conn: None,
            body: String::with_capacity(1024),
            request: Vec::with_capacity(2048),
            response: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends one `method` call for `computer` and checks the reply. On success the response
    /// body is `self.response[range]`.
    async fn call(
        &mut self,
        computer: &mut Computer,
        method: Method,
    ) -> Result<(usize, usize), (Failure, String)> {
        computer.sent += 1;
        // Exact: both are far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let timestamp = (self.plan.base_ticks + u64::from(computer.sent)) as f64 / 1e4;
        let (hostname, uid) = (computer.hostname(), computer.uid());
        self.body.clear();
        match method {
            Method::Hello => {
                envelope(
                    "oco.agent.hello",
                    &uid,
                    &hostname,
                    timestamp,
                    &hello_data(computer.number as usize),
                    &mut self.body,
                );
            }
            Method::Report => {
                let job = &computer.jobs[computer.next_job as usize % computer.jobs.len()];
                computer.next_job = computer.next_job.wrapping_add(1);
                envelope(
                    "oco.agent.update_job_state",
                    &uid,
                    &hostname,
                    timestamp,
                    &report_data(job),
                    &mut self.body,
                );
            }
        }
        let signature = sign(&computer.agent_key(), self.body.as_bytes());
        request(
            &self.target,
            &signature,
            self.body.as_bytes(),
            &mut self.request,
        );
        // A connection per request comes from the computer's own address; a kept-alive one from
        // the agent's.
        let source = if self.plan.keep_alive {
            self.source
        } else {
            computer_address(self.target.addr, computer.number as usize).or(self.source)
        };
        let exchanged = tokio::time::timeout(
            REQUEST_TIMEOUT,
            exchange(
                &mut self.conn,
                self.target.addr,
                source,
                &self.request,
                &mut self.response,
            ),
        )
        .await;
        let response = match exchanged {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.conn = None;
                return Err((Failure::Io, format!("{}: {e}", hostname)));
            }
            Err(_) => {
                self.conn = None;
                return Err((Failure::Io, format!("{}: timed out", hostname)));
            }
        };
        if response.close || !self.plan.keep_alive {
            // The OCO agent closes its connection after every call.
            self.conn = None;
        }
        let (start, end) = response.body;
        let body = &self.response[start..end];
        if response.status != 200 {
            return Err((
                Failure::Status(response.status),
                format!(
                    "{}: status {}: {}",
                    hostname,
                    response.status,
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ));
        }
        let expected = sign(&computer.server_key(), body);
        if response
            .signature
            .is_none_or(|(s, e)| self.response[s..e] != expected)
        {
            return Err((
                Failure::Signature,
                format!("{}: missing or wrong server signature", hostname),
            ));
        }
        match result_timestamp(body) {
            Some(t) if t > computer.last_server_timestamp => computer.last_server_timestamp = t,
            other => {
                return Err((
                    Failure::Timestamp,
                    format!(
                        "{}: result.timestamp {other:?} not above {}",
                        hostname, computer.last_server_timestamp
                    ),
                ))
            }
        }
        if method == Method::Hello
            && body
                .windows(b"\"agent-key\"".len())
                .any(|w| w == b"\"agent-key\"")
        {
            return Err((
                Failure::KeyExchange,
                format!("{}: the hello reply offers new keys", hostname),
            ));
        }
        if let Some(expected) = computer.expected_jobs().filter(|_| method == Method::Hello) {
            let handed_out = count_jobs(body);
            if handed_out != expected {
                return Err((
                    Failure::Jobs,
                    format!(
                        "{hostname} ({}): the hello handed out {handed_out} jobs, not {expected}",
                        Class::of(computer.number as usize)
                    ),
                ));
            }
        }
        Ok((start, end))
    }

    /// One hello per computer, keeping the wire ids of the jobs it hands out.
    async fn learn_jobs(&mut self, computers: &mut [Computer]) -> Result<()> {
        for computer in computers {
            let (start, end) = self
                .call(computer, Method::Hello)
                .await
                .map_err(|(_, message)| message)?;
            let reply: serde_json::Value = serde_json::from_slice(&self.response[start..end])?;
            let jobs = reply
                .pointer("/result/params/software-jobs")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| format!("{}: no software-jobs in the hello", computer.hostname()))?;
            computer.jobs = jobs
                .iter()
                .filter_map(|job| job.get("id"))
                .map(serde_json::Value::to_string)
                .collect();
            if computer.jobs.is_empty() {
                return Err(format!(
                    "{}: the hello handed out no jobs (was the server seeded with `loadgen \
                     seed`, and are the reports of an earlier run final?)",
                    computer.hostname()
                )
                .into());
            }
        }
        Ok(())
    }

    /// Calls `method` for each computer in turn until `window.1`; what ends in the window counts.
    /// With `pace`, `(first, gap)`: the first request starts at `first` and each later one at
    /// least `gap` after the start of the one before.
    async fn load(
        mut self,
        mut computers: Vec<Computer>,
        method: Method,
        window: (Instant, Instant),
        pace: Option<(Instant, Duration)>,
    ) -> Tally {
        let mut tally = Tally::default();
        let mut index = 0;
        let mut next = pace.map(|(first, _)| first);
        loop {
            if let Some(at) = next {
                tokio::time::sleep_until(at.min(window.1).into()).await;
            }
            let started = instant_now();
            if started >= window.1 || computers.is_empty() {
                break;
            }
            next = pace.map(|(_, gap)| started + gap);
            let count = computers.len();
            let computer = &mut computers[index % count];
            index += 1;
            let outcome = self.call(computer, method).await;
            let ended = instant_now();
            let measured = ended >= window.0 && ended < window.1;
            match outcome {
                Ok(_) if measured => {
                    if !computer.counted {
                        computer.counted = true;
                        tally.distinct += 1;
                    }
                    tally.ok += 1;
                    tally
                        .latencies
                        .push(u64::try_from((ended - started).as_nanos()).unwrap_or(u64::MAX));
                }
                Ok(_) => {}
                Err((failure, message)) => {
                    tally.fail(failure, measured, || message);
                    if failure == Failure::Io {
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }
        tally
    }
}

/// The jobs a hello reply hands out: its `"container-id"` keys (every job object has one, and
/// nothing else does).
fn count_jobs(body: &[u8]) -> usize {
    let key = b"\"container-id\"";
    body.windows(key.len()).filter(|w| w == key).count()
}

// ---------------------------------------------------------------------------------------------
// The server process.

/// User + system CPU time of process `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> Result<u64> {
    Ok(stat(pid)?.own)
}

/// What `/proc/PID/stat` says of a process's CPU time.
struct Stat {
    /// Its parent (field 4).
    parent: u32,
    /// User + system time, in clock ticks (fields 14 and 15).
    own: u64,
    /// User + system time of its children that ended and were reaped (fields 16 and 17).
    reaped: u64,
}

fn stat(pid: &str) -> Result<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after = stat.rsplit_once(')').ok_or("unexpected /proc/PID/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts with field 3 (state).
    let field =
        |n: usize| -> Result<u64> { Ok(fields.get(n - 3).ok_or("short /proc/PID/stat")?.parse()?) };
    Ok(Stat {
        parent: u32::try_from(field(4)?)?,
        own: field(14)? + field(15)?,
        reaped: field(16)? + field(17)?,
    })
}

/// The CPU time of a PostgreSQL cluster, in clock ticks: its postmaster's own and its reaped
/// children's, and every live child's own and reaped children's.
///
/// A backend that ends between two readings moves from the live children into the postmaster's
/// reaped children with all its time, so the difference of two readings counts the time within
/// the window of every process of the cluster, the short-lived ones (autovacuum workers, a
/// connection opened and closed) too. The postmaster reaps its children at once; one that ended
/// but is not reaped yet counts as live (its times stay readable until then).
fn cluster_ticks(postmaster: u32) -> Result<u64> {
    let main = stat(&postmaster.to_string())?;
    let mut total = main.own + main.reaped;
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process may end between the listing and the reading: then it is no child to count.
        if let Ok(child) = stat(pid) {
            if child.parent == postmaster {
                total += child.own + child.reaped;
            }
        }
    }
    Ok(total)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that cannot be run).
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// CPU ticks of the servers (summed), of the PostgreSQL cluster and of this process at both ends
/// of the window, and the servers' memory at its end.
#[derive(Debug, Default)]
struct Samples {
    server: Option<(u64, u64)>,
    postgres: Option<(u64, u64)>,
    client: Option<(u64, u64)>,
    /// VmRSS and VmHWM, summed over the servers.
    memory: Option<(u64, u64)>,
    /// This process's memory at the end of the window.
    own_memory: Option<(u64, u64)>,
}

/// Reads the CPU counters at `window.0` and `window.1`, on a thread of its own so that busy
/// agents do not delay the readings.
fn sample(
    servers: Vec<u32>,
    postgres: Option<u32>,
    window: (Instant, Instant),
) -> std::thread::JoinHandle<Result<Samples>> {
    std::thread::spawn(move || {
        let servers: Vec<String> = servers.iter().map(u32::to_string).collect();
        let read_servers = || -> Result<Option<u64>> {
            if servers.is_empty() {
                return Ok(None);
            }
            servers
                .iter()
                .map(|pid| cpu_ticks(pid))
                .sum::<Result<u64>>()
                .map(Some)
        };
        let read = || -> Result<_> {
            Ok((
                read_servers()?,
                postgres.map(cluster_ticks).transpose()?,
                cpu_ticks("self")?,
            ))
        };
        std::thread::sleep(window.0.saturating_duration_since(instant_now()));
        let (server0, postgres0, client0) = read()?;
        std::thread::sleep(window.1.saturating_duration_since(instant_now()));
        let (server1, postgres1, client1) = read()?;
        let mut memory = None;
        for pid in &servers {
            let (rss, hwm) = memory_kib(pid)?;
            let (sum_rss, sum_hwm) = memory.unwrap_or((0, 0));
            memory = Some((sum_rss + rss, sum_hwm + hwm));
        }
        Ok(Samples {
            server: server0.zip(server1),
            postgres: postgres0.zip(postgres1),
            client: Some((client0, client1)),
            memory,
            own_memory: Some(memory_kib("self")?),
        })
    })
}

// ---------------------------------------------------------------------------------------------
// The run.

async fn run(args: RunArgs) -> Result<()> {
    if args.concurrency == 0 || args.duration <= 0.0 || args.warmup < 0.0 {
        return Err("--concurrency and --duration must be positive, --warmup not negative".into());
    }
    let interval = args
        .interval
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("--interval {seconds}: not a positive number of seconds"))
        })
        .transpose()?;
    if args.fleet && args.method != Method::Hello {
        return Err("--fleet runs hellos only (--method hello)".into());
    }
    if args.url.is_empty() {
        return Err("--url names no server".into());
    }
    let plan = Arc::new(Plan {
        targets: args
            .url
            .iter()
            .map(|url| Target::parse(url))
            .collect::<Result<_>>()?,
        keep_alive: args.keep_alive,
        base_ticks: epoch_ticks()?,
    });
    let numbers: Vec<(usize, bool)> = if args.fleet {
        fleet_numbers(args.computers, args.class, args.agents)
            .into_iter()
            .map(|n| (n, true))
            .collect()
    } else {
        let case = if args.small { SEED_TEST } else { SEED_1M };
        (1..=case.polled())
            .map(|i| (i * oco_benches::sqlite::POLLED_ONE_IN, false))
            .collect()
    };
    if numbers.is_empty() {
        return Err("no computer polls: check --computers, --agents and --class".into());
    }
    let computers = numbers.len();
    // Agent `a` takes computers a, a + n, a + 2n…: no computer has two requests in flight.
    let per_share = computers.div_ceil(args.concurrency);
    let mut shares: Vec<Vec<Computer>> = (0..args.concurrency)
        .map(|_| Vec::with_capacity(per_share))
        .collect();
    for (i, (n, fleet)) in numbers.into_iter().enumerate() {
        let n = u32::try_from(n).map_err(|_| format!("computer {n}: numbers end at 2^32"))?;
        shares[i % args.concurrency].push(Computer::new(n, fleet));
    }
    shares.retain(|share| !share.is_empty());

    if args.method == Method::Report {
        let started = instant_now();
        let mut tasks = Vec::new();
        for (index, mut share) in shares.into_iter().enumerate() {
            let plan = plan.clone();
            tasks.push(tokio::spawn(async move {
                let result = Agent::new(plan, index).learn_jobs(&mut share).await;
                result.map(|()| share)
            }));
        }
        shares = Vec::new();
        for task in tasks {
            shares.push(task.await??);
        }
        let jobs: usize = shares.iter().flatten().map(|c| c.jobs.len()).sum();
        println!(
            "setup: one hello per computer handed out {jobs} jobs ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }

    let start = instant_now();
    let window = (
        start + Duration::from_secs_f64(args.warmup),
        start + Duration::from_secs_f64(args.warmup + args.duration),
    );
    let sampler = sample(args.server_pid.clone(), args.postgres_pid, window);
    let mut tasks = Vec::new();
    let agents = shares.len();
    for (index, share) in shares.into_iter().enumerate() {
        let agent = Agent::new(plan.clone(), index);
        // Paced agents start spread over their first gap, not all at once.
        let pace = interval.map(|interval| {
            let gap = pacing_gap(interval, share.len());
            let offset = gap.mul_f64(index as f64 / agents as f64);
            (start + offset, gap)
        });
        tasks.push(tokio::spawn(agent.load(share, args.method, window, pace)));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    let samples = sampler
        .join()
        .map_err(|_| "the sampling thread panicked")??;
    report(&args, computers, &mut tally, &samples);
    if tally.ok == 0 {
        return Err("no request succeeded in the measured window".into());
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn report(args: &RunArgs, computers: usize, tally: &mut Tally, samples: &Samples) {
    tally.latencies.sort_unstable();
    let total = tally.ok + tally.failed();
    let rate = tally.ok as f64 / args.duration;
    let (p50, p99) = (
        percentile(&tally.latencies, 0.50),
        percentile(&tally.latencies, 0.99),
    );
    let max = tally.latencies.last().map_or(f64::NAN, |&n| n as f64 / 1e6);
    let what = match args.method {
        Method::Hello => "signed hello polls",
        Method::Report => "update_job_state reports (state 2 with output)",
    };
    let connection = if args.keep_alive {
        "keep-alive"
    } else {
        "new connection per request"
    };
    let whose = if args.fleet {
        format!(
            "fleet computers of class {} (of {})",
            args.class.name(),
            args.computers
        )
    } else {
        "polled computers".to_owned()
    };
    let pacing = args.interval.map_or(String::new(), |seconds| {
        format!(
            ", each polling at most every {seconds} s ({:.0}/s at most)",
            computers as f64 / seconds
        )
    });
    println!(
        "{what}, {connection}: {} agents over {computers} {whose}{pacing}, {} s measured after {} \
         s of warm-up",
        args.concurrency, args.duration, args.warmup
    );
    println!(
        "  succeeded {} ({rate:.0}/s) by {} distinct computers; failed {} (status {}, signature \
         {}, timestamp {}, keys offered {}, I/O {}, jobs {}); {} more outside the window",
        tally.ok,
        tally.distinct,
        tally.failed(),
        tally.failures[0],
        tally.failures[1],
        tally.failures[2],
        tally.failures[3],
        tally.failures[4],
        tally.failures[5],
        tally.failures_outside
    );
    for sample in &tally.samples {
        println!("  e.g. {sample}");
    }
    println!("  latency p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms");
    let hz = clock_ticks_per_second() as f64;
    let servers = if args.server_pid.len() > 1 {
        format!("{} servers'", args.server_pid.len())
    } else {
        "server".to_owned()
    };
    let mut cpu_ms = f64::NAN;
    if let Some((before, after)) = samples.server {
        let seconds = (after - before) as f64 / hz;
        cpu_ms = seconds * 1e3 / total.max(1) as f64;
        println!(
            "  {servers} CPU {seconds:.2} s over the window ({:.0} % of one core): {cpu_ms:.4} \
             ms per request",
            100.0 * seconds / args.duration
        );
    }
    let mut postgres = String::new();
    if let Some((before, after)) = samples.postgres {
        let seconds = (after - before) as f64 / hz;
        let pg_ms = seconds * 1e3 / total.max(1) as f64;
        println!(
            "  PostgreSQL CPU {seconds:.2} s over the window ({:.0} % of one core): {pg_ms:.4} ms \
             per request; with the {servers}: {:.4} ms per request",
            100.0 * seconds / args.duration,
            cpu_ms + pg_ms
        );
        postgres = format!(
            " postgres_cpu_ms={pg_ms:.4} total_cpu_ms={:.4}",
            cpu_ms + pg_ms
        );
    }
    if let Some((before, after)) = samples.client {
        let seconds = (after - before) as f64 / hz;
        println!(
            "  generator CPU {seconds:.2} s ({:.0} % of one core)",
            100.0 * seconds / args.duration
        );
    }
    let (mut rss, mut hwm) = (f64::NAN, f64::NAN);
    if let Some((r, h)) = samples.memory {
        (rss, hwm) = (r as f64 / 1024.0, h as f64 / 1024.0);
        println!("  {servers} memory: VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB");
    }
    let (mut gen_rss, mut gen_hwm) = (f64::NAN, f64::NAN);
    if let Some((r, h)) = samples.own_memory {
        (gen_rss, gen_hwm) = (r as f64 / 1024.0, h as f64 / 1024.0);
        println!("  generator memory: VmRSS {gen_rss:.1} MiB, VmHWM {gen_hwm:.1} MiB");
    }
    let fleet = if args.fleet {
        format!(
            " fleet={} class={} computers={computers}",
            args.computers,
            args.class.name()
        )
    } else {
        String::new()
    };
    let interval = args
        .interval
        .map_or(String::new(), |seconds| format!(" interval_s={seconds}"));
    let targets = if args.url.len() > 1 {
        format!(" servers={}", args.url.len())
    } else {
        String::new()
    };
    println!(
        "RESULT method={} keep_alive={} concurrency={} ok={} failed={} per_s={rate:.0} \
         p50_ms={p50:.3} p99_ms={p99:.3} server_cpu_ms={cpu_ms:.4} rss_mib={rss:.1} \
         hwm_mib={hwm:.1} distinct={} gen_rss_mib={gen_rss:.1} gen_hwm_mib={gen_hwm:.1}{postgres}\
         {targets}{fleet}{interval}",
        match args.method {
            Method::Hello => "hello",
            Method::Report => "report",
        },
        args.keep_alive,
        args.concurrency,
        tally.ok,
        tally.failed(),
        tally.distinct,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn the_seed_overlay_hands_the_polled_jobs_out() {
        use oco_core::store::MemoryStore;
        let store = MemoryStore::new();
        let case = SeedCase {
            computers: 40,
            rule_members: 10,
            rule_packages: 20,
            deploy_packages: 5,
        };
        let seeded = seed(&store, case).unwrap();
        assert_eq!(open_polled_containers(&store).unwrap(), 4);
        for container in store.list_containers(Page::first(10)).unwrap() {
            assert_eq!(container.policy.time_frames, TimeFrames::default());
            assert!(container
                .policy
                .ip_ranges
                .allows("127.0.0.1".parse().unwrap()));
            assert_eq!(container.schedule.end(), None);
        }
        let snapshot = store.planner_snapshot(seeded.polled[0]).unwrap();
        assert_eq!(snapshot.jobs.len(), 20);
    }

    /// A stand-in server that checks what the generator sends and answers like the agent API:
    /// 401 on a bad signature or a timestamp not above the last hello, else a signed reply.
    async fn fake_server(listener: TcpListener) {
        let last = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(1));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (last, clock) = (last.clone(), clock.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // Read one request: head, then Content-Length bytes.
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at;
                        }
                        if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                    };
                    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(name))
                            .unwrap()
                            .trim()
                            .to_owned()
                    };
                    assert_eq!(header("content-type:"), "application/json");
                    let length: usize = header("Content-Length:").parse().unwrap();
                    while buf.len() < head_end + 4 + length {
                        stream.read_buf(&mut buf).await.unwrap();
                    }
                    let body: Vec<u8> = buf
                        .drain(..head_end + 4 + length)
                        .skip(head_end + 4)
                        .collect();
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let hostname = request["params"]["hostname"].as_str().unwrap().to_owned();
                    let timestamp = request["params"]["timestamp"].as_f64().unwrap();
                    let agent_key = keyed(derive_key("agent", &hostname).as_bytes());
                    let signed =
                        sign(&agent_key, &body) == header("x-oco-agent-signature:").as_bytes();
                    let is_hello = request["method"] == "oco.agent.hello";
                    let fresh = {
                        let mut last = last.lock().unwrap();
                        let previous = last.get(&hostname).copied().unwrap_or(0.0);
                        if is_hello && timestamp > previous {
                            last.insert(hostname.clone(), timestamp);
                        }
                        !is_hello || timestamp > previous
                    };
                    let reply = if !signed || !fresh {
                        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 23\r\n\r\nAgent timestamp too old".to_vec()
                    } else {
                        let now = clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let params = if is_hello {
                            "{\"update\":0,\"software-jobs\":[{\"id\":7,\"download\":false},{\"id\":\"8.2\"}]}"
                        } else {
                            "{\"job-succeeded\":false}"
                        };
                        let body = format!(
                            "{{\"id\":1,\"error\":null,\"result\":{{\"success\":true,\"params\":{params},\"timestamp\":{now}.5}}}}"
                        );
                        let server_key = keyed(derive_key("server", &hostname).as_bytes());
                        let signature = sign(&server_key, body.as_bytes());
                        let mut reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-oco-server-signature: {}\r\ncontent-length: {}\r\n\r\n",
                            String::from_utf8_lossy(&signature),
                            body.len()
                        )
                        .into_bytes();
                        reply.extend_from_slice(body.as_bytes());
                        reply
                    };
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    async fn against_fake_server(method: Method, keep_alive: bool) -> Tally {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(fake_server(listener));
        let plan = Arc::new(Plan {
            targets: vec![Target::parse(&format!("http://{addr}/api-agent.php")).unwrap()],
            keep_alive,
            base_ticks: epoch_ticks().unwrap(),
        });
        let mut computers: Vec<Computer> = (1..=3).map(|i| Computer::new(i * 20, false)).collect();
        if method == Method::Report {
            Agent::new(plan.clone(), 0)
                .learn_jobs(&mut computers)
                .await
                .unwrap();
            assert_eq!(computers[0].jobs, ["7", "\"8.2\""]);
        }
        let start = instant_now();
        let window = (start, start + Duration::from_millis(300));
        Agent::new(plan, 1)
            .load(computers, method, window, None)
            .await
    }

    #[tokio::test]
    async fn hellos_and_reports_pass_the_checks_of_a_server() {
        for (method, keep_alive) in [
            (Method::Hello, false),
            (Method::Hello, true),
            (Method::Report, false),
        ] {
            let tally = against_fake_server(method, keep_alive).await;
            assert!(tally.ok > 10, "{method:?}: {tally:?}");
            assert_eq!(tally.failed() + tally.failures_outside, 0, "{tally:?}");
            assert_eq!(tally.latencies.len() as u64, tally.ok);
        }
    }

    #[test]
    fn the_fleet_runs_take_the_first_computers_of_their_classes() {
        assert_eq!(
            fleet_numbers(100, ClassChoice::Deliverable, None),
            [20, 40, 60, 80, 100]
        );
        assert_eq!(fleet_numbers(100, ClassChoice::Mix, Some(3)), [1, 2, 3]);
        let held = fleet_numbers(80, ClassChoice::Held, None);
        assert_eq!(held.len(), 36);
        assert!(held.iter().all(|&n| Class::of(n).is_held()));
        assert_eq!(fleet_numbers(40, ClassChoice::None, Some(100)).len(), 20);
        // The first 40k of a fleet have its mix.
        let mix = fleet_numbers(1_000_000, ClassChoice::Mix, Some(40_000));
        let deliverable = mix
            .iter()
            .filter(|&&n| Class::of(n) == Class::Deliverable)
            .count();
        assert_eq!(deliverable, 2_000);
    }

    #[test]
    fn paced_agents_poll_each_computer_at_most_once_per_interval() {
        for (interval_ms, share) in [(1_000, 1), (60_000, 6_250), (7, 3), (1, 1_000_000)] {
            let interval = Duration::from_millis(interval_ms);
            let gap = pacing_gap(interval, share);
            let cycle = gap * u32::try_from(share).unwrap();
            assert!(cycle >= interval, "{interval:?} {share}");
            assert!(cycle - interval < Duration::from_nanos(share as u64));
        }
        assert_eq!(
            pacing_gap(Duration::from_secs(1), 0),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_computer_is_small_and_signs_with_the_seeds_keys() {
        // A million of them stay near 100 MiB.
        assert!(std::mem::size_of::<Computer>() <= 128);
        let computer = Computer::new(20, true);
        assert_eq!(computer.hostname(), "fl-0000020");
        assert_eq!(computer.expected_jobs(), Some(20));
        assert_eq!(Computer::new(21, true).expected_jobs(), Some(0));
        assert_eq!(Computer::new(20, false).expected_jobs(), None);
        let credentials = seeded_credentials("fl-0000020");
        let body = b"{}";
        let agent_key = credentials.agent_key.unwrap();
        let server_key = credentials.server_key.unwrap();
        assert_eq!(
            sign(&computer.agent_key(), body),
            sign(&keyed(agent_key.as_bytes()), body)
        );
        assert_eq!(
            sign(&computer.server_key(), body),
            sign(&keyed(server_key.as_bytes()), body)
        );
    }

    #[test]
    fn jobs_are_counted_by_their_container_ids() {
        assert_eq!(count_jobs(b"{\"software-jobs\":[]}"), 0);
        let two = br#"[{"id":1,"container-id":3},{"id":2,"container-id":"deployment_rule::1"}]"#;
        assert_eq!(count_jobs(two), 2);
    }

    #[tokio::test]
    async fn a_paced_agent_polls_no_computer_twice_within_the_interval() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(fake_server(listener));
        let plan = Arc::new(Plan {
            targets: vec![Target::parse(&format!("http://{addr}/api-agent.php")).unwrap()],
            keep_alive: true,
            base_ticks: epoch_ticks().unwrap(),
        });
        let computers: Vec<Computer> = (1..=4).map(|i| Computer::new(i * 20, false)).collect();
        let start = instant_now();
        let window = (start, start + Duration::from_millis(400));
        let interval = Duration::from_millis(200);
        let pace = Some((start, pacing_gap(interval, computers.len())));
        let tally = Agent::new(plan, 0)
            .load(computers, Method::Hello, window, pace)
            .await;
        // 400 ms at one poll per 200 ms and computer: at most 2 rounds of 4, and a third start
        // at the very end at most.
        assert!(tally.ok >= 4 && tally.ok <= 12, "{tally:?}");
        assert_eq!(tally.distinct, 4);
        assert_eq!(tally.failed(), 0, "{tally:?}");
    }

    #[tokio::test]
    async fn agents_are_spread_over_the_servers_round_robin() {
        let mut targets = Vec::new();
        for _ in 0..2 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            targets.push(
                Target::parse(&format!(
                    "http://{}/api-agent.php",
                    listener.local_addr().unwrap()
                ))
                .unwrap(),
            );
            tokio::spawn(fake_server(listener));
        }
        let plan = Arc::new(Plan {
            targets: targets.clone(),
            keep_alive: false,
            base_ticks: epoch_ticks().unwrap(),
        });
        for index in 0..4 {
            let start = instant_now();
            let window = (start, start + Duration::from_millis(100));
            let agent = Agent::new(plan.clone(), index);
            assert_eq!(agent.target.addr, targets[index % 2].addr, "agent {index}");
            let computers = vec![Computer::new(
                20 * (u32::try_from(index).unwrap() + 1),
                false,
            )];
            // Each agent talks to its own server only: both answer.
            let tally = agent.load(computers, Method::Hello, window, None).await;
            assert!(
                tally.ok > 0 && tally.failed() == 0,
                "agent {index}: {tally:?}"
            );
        }
    }

    /// A child that ran and was reaped between two readings counts with its whole time, and one
    /// reading is no less than the process's own time.
    #[test]
    fn a_process_tree_counts_its_reaped_children() {
        let me = std::process::id();
        let before = cluster_ticks(me).unwrap();
        assert!(before >= stat("self").unwrap().own);
        let burn = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(burn.success());
        let after = cluster_ticks(me).unwrap();
        // The loop takes at least a few tenths of a second of CPU on any machine of today; a
        // tick is 10 ms.
        assert!(after - before >= 5, "{before} -> {after}");
    }

    #[tokio::test]
    async fn a_replayed_hello_is_counted_as_a_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(fake_server(listener));
        let plan = Arc::new(Plan {
            targets: vec![Target::parse(&format!("http://{addr}/api-agent.php")).unwrap()],
            keep_alive: false,
            base_ticks: epoch_ticks().unwrap(),
        });
        let mut agent = Agent::new(plan, 0);
        let mut computer = Computer::new(20, false);
        agent.call(&mut computer, Method::Hello).await.unwrap();
        computer.sent -= 1;
        let (failure, message) = agent.call(&mut computer, Method::Hello).await.unwrap_err();
        assert_eq!(failure, Failure::Status(401), "{message}");
    }
}
