//! Hostile clients against `oco-server-min` (the "Hostile clients" rows of
//! `benches/PERFORMANCE.md`), with a signed agent hello measured all the while.
//!
//! `hostile --url http://127.0.0.1:PORT/api-agent.php --server-pid PID` opens, as fast as the
//! server takes them:
//!
//! - `--idle` connections that send nothing;
//! - `--slow-header` connections that send a request head one byte per `--trickle` seconds and
//!   never finish it;
//! - `--slow-body` connections that send a whole agent request head (content type, a signature,
//!   `Content-Length: 100000`) and then one body byte per `--trickle` seconds.
//!
//! None of them reconnects once the server closes it. (Before them, 20 hellos warm the server up
//! and give a baseline.) After `--settle` seconds it sends a
//! signed `oco.agent.hello` of a seeded computer (`loadgen seed`, see [`oco_benches::agent`])
//! every `--interval` milliseconds on a new connection, as the OCO agent does, for `--duration`
//! seconds, and samples the server's memory (`VmRSS`) every second. Then it stops the server
//! with SIGTERM, with the hostile connections that are still open, and measures how long the
//! process takes to exit.
//!
//! It prints the hello latency (p50, max), the failures, the server's peak RSS, for each kind of
//! hostile connection how many the server closed and when (seconds after connecting), and the
//! stop's duration, then a `RESULT` line. It exits with status 1 when a hello failed or took
//! longer than `--max-hello-ms`, or the stop took longer than `--max-stop-secs`.
//!
//! Run it through `benches/hostile.sh`, which starts the server under a 1,024-descriptor limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use oco_benches::agent::{
    derive_key, envelope, epoch_ticks, exchange, hello_data, keyed, memory_kib, percentile,
    polled_hostnames, request, sign, source_address, Result, Target,
};
use oco_benches::sqlite::{SEED_1M, SEED_TEST};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The body length a slow-body client announces (under the agent body limit).
const SLOW_BODY_LENGTH: usize = 100_000;

/// Connection attempts in flight at once while the hostile clients open.
const CONNECTING: u32 = 256;

#[derive(Parser, Debug)]
#[command(about = "Hostile clients against oco-server-min, with a signed hello measured")]
struct Cli {
    /// The agent API's URL (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080/api-agent.php")]
    url: String,
    /// The server's process id: its memory is sampled, and it is stopped with SIGTERM at the end.
    #[arg(long)]
    server_pid: u32,
    /// Connections that send nothing.
    #[arg(long, default_value_t = 5_000)]
    idle: usize,
    /// Connections that never finish their request head.
    #[arg(long, default_value_t = 500)]
    slow_header: usize,
    /// Connections that send their request body one byte at a time.
    #[arg(long, default_value_t = 500)]
    slow_body: usize,
    /// Seconds between two bytes of a slow client.
    #[arg(long, default_value_t = 1.0)]
    trickle: f64,
    /// Seconds between opening the hostile connections and the first hello.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds of hellos under attack.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Milliseconds between two hellos.
    #[arg(long, default_value_t = 100)]
    interval: u64,
    /// The server was seeded with `loadgen seed --small`.
    #[arg(long)]
    small: bool,
    /// Fail when a hello takes longer (milliseconds).
    #[arg(long, default_value_t = 100.0)]
    max_hello_ms: f64,
    /// Fail when the server takes longer to exit after SIGTERM (seconds).
    #[arg(long, default_value_t = 5.0)]
    max_stop_secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Idle,
    SlowHeader,
    SlowBody,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Idle => "idle",
            Kind::SlowHeader => "slow-header",
            Kind::SlowBody => "slow-body",
        }
    }
}

/// What became of one hostile connection.
#[derive(Debug, Default, Clone, Copy)]
struct Fate {
    connected: bool,
    /// Seconds from connecting to the server closing it.
    closed_after: Option<f64>,
}

/// The hostile connections' fates, by kind.
type Fates = Arc<Mutex<Vec<(Kind, Fate)>>>;

#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let passed = runtime.block_on(run(cli))?;
    // The hostile tasks may still hold sockets: do not wait for them.
    runtime.shutdown_background();
    if passed {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

async fn run(cli: Cli) -> Result<bool> {
    let target = Arc::new(Target::parse(&cli.url)?);
    let pid = cli.server_pid.to_string();
    let trickle = Duration::from_secs_f64(cli.trickle);
    let fates: Fates = Arc::default();
    let connecting = Arc::new(Semaphore::new(CONNECTING as usize));

    // Hellos before the attack: the server's caches warm up, and a baseline.
    let hostnames = polled_hostnames(if cli.small { SEED_TEST } else { SEED_1M });
    let base = epoch_ticks()?;
    let mut sent: u64 = 0;
    let mut baseline = Vec::new();
    for _ in 0..hostnames.len().min(20) {
        sent += 1;
        let n = usize::try_from(sent)?;
        let began = now();
        hello(&target, &hostnames[n % hostnames.len()], n, base + sent).await?;
        baseline.push(u64::try_from(began.elapsed().as_nanos())?);
    }
    baseline.sort_unstable();
    println!(
        "hellos before the attack: p50 {:.1} ms, max {:.1} ms",
        percentile(&baseline, 0.5),
        percentile(&baseline, 1.0)
    );

    // The attack: every connection opens as soon as an attempt slot is free.
    let opening = now();
    let kinds = std::iter::repeat_n(Kind::Idle, cli.idle)
        .chain(std::iter::repeat_n(Kind::SlowHeader, cli.slow_header))
        .chain(std::iter::repeat_n(Kind::SlowBody, cli.slow_body));
    let mut attackers = Vec::new();
    for kind in kinds {
        let permit = connecting.clone().acquire_owned().await?;
        let (target, fates) = (target.clone(), fates.clone());
        attackers.push(tokio::spawn(async move {
            hostile(kind, &target, trickle, permit, &fates).await;
        }));
    }
    let _ = connecting.acquire_many(CONNECTING).await?;
    println!(
        "opened {} hostile connections in {:.1} s ({} refused or failed)",
        cli.idle + cli.slow_header + cli.slow_body,
        opening.elapsed().as_secs_f64(),
        fates
            .lock()
            .map_err(|_| "poisoned")?
            .iter()
            .filter(|(_, fate)| !fate.connected)
            .count()
    );
    tokio::time::sleep(Duration::from_secs_f64(cli.settle)).await;

    // Hellos under attack, and the server's memory.
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut peak_rss = 0;
    let started = now();
    let mut next_sample = started;
    while started.elapsed().as_secs_f64() < cli.duration {
        if now() >= next_sample {
            if let Ok((rss, _)) = memory_kib(&pid) {
                peak_rss = peak_rss.max(rss);
            }
            next_sample += Duration::from_secs(1);
        }
        sent += 1;
        let n = usize::try_from(sent)?;
        let hostname = &hostnames[n % hostnames.len()];
        let began = now();
        match hello(&target, hostname, n, base + sent).await {
            Ok(()) => latencies.push(u64::try_from(began.elapsed().as_nanos())?),
            Err(error) => failures.push(format!("{hostname}: {error}")),
        }
        tokio::time::sleep(Duration::from_millis(cli.interval)).await;
    }
    let (rss, hwm) = memory_kib(&pid).unwrap_or_default();
    peak_rss = peak_rss.max(rss);
    latencies.sort_unstable();
    let (p50, max) = (percentile(&latencies, 0.5), percentile(&latencies, 1.0));
    println!(
        "hellos under attack: {} ok, {} failed; p50 {p50:.1} ms, p99 {:.1} ms, max {max:.1} ms",
        latencies.len(),
        failures.len(),
        percentile(&latencies, 0.99)
    );
    for failure in failures.iter().take(5) {
        println!("  failed: {failure}");
    }
    println!(
        "server memory: peak RSS sampled {:.1} MiB, VmHWM {:.1} MiB",
        kib_to_mib(peak_rss),
        kib_to_mib(hwm)
    );
    report_fates(&fates, opening.elapsed().as_secs_f64())?;

    // The stop, with the hostile connections still open.
    let open_at_stop = fates
        .lock()
        .map_err(|_| "poisoned")?
        .iter()
        .filter(|(_, fate)| fate.connected && fate.closed_after.is_none())
        .count();
    let signalled = now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    if !killed.success() {
        return Err(format!("kill -TERM {pid} failed").into());
    }
    let mut exited = None;
    while signalled.elapsed() < Duration::from_secs(120) {
        if !running(&pid) {
            exited = Some(signalled.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stop = exited.unwrap_or(f64::INFINITY);
    println!("stop: the server exited {stop:.2} s after SIGTERM, {open_at_stop} hostile connections open");
    println!(
        "RESULT hello_p50_ms={p50:.1} hello_max_ms={max:.1} hello_failed={} rss_peak_mib={:.1} \
         hostile_open_at_stop={open_at_stop} stop_s={stop:.2}",
        failures.len(),
        kib_to_mib(peak_rss.max(hwm))
    );
    for attacker in attackers {
        attacker.abort();
    }
    let passed = failures.is_empty() && max <= cli.max_hello_ms && stop <= cli.max_stop_secs;
    if !passed {
        println!(
            "FAILED: a hello failed or took over {} ms, or the stop took over {} s",
            cli.max_hello_ms, cli.max_stop_secs
        );
    }
    Ok(passed)
}

/// Whether process `pid` still runs (not gone, not a zombie waiting for its parent).
fn running(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One signed hello of `hostname` on a new connection; Ok when the server answered 200 with its
/// signature.
async fn hello(target: &Target, hostname: &str, n: usize, ticks: u64) -> Result<()> {
    let mut body = String::new();
    // Exact: far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let timestamp = ticks as f64 / 1e4;
    let uid = format!("4c4c4544-0030-4810-8052-{n:012}");
    envelope(
        "oco.agent.hello",
        &uid,
        hostname,
        timestamp,
        &hello_data(n),
        &mut body,
    );
    let signature = sign(
        &keyed(derive_key("agent", hostname).as_bytes()),
        body.as_bytes(),
    );
    let mut raw = Vec::new();
    request(target, &signature, body.as_bytes(), &mut raw);
    let mut conn = None;
    let mut buf = Vec::new();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(
            &mut conn,
            target.addr,
            source_address(target.addr, n % 5_000 + 10_000),
            &raw,
            &mut buf,
        ),
    )
    .await
    .map_err(|_| "no answer within 10 s")??;
    if response.status != 200 {
        return Err(format!("status {}", response.status).into());
    }
    let expected = sign(
        &keyed(derive_key("server", hostname).as_bytes()),
        &buf[response.body.0..response.body.1],
    );
    match response.signature {
        Some((start, end)) if buf[start..end] == expected => Ok(()),
        _ => Err("missing or wrong server signature".into()),
    }
}

/// One hostile connection of `kind`, until the server closes it.
async fn hostile(
    kind: Kind,
    target: &Target,
    trickle: Duration,
    permit: tokio::sync::OwnedSemaphorePermit,
    fates: &Fates,
) {
    let connected = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(target.addr))
        .await
        .ok()
        .and_then(Result::ok);
    drop(permit);
    let Some(mut stream) = connected else {
        push(fates, kind, Fate::default());
        return;
    };
    let since = now();
    let (head, tail): (Vec<u8>, &[u8]) = match kind {
        Kind::Idle => (Vec::new(), b""),
        Kind::SlowHeader => (
            format!("POST {} HTTP/1.1\r\n", target.path).into_bytes(),
            b"Host: a-very-slow-client.example\r\n",
        ),
        Kind::SlowBody => (
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\n\
                 x-oco-agent-signature: {}\r\nContent-Length: {SLOW_BODY_LENGTH}\r\n\r\n",
                target.path,
                target.host,
                "0".repeat(64)
            )
            .into_bytes(),
            b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"oco.agent.hello\"",
        ),
    };
    let closed = async {
        if stream.write_all(&head).await.is_err() {
            return;
        }
        let mut buf = [0u8; 512];
        for byte in tail.iter().cycle() {
            if kind == Kind::Idle {
                break;
            }
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(trickle) => {
                    if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
                        return;
                    }
                }
            }
        }
        // Idle: wait for the server to close.
        while let Ok(read) = stream.read(&mut buf).await {
            if read == 0 {
                break;
            }
        }
    };
    // Registered as open at once, and updated when closed.
    let index = push(
        fates,
        kind,
        Fate {
            connected: true,
            closed_after: None,
        },
    );
    closed.await;
    if let Ok(mut fates) = fates.lock() {
        fates[index].1.closed_after = Some(since.elapsed().as_secs_f64());
    }
}

fn push(fates: &Fates, kind: Kind, fate: Fate) -> usize {
    match fates.lock() {
        Ok(mut fates) => {
            fates.push((kind, fate));
            fates.len() - 1
        }
        Err(_) => 0,
    }
}

/// For each kind: connected, closed by the server and when (seconds after connecting), open.
fn report_fates(fates: &Fates, elapsed: f64) -> Result<()> {
    let fates = fates.lock().map_err(|_| "poisoned")?;
    for kind in [Kind::Idle, Kind::SlowHeader, Kind::SlowBody] {
        let of_kind: Vec<Fate> = fates
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, fate)| *fate)
            .collect();
        let connected = of_kind.iter().filter(|fate| fate.connected).count();
        let mut closed: Vec<f64> = of_kind
            .iter()
            .filter_map(|fate| fate.closed_after)
            .collect();
        closed.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if closed.is_empty() {
                f64::NAN
            } else {
                // Nearest rank, below the length.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let rank = ((q * closed.len() as f64).ceil() as usize).clamp(1, closed.len());
                closed[rank - 1]
            }
        };
        println!(
            "{:>11}: {connected} connected, {} closed by the server (after {:.1} s median, \
             {:.1}–{:.1} s), {} open after {elapsed:.0} s",
            kind.name(),
            closed.len(),
            at(0.5),
            at(0.0),
            at(1.0),
            connected - closed.len()
        );
    }
    Ok(())
}
