//! The server's configuration: command-line options, `OCO_<NAME>` environment variables and an
//! optional TOML file, resolved into one [`Config`].
//!
//! Each option comes from the first of these that gives it: the command line, its environment
//! variable, a key of the file named by `--config`, the default. The file's keys are the options'
//! long names (`listen`, `data-dir`, `wol-target`, …); a repeatable option is an array, and a
//! key the server does not know is an error naming it.
//!
//! [`resolve`] is a pure function of the parsed arguments and the file's text; [`load`] reads the
//! file. `main.rs` calls [`command`], then [`load`].
//!
//! ```
//! use oco_server_min::config;
//!
//! let matches = config::command().try_get_matches_from(["oco-server-min", "--listen", "0.0.0.0:80"])?;
//! let file = r#"
//!     listen = "127.0.0.1:9000"
//!     wol-target = ["192.168.1.255:9", "10.0.0.255:7"]
//! "#;
//! let config = config::resolve(&matches, Some(("oco.toml".as_ref(), file)))?;
//! assert_eq!(config.listen.to_string(), "0.0.0.0:80"); // the command line wins
//! assert_eq!(config.wol_targets.len(), 2); // the file beats the default
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use oco_core::chrono_tz::Tz;
use oco_core::ipnet::IpNet;
use serde::Deserialize;

use crate::connections::ConnectionOptions;
use crate::ServerOptions;

/// The database file's name in the data directory.
pub const DATABASE_FILE: &str = "oco.db";
/// The secrets file's name in the data directory.
pub const SECRETS_FILE: &str = "oco-secrets.toml";
/// The payload directory's name in the data directory.
pub const PAYLOAD_DIR: &str = "payloads";

/// The server's resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Holds the database, the secrets file and the payloads.
    pub data_dir: PathBuf,
    /// The database: SQLite in the data directory unless an option named another.
    pub database: Database,
    /// The most connections to a PostgreSQL database this process opens for requests.
    pub database_connections: usize,
    /// The certificates that may sign a PostgreSQL server's (with `sslmode=require`).
    pub database_ca: Option<PathBuf>,
    /// The agent API's path.
    pub agent_path: String,
    /// The default time zone of new delivery policies.
    pub time_zone: Tz,
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where Wake-on-LAN magic packets are sent.
    pub wol_targets: Vec<SocketAddr>,
    /// How often housekeeping runs.
    pub housekeeping_interval: Duration,
    /// Whether unknown computers may register with the registration key.
    pub self_registration: bool,
    /// Whether `/metrics` answers without an admin token.
    pub metrics_public: bool,
    /// When a commit reaches the disk.
    pub synchronous: Synchronous,
    /// The memory of the hello cache, in bytes (0: off).
    pub hello_cache_memory: u64,
    /// How far ahead of the server clock an agent's timestamp may be.
    pub max_clock_skew: Duration,
    /// The largest agent request body, in bytes.
    pub agent_body_limit: usize,
    /// The most of a job's output kept, in bytes.
    pub max_job_output: usize,
    /// How long a request head may take to arrive.
    pub header_timeout: Duration,
    /// How long a request body may bring nothing, or a response have nothing taken.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// The most connections open at once, if an option set it (otherwise sized from the
    /// descriptor limit: see [`crate::connections::max_connections`]).
    pub max_connections: Option<usize>,
    /// How long requests in flight may take to finish after a stop signal.
    pub shutdown_grace: Duration,
    /// The largest payload upload, in bytes.
    pub max_payload_size: u64,
    /// How many heavy admin operations run at once.
    pub admin_heavy_concurrency: usize,
    /// The log filter, if an option set one (otherwise `RUST_LOG`, then `info`).
    pub log: Option<String>,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// Where the server keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (by default `oco.db` in the data directory): one server process.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL: one or several server processes.
    Postgres(String),
}

impl Database {
    /// What the database is, fit for a log line: a PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("SQLite {}", path.display()),
            Database::Postgres(url) => format!("PostgreSQL {}", redact_password(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `url` with the password of its user part, if any, replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A `--database` value: a `postgres://` or `postgresql://` URL, or `sqlite:PATH`.
fn parse_database(text: &str) -> Result<Database, String> {
    let text = text.trim();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Ok(Database::Postgres(text.to_owned()));
    }
    match text.strip_prefix("sqlite:") {
        Some(path) if !path.is_empty() => Ok(Database::Sqlite(PathBuf::from(path))),
        _ => Err(format!(
            "`{}` is not a database: a PostgreSQL URL (`postgres://user@host/dbname`) or \
             `sqlite:PATH`",
            redact_password(text)
        )),
    }
}

fn parse_database_connections(text: &str) -> Result<usize, String> {
    whole(text, "connections").and_then(check_database_connections)
}

fn check_database_connections(count: usize) -> Result<usize, String> {
    if (1..=1000).contains(&count) {
        Ok(count)
    } else {
        Err(format!("{count} is not between 1 and 1000"))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line (time, level, target, message, fields and the request span),
    /// for log collectors.
    Json,
}

/// When a commit reaches the disk (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Synchronous {
    /// Commits survive a crash of the server; the last few may be lost on power loss.
    #[default]
    Normal,
    /// Every commit is flushed to the disk before the reply: survives power loss, slower.
    Full,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` cannot be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, has a key the server does not know, or a value of the wrong type.
    #[error("configuration file {}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (it names an unknown key and where it is).
        message: String,
    },
    /// A value in the file does not parse.
    #[error("configuration file {}: `{key}`: {message}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Why its value is invalid.
        message: String,
    },
    /// The arguments do not fit the options (normally caught by clap already).
    #[error("{0}")]
    Arguments(#[from] clap::Error),
}

impl Config {
    /// The SQLite database file, when the database is SQLite.
    pub fn database_path(&self) -> Option<&Path> {
        match &self.database {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// The secrets file.
    pub fn secrets_path(&self) -> PathBuf {
        self.data_dir.join(SECRETS_FILE)
    }

    /// The directory of package payloads.
    pub fn payload_dir(&self) -> PathBuf {
        self.data_dir.join(PAYLOAD_DIR)
    }

    /// What the request handlers need of this configuration.
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            agent_path: self.agent_path.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            time_zone: self.time_zone,
            self_registration: self.self_registration,
            metrics_public: self.metrics_public,
            payload_dir: self.payload_dir(),
            hello_cache_memory: self.hello_cache_memory,
            max_clock_skew: self.max_clock_skew,
            agent_body_limit: self.agent_body_limit,
            max_job_output: self.max_job_output,
            max_payload_size: self.max_payload_size,
            admin_heavy_concurrency: self.admin_heavy_concurrency,
            admin_heavy_wait: crate::state::ADMIN_HEAVY_WAIT,
            payload_write_fault: None,
            // The PostgreSQL client must not run on an async worker; several processes may
            // share its database.
            inline_reads: matches!(self.database, Database::Sqlite(_)),
            other_writers: matches!(self.database, Database::Postgres(_)),
            // Set by `main` for the store it opens.
            schema_check: None,
        }
    }

    /// The bounds on connections, with `max_connections` as sized for the descriptor limit.
    pub fn connection_options(&self, max_connections: usize) -> ConnectionOptions {
        ConnectionOptions {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections,
            shutdown_grace: self.shutdown_grace,
        }
    }

    /// How the PostgreSQL store connects.
    pub fn postgres_options(&self) -> oco_store_postgres::Options {
        oco_store_postgres::Options {
            max_connections: self.database_connections,
            ca_file: self.database_ca.clone(),
            ..oco_store_postgres::Options::default()
        }
    }

    /// How the SQLite store is opened.
    pub fn store_options(&self) -> oco_store_sqlite::Options {
        oco_store_sqlite::Options {
            synchronous: match self.synchronous {
                Synchronous::Normal => oco_store_sqlite::Synchronous::Normal,
                Synchronous::Full => oco_store_sqlite::Synchronous::Full,
            },
            ..oco_store_sqlite::Options::default()
        }
    }

    /// The log filter: the option's if one was given, else `rust_log` (the `RUST_LOG` variable)
    /// if set, else `info`.
    pub fn log_filter(&self, rust_log: Option<String>) -> String {
        self.log
            .clone()
            .or(rust_log.filter(|filter| !filter.trim().is_empty()))
            .unwrap_or_else(|| "info".into())
    }
}

/// The command line: every option, with its environment variable, default and help.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Resolves `matches` (from [`command`]) and the configuration file they name, reading it.
///
/// # Errors
///
/// When the file cannot be read, or as [`resolve`].
pub fn load(matches: &ArgMatches) -> Result<Config, ConfigError> {
    let path = matches.get_one::<PathBuf>("config").cloned();
    let text = match &path {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    resolve(matches, path.as_deref().zip(text.as_deref()))
}

/// The configuration from parsed arguments (command line and environment, as clap read them)
/// and the configuration file's `(path, text)` if there is one: for each option the command line,
/// then the environment, then the file, then the default.
///
/// # Errors
///
/// When the file is not TOML, has an unknown key (the error names it) or an invalid value.
pub fn resolve(matches: &ArgMatches, file: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
    let cli = Cli::from_arg_matches(matches)?;
    let (path, file) = match file {
        Some((path, text)) => (path.to_path_buf(), parse_file(path, text)?),
        None => (PathBuf::new(), FileConfig::default()),
    };
    // A value the command line or the environment gave beats the file; a default does not.
    let given = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let value = |key: &'static str, message: String| ConfigError::Value {
        path: path.clone(),
        key,
        message,
    };
    macro_rules! pick {
        ($id:literal, $key:literal, $cli:expr, $file:expr, $parse:expr) => {
            match $file {
                Some(text) if !given($id) => {
                    $parse(&text).map_err(|message| value($key, message))?
                }
                _ => $cli,
            }
        };
    }
    fn list<T>(items: &[String], parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
        items.iter().map(|item| parse(item)).collect()
    }
    let trusted_proxies = match file.trusted_proxy {
        Some(items) if !given("trusted_proxy") => {
            list(&items, parse_net).map_err(|message| value("trusted-proxy", message))?
        }
        _ => cli.trusted_proxy,
    };
    let wol_targets = match file.wol_target {
        Some(items) if !given("wol_target") => {
            list(&items, parse_socket_addr).map_err(|message| value("wol-target", message))?
        }
        _ => cli.wol_target,
    };
    let housekeeping_interval = match file.housekeeping_interval {
        Some(secs) if !given("housekeeping_interval") => {
            check_interval(secs).map_err(|message| value("housekeeping-interval", message))?
        }
        _ => cli.housekeeping_interval,
    };
    let self_registration = match file.self_registration {
        Some(on) if !given("self_registration") => on,
        _ => cli.self_registration,
    };
    let metrics_public = match file.metrics_public {
        Some(on) if !given("metrics_public") => on,
        _ => cli.metrics_public,
    };
    let data_dir = match file.data_dir {
        Some(dir) if !given("data_dir") => dir,
        _ => cli.data_dir,
    };
    let database = match file.database {
        Some(text) if !given("database") => {
            Some(parse_database(&text).map_err(|message| value("database", message))?)
        }
        _ => cli.database,
    }
    .unwrap_or_else(|| Database::Sqlite(data_dir.join(DATABASE_FILE)));
    let database_connections = match file.database_connections {
        Some(count) if !given("database_connections") => check_database_connections(count)
            .map_err(|message| value("database-connections", message))?,
        _ => cli.database_connections,
    };
    let database_ca = match file.database_ca {
        Some(path) if !given("database_ca") => Some(path),
        _ => cli.database_ca,
    };
    let synchronous = match file.synchronous {
        Some(mode) if !given("synchronous") => mode,
        _ => cli.synchronous,
    };
    let hello_cache_memory = match file.hello_cache_memory {
        Some(bytes) if !given("hello_cache_memory") => check_hello_cache_memory(bytes)
            .map_err(|message| value("hello-cache-memory", message))?,
        _ => cli.hello_cache_memory,
    };
    let agent_body_limit = match file.agent_body_limit {
        Some(bytes) if !given("agent_body_limit") => {
            check_body_limit(bytes).map_err(|message| value("agent-body-limit", message))?
        }
        _ => cli.agent_body_limit,
    };
    let max_job_output = match file.max_job_output {
        Some(bytes) if !given("max_job_output") => {
            check_job_output(bytes).map_err(|message| value("max-job-output", message))?
        }
        _ => cli.max_job_output,
    };
    let max_payload_size = match file.max_payload_size {
        Some(bytes) if !given("max_payload_size") => {
            check_payload_size(bytes).map_err(|message| value("max-payload-size", message))?
        }
        _ => cli.max_payload_size,
    };
    let admin_heavy_concurrency = match file.admin_heavy_concurrency {
        Some(count) if !given("admin_heavy_concurrency") => {
            check_admin_heavy(count).map_err(|message| value("admin-heavy-concurrency", message))?
        }
        _ => cli.admin_heavy_concurrency,
    };
    let max_clock_skew = match file.max_clock_skew {
        Some(secs) if !given("max_clock_skew") => {
            check_skew(secs).map_err(|message| value("max-clock-skew", message))?
        }
        _ => cli.max_clock_skew,
    };
    let timeout = |id: &str, key: &'static str, file: Option<u64>, cli: u64| match file {
        Some(secs) if !given(id) => check_timeout(secs).map_err(|message| value(key, message)),
        _ => Ok(cli),
    };
    let header_timeout = timeout(
        "header_timeout",
        "header-timeout",
        file.header_timeout,
        cli.header_timeout,
    )?;
    let body_timeout = timeout(
        "body_timeout",
        "body-timeout",
        file.body_timeout,
        cli.body_timeout,
    )?;
    let idle_timeout = timeout(
        "idle_timeout",
        "idle-timeout",
        file.idle_timeout,
        cli.idle_timeout,
    )?;
    let max_connections = match file.max_connections {
        Some(count) if !given("max_connections") => Some(
            check_max_connections(count).map_err(|message| value("max-connections", message))?,
        ),
        _ => cli.max_connections,
    };
    let shutdown_grace = match file.shutdown_grace {
        Some(secs) if !given("shutdown_grace") => {
            check_grace(secs).map_err(|message| value("shutdown-grace", message))?
        }
        _ => cli.shutdown_grace,
    };
    Ok(Config {
        listen: pick!(
            "listen",
            "listen",
            cli.listen,
            file.listen,
            parse_socket_addr
        ),
        data_dir,
        database,
        database_connections,
        database_ca,
        agent_path: pick!(
            "agent_path",
            "agent-path",
            cli.agent_path,
            file.agent_path,
            parse_agent_path
        ),
        time_zone: pick!(
            "time_zone",
            "time-zone",
            cli.time_zone,
            file.time_zone,
            parse_time_zone
        ),
        trusted_proxies,
        wol_targets,
        housekeeping_interval: Duration::from_secs(housekeeping_interval),
        self_registration,
        metrics_public,
        synchronous,
        hello_cache_memory,
        max_clock_skew: Duration::from_secs(max_clock_skew),
        agent_body_limit,
        max_job_output,
        header_timeout: Duration::from_secs(header_timeout),
        body_timeout: Duration::from_secs(body_timeout),
        idle_timeout: Duration::from_secs(idle_timeout),
        max_connections,
        shutdown_grace: Duration::from_secs(shutdown_grace),
        max_payload_size,
        admin_heavy_concurrency,
        log: match file.log {
            Some(filter) if !given("log") => Some(filter),
            _ => cli.log,
        },
        log_format: match file.log_format {
            Some(format) if !given("log_format") => format,
            _ => cli.log_format,
        },
    })
}

/// A thin server for OCO agents and administrators.
///
/// Serves the OCO agent protocol and an admin API under /api/v1 over an embedded SQLite
/// database. On first start it creates the database and a secrets file (the admin token, the
/// global agent key and the registration key) in the data directory and prints where it is.
///
/// Every option can also be given as an environment variable (shown with each option) or as a
/// key of the TOML file named by --config, using the option's long name (`wol-target = ["..."]`).
/// The command line beats the environment, which beats the file, which beats the default.
#[derive(Debug, Parser)]
#[command(name = "oco-server-min", version, max_term_width = 100)]
struct Cli {
    /// TOML file of options, keyed by their long names.
    #[arg(long, env = "OCO_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address and port the HTTP server listens on.
    #[arg(long, env = "OCO_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8080", value_parser = parse_socket_addr)]
    listen: SocketAddr,

    /// Directory of the database (oco.db), the secrets file (oco-secrets.toml) and package
    /// payloads (payloads/); created if missing.
    #[arg(long, env = "OCO_DATA_DIR", value_name = "DIR", default_value = ".")]
    data_dir: PathBuf,

    /// The database: a PostgreSQL URL (`postgres://user:password@host/dbname`), which several
    /// server processes may share, or `sqlite:PATH`. Default: SQLite, oco.db in the data
    /// directory. The secrets file and the payloads stay in the data directory: processes
    /// sharing a database share it too (see the README).
    #[arg(long, env = "OCO_DATABASE", value_name = "URL", value_parser = parse_database)]
    database: Option<Database>,

    /// The most connections to a PostgreSQL database this process opens for its requests (two
    /// more listen to other processes' writes and hold the housekeeping lock). Few are
    /// faster: requests waiting for a connection share its commits, and each connection is a
    /// PostgreSQL process competing for the database's cores.
    #[arg(long, env = "OCO_DATABASE_CONNECTIONS", value_name = "COUNT", default_value = "4", value_parser = parse_database_connections)]
    database_connections: usize,

    /// With `sslmode=require` in the PostgreSQL URL: the PEM file of the CA that signs the
    /// server's certificate (default: the system's trusted certificates). The server's
    /// certificate and name are always verified when TLS is used; `sslmode=prefer` (the
    /// default) and `disable` connect without TLS.
    #[arg(long, env = "OCO_DATABASE_CA", value_name = "FILE")]
    database_ca: Option<PathBuf>,

    /// Path of the agent API (the agents' `api-url` ends with it).
    #[arg(long, env = "OCO_AGENT_PATH", value_name = "PATH", default_value = "/api-agent.php", value_parser = parse_agent_path)]
    agent_path: String,

    /// Time zone of new delivery policies that name none (IANA name, e.g. Europe/Berlin).
    #[arg(long, env = "OCO_TIME_ZONE", value_name = "ZONE", default_value = "UTC", value_parser = parse_time_zone)]
    time_zone: Tz,

    /// Proxy (address or CIDR range) whose X-Forwarded-For header names the agent's address;
    /// repeatable, comma-separated in the environment.
    #[arg(long, env = "OCO_TRUSTED_PROXY", value_name = "CIDR", value_delimiter = ',', value_parser = parse_net)]
    trusted_proxy: Vec<IpNet>,

    /// Where Wake-on-LAN magic packets go (a broadcast address and port); repeatable,
    /// comma-separated in the environment.
    #[arg(long, env = "OCO_WOL_TARGET", value_name = "ADDR:PORT", value_delimiter = ',', default_value = "255.255.255.255:9", value_parser = parse_socket_addr)]
    wol_target: Vec<SocketAddr>,

    /// Seconds between housekeeping runs (expiry, purge, Wake-on-LAN).
    #[arg(long, env = "OCO_HOUSEKEEPING_INTERVAL", value_name = "SECS", default_value = "60", value_parser = parse_interval)]
    housekeeping_interval: u64,

    /// Let unknown computers register with the registration key from the secrets file.
    #[arg(long, env = "OCO_SELF_REGISTRATION", value_parser = clap::builder::BoolishValueParser::new())]
    self_registration: bool,

    /// Serve /metrics without an admin token (by default it needs one; a read-only token will
    /// do). Only where the port is not reachable by those who should not see the figures.
    #[arg(long, env = "OCO_METRICS_PUBLIC", value_parser = clap::builder::BoolishValueParser::new())]
    metrics_public: bool,

    /// Durability: `normal` survives a crash of the server, `full` also a power loss (an fsync
    /// per commit).
    #[arg(
        long,
        env = "OCO_SYNCHRONOUS",
        value_name = "MODE",
        default_value = "normal"
    )]
    synchronous: Synchronous,

    /// The memory, in bytes, of the hello cache: what each polling computer with pending jobs
    /// is handed out, kept until its jobs, their origins, the agent's address or a time-frame
    /// edge change it, so that a repeated poll reads only the computer's credentials. A computer
    /// whose jobs are held takes about 200 bytes, one with 20 jobs to hand out about 1 KiB;
    /// computers without pending jobs take nothing. When full, the least useful entries go
    /// (S3-FIFO). 0 turns the cache off.
    #[arg(long, env = "OCO_HELLO_CACHE_MEMORY", value_name = "BYTES", default_value_t = oco_agent_protocol::cache::DEFAULT_MEMORY, value_parser = parse_hello_cache_memory)]
    hello_cache_memory: u64,

    /// Seconds an agent's timestamp may be ahead of the server clock. A request from further
    /// ahead is refused (401) and nothing of it is stored: its timestamp would otherwise become
    /// the computer's replay guard and refuse every later request.
    #[arg(long, env = "OCO_MAX_CLOCK_SKEW", value_name = "SECS", default_value = "600", value_parser = parse_skew)]
    max_clock_skew: u64,

    /// The largest agent request body, in bytes (a job report carries the job's whole output).
    /// A larger one is refused with 413, by its Content-Length before it is read, or when it
    /// grows past the limit; the content type and the signature header are checked first.
    #[arg(long, env = "OCO_AGENT_BODY_LIMIT", value_name = "BYTES", default_value_t = crate::BODY_LIMIT, value_parser = parse_body_limit)]
    agent_body_limit: usize,

    /// The most of a job's output kept, in bytes (the agent sends the whole output with every
    /// report). A longer one keeps its first and last halves around a line saying how much was
    /// left out.
    #[arg(long, env = "OCO_MAX_JOB_OUTPUT", value_name = "BYTES", default_value = "1048576", value_parser = parse_job_output)]
    max_job_output: usize,

    /// Seconds a client may take to send a request head: from connecting, or from the first
    /// byte of a request on a kept-alive connection. Then the connection is closed.
    #[arg(long, env = "OCO_HEADER_TIMEOUT", value_name = "SECS", default_value = "10", value_parser = parse_timeout)]
    header_timeout: u64,

    /// Seconds a request body may bring no byte, or a response have no byte taken by the
    /// client, before the connection is closed. A pause between reads, not a limit on a whole
    /// upload or download.
    #[arg(long, env = "OCO_BODY_TIMEOUT", value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    body_timeout: u64,

    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "OCO_IDLE_TIMEOUT", value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    idle_timeout: u64,

    /// The most connections open at once. At the limit a new connection takes the place of the
    /// oldest one that is idle, half-way through its request head, or stalled in its request
    /// body; when every one is busy, it waits. Default: half the descriptor limit (raised to
    /// the hard limit at start) less 64, at most 10000; a larger value is lowered to that, with
    /// a warning.
    #[arg(long, env = "OCO_MAX_CONNECTIONS", value_name = "COUNT", value_parser = parse_max_connections)]
    max_connections: Option<usize>,

    /// Seconds requests in flight (a download, say) may take to finish after SIGTERM or SIGINT;
    /// idle and stalled connections are closed at once.
    #[arg(long, env = "OCO_SHUTDOWN_GRACE", value_name = "SECS", default_value = "60", value_parser = parse_grace)]
    shutdown_grace: u64,
    /// The largest package payload an upload may send, in bytes (16 GiB by default). Uploads
    /// are streamed to disk, so this bounds the disk an upload can fill, not memory; a body over
    /// it is refused with 413 (before it is read when its Content-Length says so).
    #[arg(long, env = "OCO_MAX_PAYLOAD_SIZE", value_name = "BYTES", default_value = "17179869184", value_parser = parse_payload_size)]
    max_payload_size: u64,
    /// How many heavy admin operations run at once: those that re-evaluate deployment rules
    /// (group, package group and rule changes, package edits), deploy, renew or delete a
    /// container, or compute statistics. Each may read many computers and jobs; others wait
    /// for their turn, up to 30 s, and are then refused with 503 and `Retry-After`.
    #[arg(long, env = "OCO_ADMIN_HEAVY_CONCURRENCY", value_name = "COUNT", default_value_t = crate::state::ADMIN_HEAVY_CONCURRENCY, value_parser = parse_admin_heavy)]
    admin_heavy_concurrency: usize,

    /// Log filter (tracing's EnvFilter syntax, e.g. `info,oco_server_min=debug`); without it,
    /// RUST_LOG, else `info`.
    #[arg(long, env = "OCO_LOG", value_name = "FILTER")]
    log: Option<String>,

    /// How log lines are written: `text`, or `json` (one object per line) for log collectors.
    #[arg(
        long,
        env = "OCO_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

/// The configuration file's keys: the options' long names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    database_connections: Option<usize>,
    database_ca: Option<PathBuf>,
    agent_path: Option<String>,
    time_zone: Option<String>,
    trusted_proxy: Option<Vec<String>>,
    wol_target: Option<Vec<String>>,
    housekeeping_interval: Option<u64>,
    self_registration: Option<bool>,
    metrics_public: Option<bool>,
    synchronous: Option<Synchronous>,
    hello_cache_memory: Option<u64>,
    max_clock_skew: Option<u64>,
    agent_body_limit: Option<usize>,
    max_job_output: Option<usize>,
    header_timeout: Option<u64>,
    body_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    max_connections: Option<usize>,
    shutdown_grace: Option<u64>,
    max_payload_size: Option<u64>,
    admin_heavy_concurrency: Option<usize>,
    log: Option<String>,
    log_format: Option<LogFormat>,
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|error| ConfigError::File {
        path: path.to_path_buf(),
        message: error.to_string().trim_end().to_string(),
    })
}

fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("`{text}` is not an address and port (`192.0.2.1:8080`, `[::1]:8080`)")
    })
}

fn parse_agent_path(text: &str) -> Result<String, String> {
    let taken = ["/healthz", "/readyz", "/metrics"].contains(&text)
        || text == crate::admin_api::PREFIX
        || text.starts_with(&format!("{}/", crate::admin_api::PREFIX));
    if taken {
        Err(format!(
            "`{text}` is one of the server's own routes (`/healthz`, `/readyz`, `/metrics`, \
             `/api/v1/…`)"
        ))
    } else if text.starts_with('/') && !text.contains(['?', '#', ' ']) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a path (it starts with `/`, without query or spaces)"
        ))
    }
}

fn parse_time_zone(text: &str) -> Result<Tz, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IANA time zone (e.g. `UTC`, `Europe/Berlin`)"))
}

/// A CIDR range, or a bare address meaning that one host.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not an address or CIDR range (`10.0.0.0/8`, `::1`)"))?;
    // As in IP constraints: host bits below the prefix are a mistake, not a range.
    if net.trunc() != net {
        return Err(format!(
            "`{text}`: host bits are set below the prefix length; did you mean `{}`?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A whole number of `unit` (`seconds`, `bytes`) written in `text`.
fn whole<T: std::str::FromStr>(text: &str, unit: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of {unit}"))
}

fn parse_interval(text: &str) -> Result<u64, String> {
    whole(text, "seconds").and_then(check_interval)
}

fn check_interval(secs: u64) -> Result<u64, String> {
    // An upper bound keeps `Duration` arithmetic in tokio's timers far from overflow.
    if (1..=86_400 * 365).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{secs} is not between 1 and 31536000 seconds (a year)"
        ))
    }
}

fn parse_body_limit(text: &str) -> Result<usize, String> {
    whole(text, "bytes").and_then(check_body_limit)
}

fn check_body_limit(bytes: usize) -> Result<usize, String> {
    // A hello of the OCO agent with its inventory is about 52 KB.
    if (64 * 1024..=1024 * 1024 * 1024).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "{bytes} is not between 65536 bytes (64 KiB) and 1073741824 bytes (1 GiB)"
        ))
    }
}

fn parse_admin_heavy(text: &str) -> Result<usize, String> {
    whole(text, "operations").and_then(check_admin_heavy)
}

fn check_admin_heavy(count: usize) -> Result<usize, String> {
    if (1..=64).contains(&count) {
        Ok(count)
    } else {
        Err(format!("{count} is not between 1 and 64"))
    }
}

fn parse_job_output(text: &str) -> Result<usize, String> {
    whole(text, "bytes").and_then(check_job_output)
}

fn check_job_output(bytes: usize) -> Result<usize, String> {
    if (4096..=crate::BODY_LIMIT).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!(
            "{bytes} is not between 4096 bytes and {} bytes (64 MiB)",
            crate::BODY_LIMIT
        ))
    }
}

fn parse_payload_size(text: &str) -> Result<u64, String> {
    whole(text, "bytes").and_then(check_payload_size)
}

fn check_payload_size(bytes: u64) -> Result<u64, String> {
    // The smallest zip archive (an empty one) is 22 bytes; SQLite records sizes as i64.
    const MAX: u64 = i64::MAX as u64;
    if (22..=MAX).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!("{bytes} is not between 22 bytes and {MAX} bytes"))
    }
}

fn parse_hello_cache_memory(text: &str) -> Result<u64, String> {
    whole(text, "bytes").and_then(check_hello_cache_memory)
}

fn check_hello_cache_memory(bytes: u64) -> Result<u64, String> {
    const MAX: u64 = 1 << 40;
    if bytes <= MAX {
        Ok(bytes)
    } else {
        Err(format!("{bytes} is more than {MAX} bytes (1 TiB)"))
    }
}

fn parse_skew(text: &str) -> Result<u64, String> {
    whole(text, "seconds").and_then(check_skew)
}

fn check_skew(secs: u64) -> Result<u64, String> {
    if secs <= 86_400 {
        Ok(secs)
    } else {
        Err(format!("{secs} is more than 86400 seconds (a day)"))
    }
}

fn parse_timeout(text: &str) -> Result<u64, String> {
    whole(text, "seconds").and_then(check_timeout)
}

fn check_timeout(secs: u64) -> Result<u64, String> {
    if (1..=86_400).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!("{secs} is not between 1 and 86400 seconds (a day)"))
    }
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    whole(text, "connections").and_then(check_max_connections)
}

fn check_max_connections(count: usize) -> Result<usize, String> {
    if (1..=1_000_000).contains(&count) {
        Ok(count)
    } else {
        Err(format!("{count} is not between 1 and 1000000 connections"))
    }
}

fn parse_grace(text: &str) -> Result<u64, String> {
    whole(text, "seconds").and_then(check_grace)
}

fn check_grace(secs: u64) -> Result<u64, String> {
    if secs <= 3_600 {
        Ok(secs)
    } else {
        Err(format!("{secs} is more than 3600 seconds (an hour)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(args: &[&str]) -> ArgMatches {
        let mut all = vec!["oco-server-min"];
        all.extend_from_slice(args);
        command().try_get_matches_from(all).unwrap()
    }

    /// The command with each of `vars`' options reading its environment variable, named
    /// uniquely for the test so that tests running in parallel never share one.
    fn matches_with_env(args: &[&str], vars: &[(&str, &'static str, &str)]) -> ArgMatches {
        let mut command = command();
        for (id, name, value) in vars {
            std::env::set_var(name, value);
            command = command.mut_arg(*id, |arg| arg.env(*name));
        }
        let mut all = vec!["oco-server-min"];
        all.extend_from_slice(args);
        command.try_get_matches_from(all).unwrap()
    }

    fn file(text: &str) -> Option<(&'static Path, &str)> {
        Some((Path::new("oco.toml"), text))
    }

    #[test]
    fn defaults() {
        let config = resolve(&matches(&[]), None).unwrap();
        assert_eq!(
            config,
            Config {
                listen: "127.0.0.1:8080".parse().unwrap(),
                data_dir: PathBuf::from("."),
                database: Database::Sqlite(PathBuf::from("./oco.db")),
                database_connections: 4,
                database_ca: None,
                agent_path: "/api-agent.php".into(),
                time_zone: Tz::UTC,
                trusted_proxies: vec![],
                wol_targets: vec!["255.255.255.255:9".parse().unwrap()],
                housekeeping_interval: Duration::from_secs(60),
                self_registration: false,
                metrics_public: false,
                synchronous: Synchronous::Normal,
                hello_cache_memory: oco_agent_protocol::cache::DEFAULT_MEMORY,
                max_clock_skew: Duration::from_secs(600),
                agent_body_limit: 64 * 1024 * 1024,
                max_job_output: 1024 * 1024,
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(30),
                max_connections: None,
                shutdown_grace: Duration::from_secs(60),
                max_payload_size: 16 * 1024 * 1024 * 1024,
                admin_heavy_concurrency: 2,
                log: None,
                log_format: LogFormat::Text,
            }
        );
        assert_eq!(config.database_path(), Some(Path::new("./oco.db")));
        assert!(config.server_options().inline_reads);
        assert!(!config.server_options().other_writers);
        assert_eq!(config.secrets_path(), Path::new("./oco-secrets.toml"));
        assert_eq!(config.server_options().payload_dir, Path::new("./payloads"));
        assert_eq!(
            config.store_options().synchronous,
            oco_store_sqlite::Synchronous::Normal
        );
    }

    #[test]
    fn the_database_is_sqlite_in_the_data_dir_unless_named() {
        let config = resolve(&matches(&["--data-dir", "/srv/oco"]), None).unwrap();
        assert_eq!(config.database, Database::Sqlite("/srv/oco/oco.db".into()));
        let config = resolve(&matches(&["--database", "sqlite:/tmp/x.db"]), None).unwrap();
        assert_eq!(config.database_path(), Some(Path::new("/tmp/x.db")));

        let url = "postgres://oco:s3cret@db.example:5432/oco?sslmode=require";
        let config = resolve(
            &matches(&[
                "--database",
                url,
                "--database-connections",
                "40",
                "--database-ca",
                "/etc/oco/db-ca.pem",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            config.postgres_options().ca_file.as_deref(),
            Some(Path::new("/etc/oco/db-ca.pem"))
        );
        assert_eq!(config.database, Database::Postgres(url.into()));
        assert_eq!(config.database_path(), None);
        assert_eq!(config.postgres_options().max_connections, 40);
        let options = config.server_options();
        assert!(!options.inline_reads && options.other_writers);
        // Neither the log line nor `Debug` shows the password.
        let described = config.database.describe();
        assert_eq!(
            described,
            "PostgreSQL postgres://oco:***@db.example:5432/oco?sslmode=require"
        );
        assert!(!format!("{config:?}").contains("s3cret"));

        // The file names it too; the command line beats the file.
        let config = resolve(
            &matches(&[]),
            file(
                "database = \"postgresql://oco@db/oco\"\ndatabase-connections = 4\n\
                 database-ca = \"/srv/ca.pem\"",
            ),
        )
        .unwrap();
        assert_eq!(
            config.database_ca.as_deref(),
            Some(Path::new("/srv/ca.pem"))
        );
        assert_eq!(
            config.database,
            Database::Postgres("postgresql://oco@db/oco".into())
        );
        assert_eq!(config.database_connections, 4);
        let config = resolve(
            &matches(&["--database", "sqlite:a.db"]),
            file("database = \"postgresql://oco@db/oco\""),
        )
        .unwrap();
        assert_eq!(config.database, Database::Sqlite("a.db".into()));
    }

    #[test]
    fn a_database_that_is_neither_is_refused() {
        let err = command()
            .try_get_matches_from(["oco-server-min", "--database", "mysql://u:pw@h/db"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a database"), "{err}");
        // (clap quotes the argument as given; the explanation does not repeat the password.)
        assert!(
            err.contains("`mysql://u:***@h/db` is not a database"),
            "{err}"
        );
        let err = resolve(&matches(&[]), file("database = \"sqlite:\"")).unwrap_err();
        assert!(err.to_string().contains("`database`"), "{err}");
        let err = command()
            .try_get_matches_from(["oco-server-min", "--database-connections", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not between 1 and 1000"), "{err}");
    }

    #[test]
    fn the_file_beats_the_defaults() {
        let text = r#"
            listen = "0.0.0.0:9000"
            data-dir = "/var/lib/oco"
            agent-path = "/oco/api-agent.php"
            time-zone = "Europe/Berlin"
            trusted-proxy = ["10.0.0.1", "192.168.0.0/16"]
            wol-target = ["192.168.1.255:9", "10.1.255.255:7"]
            housekeeping-interval = 30
            self-registration = true
            metrics-public = true
            synchronous = "full"
            hello-cache-memory = 0
            max-clock-skew = 30
            agent-body-limit = 1048576
            max-job-output = 8192
            header-timeout = 5
            body-timeout = 20
            idle-timeout = 3
            max-connections = 300
            shutdown-grace = 0
            max-payload-size = 1048576
            admin-heavy-concurrency = 4
            log = "debug"
            log-format = "json"
        "#;
        let config = resolve(&matches(&[]), file(text)).unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        // The command line beats the file.
        let config = resolve(&matches(&["--log-format", "text"]), file(text)).unwrap();
        assert_eq!(config.log_format, LogFormat::Text);
        let config = resolve(&matches(&[]), file(text)).unwrap();
        assert!(config.metrics_public);
        assert!(config.server_options().metrics_public);
        assert!(!resolve(&matches(&[]), file("")).unwrap().metrics_public);
        assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.data_dir, Path::new("/var/lib/oco"));
        assert_eq!(config.agent_path, "/oco/api-agent.php");
        assert_eq!(config.time_zone, Tz::Europe__Berlin);
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.1/32".parse::<IpNet>().unwrap(),
                "192.168.0.0/16".parse().unwrap()
            ]
        );
        assert_eq!(
            config.wol_targets,
            vec![
                "192.168.1.255:9".parse::<SocketAddr>().unwrap(),
                "10.1.255.255:7".parse().unwrap()
            ]
        );
        assert_eq!(config.housekeeping_interval, Duration::from_secs(30));
        assert!(config.self_registration);
        assert_eq!(config.synchronous, Synchronous::Full);
        assert_eq!(config.hello_cache_memory, 0);
        assert_eq!(
            config.server_options().max_clock_skew,
            Duration::from_secs(30)
        );
        assert_eq!(config.server_options().agent_body_limit, 1_048_576);
        assert_eq!(config.server_options().max_job_output, 8192);
        assert_eq!(config.server_options().max_payload_size, 1_048_576);
        assert_eq!(config.server_options().admin_heavy_concurrency, 4);
        assert_eq!(config.server_options().hello_cache_memory, 0);
        assert_eq!(config.log.as_deref(), Some("debug"));
        assert_eq!(
            config.connection_options(300),
            ConnectionOptions {
                header_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(20),
                idle_timeout: Duration::from_secs(3),
                max_connections: 300,
                shutdown_grace: Duration::ZERO,
            }
        );
        assert_eq!(config.max_connections, Some(300));
        assert_eq!(
            config.store_options().synchronous,
            oco_store_sqlite::Synchronous::Full
        );
    }

    #[test]
    fn the_environment_beats_the_file() {
        let text = r#"
            listen = "0.0.0.0:9000"
            wol-target = ["192.168.1.255:9"]
            self-registration = true
            time-zone = "Europe/Berlin"
        "#;
        let matches = matches_with_env(
            &[],
            &[
                ("listen", "OCO_TEST_ENV_BEATS_FILE_LISTEN", "127.0.0.1:7000"),
                (
                    "wol_target",
                    "OCO_TEST_ENV_BEATS_FILE_WOL",
                    "10.0.0.255:9,10.1.0.255:9",
                ),
                (
                    "self_registration",
                    "OCO_TEST_ENV_BEATS_FILE_SELF_REG",
                    "no",
                ),
            ],
        );
        let config = resolve(&matches, file(text)).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(
            config.wol_targets,
            vec![
                "10.0.0.255:9".parse::<SocketAddr>().unwrap(),
                "10.1.0.255:9".parse().unwrap()
            ]
        );
        assert!(!config.self_registration);
        // Not in the environment: the file's.
        assert_eq!(config.time_zone, Tz::Europe__Berlin);
    }

    #[test]
    fn the_command_line_beats_the_environment() {
        let matches = matches_with_env(
            &["--listen", "127.0.0.1:6000", "--housekeeping-interval", "5"],
            &[
                ("listen", "OCO_TEST_CLI_BEATS_ENV_LISTEN", "127.0.0.1:7000"),
                ("housekeeping_interval", "OCO_TEST_CLI_BEATS_ENV_HK", "10"),
                ("agent_path", "OCO_TEST_CLI_BEATS_ENV_PATH", "/agent"),
            ],
        );
        let config = resolve(&matches, file("listen = \"0.0.0.0:1\"")).unwrap();
        assert_eq!(config.listen, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(config.housekeeping_interval, Duration::from_secs(5));
        assert_eq!(config.agent_path, "/agent");
    }

    #[test]
    fn repeatable_options_accumulate_and_replace_the_file() {
        let matches = matches(&[
            "--wol-target",
            "192.168.1.255:9",
            "--wol-target",
            "[ff02::1]:9",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "::1",
        ]);
        let config = resolve(&matches, file("wol-target = [\"10.9.9.255:9\"]")).unwrap();
        assert_eq!(
            config.wol_targets,
            vec![
                "192.168.1.255:9".parse::<SocketAddr>().unwrap(),
                "[ff02::1]:9".parse().unwrap()
            ]
        );
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let err = resolve(
            &matches(&[]),
            file("listen = \"0.0.0.0:1\"\nwol-targets = []\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("configuration file oco.toml: "), "{err}");
        assert!(err.contains("unknown field `wol-targets`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn invalid_values_in_the_file_name_their_key() {
        let cases = [
            (
                "time-zone = \"Mars/Olympus\"",
                "configuration file oco.toml: `time-zone`: `Mars/Olympus` is not an IANA time zone (e.g. `UTC`, `Europe/Berlin`)",
            ),
            (
                "wol-target = [\"255.255.255.255\"]",
                "configuration file oco.toml: `wol-target`: `255.255.255.255` is not an address and port (`192.0.2.1:8080`, `[::1]:8080`)",
            ),
            (
                "trusted-proxy = [\"10.0.0.1/24\"]",
                "configuration file oco.toml: `trusted-proxy`: `10.0.0.1/24`: host bits are set below the prefix length; did you mean `10.0.0.0/24`?",
            ),
            (
                "housekeeping-interval = 0",
                "configuration file oco.toml: `housekeeping-interval`: 0 is not between 1 and 31536000 seconds (a year)",
            ),
            (
                "max-clock-skew = 86401",
                "configuration file oco.toml: `max-clock-skew`: 86401 is more than 86400 seconds (a day)",
            ),
            (
                "header-timeout = 0",
                "configuration file oco.toml: `header-timeout`: 0 is not between 1 and 86400 seconds (a day)",
            ),
            (
                "idle-timeout = 86401",
                "configuration file oco.toml: `idle-timeout`: 86401 is not between 1 and 86400 seconds (a day)",
            ),
            (
                "max-connections = 0",
                "configuration file oco.toml: `max-connections`: 0 is not between 1 and 1000000 connections",
            ),
            (
                "shutdown-grace = 3601",
                "configuration file oco.toml: `shutdown-grace`: 3601 is more than 3600 seconds (an hour)",
            ),
            (
                "max-payload-size = 0",
                "configuration file oco.toml: `max-payload-size`: 0 is not between 22 bytes and 9223372036854775807 bytes",
            ),
            (
                "agent-path = \"api-agent.php\"",
                "configuration file oco.toml: `agent-path`: `api-agent.php` is not a path (it starts with `/`, without query or spaces)",
            ),
        ];
        for (text, expected) in cases {
            let err = resolve(&matches(&[]), file(text)).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        let err = resolve(&matches(&[]), file("synchronous = \"sometimes\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `sometimes`"), "{err}");
    }

    #[test]
    fn an_invalid_time_zone_is_an_error() {
        let err = command()
            .try_get_matches_from(["oco-server-min", "--time-zone", "Europe/Bärlin"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(
            text.contains("`Europe/Bärlin` is not an IANA time zone"),
            "{text}"
        );
        assert!(text.contains("--time-zone"), "{text}");
    }

    #[test]
    fn invalid_command_line_values_are_errors() {
        for args in [
            ["--listen", "localhost"],
            ["--housekeeping-interval", "0"],
            ["--synchronous", "off"],
            ["--trusted-proxy", "10.0.0.0/33"],
            ["--max-clock-skew", "-1"],
            ["--max-clock-skew", "86401"],
            ["--agent-body-limit", "1000"],
            ["--max-job-output", "100"],
            ["--header-timeout", "0"],
            ["--body-timeout", "1.5"],
            ["--idle-timeout", "-1"],
            ["--max-connections", "0"],
            ["--shutdown-grace", "3601"],
            ["--max-payload-size", "21"],
            ["--max-payload-size", "16GiB"],
            ["--max-payload-size", "9223372036854775808"],
            ["--admin-heavy-concurrency", "0"],
            ["--admin-heavy-concurrency", "many"],
        ] {
            let mut all = vec!["oco-server-min"];
            all.extend_from_slice(&args);
            assert!(command().try_get_matches_from(all).is_err(), "{args:?}");
        }
    }

    #[test]
    fn help_has_a_line_per_option() {
        let help = command().render_long_help().to_string();
        for option in [
            "--config",
            "--listen",
            "--data-dir",
            "--agent-path",
            "--time-zone",
            "--trusted-proxy",
            "--wol-target",
            "--housekeeping-interval",
            "--self-registration",
            "--synchronous",
            "--max-clock-skew",
            "--agent-body-limit",
            "--max-job-output",
            "--header-timeout",
            "--body-timeout",
            "--idle-timeout",
            "--max-connections",
            "--shutdown-grace",
            "--max-payload-size",
            "--admin-heavy-concurrency",
            "--log",
        ] {
            assert!(help.contains(option), "{option} missing from\n{help}");
        }
        assert!(help.contains("[env: OCO_LISTEN="), "{help}");
    }

    #[test]
    fn the_log_filter_falls_back_to_rust_log_then_info() {
        let mut config = resolve(&matches(&[]), None).unwrap();
        assert_eq!(config.log_filter(None), "info");
        assert_eq!(config.log_filter(Some("warn".into())), "warn");
        config.log = Some("debug".into());
        assert_eq!(config.log_filter(Some("warn".into())), "debug");
    }

    #[test]
    fn no_file_is_fine_and_an_empty_file_changes_nothing() {
        let plain = resolve(&matches(&[]), None).unwrap();
        assert_eq!(resolve(&matches(&[]), file("")).unwrap(), plain);
    }

    #[test]
    fn the_agent_path_cannot_be_one_of_the_servers_routes() {
        for path in [
            "/metrics",
            "/healthz",
            "/readyz",
            "/api/v1",
            "/api/v1/computers",
        ] {
            let err = parse_agent_path(path).unwrap_err();
            assert!(err.contains("server's own routes"), "{path}: {err}");
        }
        assert_eq!(parse_agent_path("/api/v10").unwrap(), "/api/v10");
        assert_eq!(
            parse_agent_path("/api-agent.php").unwrap(),
            "/api-agent.php"
        );
    }
}
