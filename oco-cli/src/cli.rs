//! The command line: global options and one subcommand per resource and action.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The administrators' client of an oco server's admin API.
///
/// The server's address and the admin token come from the flags, else the environment
/// (OCO_SERVER, OCO_TOKEN, OCO_TOKEN_FILE), else the config file (--config, OCO_CONFIG, else
/// $XDG_CONFIG_HOME/oco/config.toml or ~/.config/oco/config.toml) with the keys `server`,
/// `token` and `token-file`. A file holding the token must be private to its owner (chmod 600).
///
/// Output is a table for people, or the API's JSON with --json (a listing's pages merged into
/// one array). Exit status: 0 done, 1 an error (the server's refusal, an unreachable server, a
/// bad setting), 2 a usage mistake, 3 a watched container ended with failed, expired or
/// incompatible jobs.
#[derive(Debug, Parser)]
#[command(name = "oco", version, max_term_width = 100)]
pub struct Cli {
    /// What to talk to and how.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The server's address, e.g. http://127.0.0.1:8080 [env: OCO_SERVER]
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The admin token [env: OCO_TOKEN]; visible to other users in the process list, so prefer
    /// --token-file or the environment
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the admin token [env: OCO_TOKEN_FILE]
    #[arg(long, global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// The config file [env: OCO_CONFIG] [default: ~/.config/oco/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the API's JSON instead of tables (a listing: its items as one array)
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for a connection
    #[arg(long, global = true, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    pub connect_timeout: Duration,
    /// Seconds the server may stay silent while answering
    #[arg(long, global = true, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub read_timeout: Duration,
}

/// The resources.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Managed computers
    #[command(subcommand)]
    Computers(Computers),
    /// Package families (a package is a version of one)
    #[command(subcommand)]
    Families(Families),
    /// Packages and their payloads
    #[command(subcommand)]
    Packages(Packages),
    /// Job containers: deploy, watch, renew
    #[command(subcommand)]
    Containers(Containers),
    /// Deployment rules
    #[command(subcommand)]
    Rules(Rules),
    /// Jobs: list, show, explain why one is held
    #[command(subcommand)]
    Jobs(Jobs),
    /// Admin tokens
    #[command(subcommand)]
    Tokens(Tokens),
}

/// How much of a listing to read.
#[derive(Debug, Clone, Copy, Args)]
pub struct Listing {
    /// Show at most this many items; a note on stderr says when more follow
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Start after this id (the `--after` a cut-off listing names)
    #[arg(long, value_name = "ID")]
    pub after: Option<i64>,
}

/// `oco computers …`
#[derive(Debug, Subcommand)]
pub enum Computers {
    /// List computers
    List(Listing),
    /// Show one computer, with its agent's last hello
    Show {
        /// The computer's id
        id: i64,
    },
}

/// `oco families …`
#[derive(Debug, Subcommand)]
pub enum Families {
    /// List package families
    List(Listing),
    /// Create a package family
    Create {
        /// Its name
        name: String,
    },
}

/// `oco packages …`
#[derive(Debug, Subcommand)]
pub enum Packages {
    /// List packages
    List(Listing),
    /// Show one package
    Show {
        /// The package's id
        id: i64,
    },
    /// Create a package (a version of a family), and upload its payload with --payload
    Create(Box<NewPackage>),
    /// Upload a package's payload, a zip archive, streamed from disk with a progress bar
    Upload {
        /// The package's id
        id: i64,
        /// The zip archive
        file: PathBuf,
    },
}

/// `oco packages create`'s options: the fields of the API's package.
#[derive(Debug, Args)]
pub struct NewPackage {
    /// The family's id (`oco families list`)
    #[arg(long, value_name = "ID")]
    pub family: i64,
    /// The version, unique within the family
    #[arg(long)]
    pub version: String,
    /// The install command, run in the unpacked payload's directory
    #[arg(long, value_name = "COMMAND")]
    pub install: Option<String>,
    /// Return codes that mean success for the install, e.g. `0,3010` or `*` [server default: 0]
    #[arg(long, value_name = "CODES")]
    pub install_codes: Option<String>,
    /// What the agent does after a successful install: none, restart, shutdown, exit-agent
    #[arg(long, value_name = "ACTION")]
    pub install_post_action: Option<String>,
    /// The uninstall command
    #[arg(long, value_name = "COMMAND")]
    pub uninstall: Option<String>,
    /// Return codes that mean success for the uninstall
    #[arg(long, value_name = "CODES")]
    pub uninstall_codes: Option<String>,
    /// What the agent does after a successful uninstall
    #[arg(long, value_name = "ACTION")]
    pub uninstall_post_action: Option<String>,
    /// Download the payload for uninstalling too
    #[arg(long)]
    pub download_for_uninstall: bool,
    /// keep-others, implicit-remove or explicit-uninstall
    #[arg(long, value_name = "BEHAVIOR")]
    pub upgrade_behavior: Option<String>,
    /// Operating systems it fits (repeat or separate with commas; none: any)
    #[arg(long, value_name = "OS", value_delimiter = ',')]
    pub os: Vec<String>,
    /// Operating system versions it fits
    #[arg(long, value_name = "VERSION", value_delimiter = ',')]
    pub os_version: Vec<String>,
    /// Architectures it fits
    #[arg(long, value_name = "ARCH", value_delimiter = ',')]
    pub architecture: Vec<String>,
    /// Packages it depends on, by id
    #[arg(long = "depends-on", value_name = "ID", value_delimiter = ',')]
    pub dependencies: Vec<i64>,
    /// A zip archive to upload as its payload once it is created
    #[arg(long, value_name = "FILE")]
    pub payload: Option<PathBuf>,
}

/// `oco containers …`
#[derive(Debug, Subcommand)]
pub enum Containers {
    /// List job containers
    List(Listing),
    /// Show one container
    Show {
        /// The container's id
        id: i64,
    },
    /// Deploy packages to computers: a new container with a job per computer and package
    Deploy(Box<Deploy>),
    /// Follow a container's jobs until none is pending: a progress bar, the counts per state
    /// and the failures; exit status 3 when a job failed, expired or was incompatible
    Watch(Watch),
    /// Renew failed jobs (Failed, Expired, Incompatible) to run again
    Renew {
        /// The container's id
        id: i64,
        /// Only these jobs (repeat or separate with commas; none: every failed job)
        #[arg(long = "job", value_name = "ID", value_delimiter = ',')]
        jobs: Vec<i64>,
        /// Copy them into a new container of this name instead of renewing them in place
        #[arg(long, value_name = "NAME")]
        into: Option<String>,
    },
}

/// `oco containers watch`'s options.
#[derive(Debug, Clone, Args)]
pub struct Watch {
    /// The container's id
    pub id: i64,
    /// Seconds between two looks at the container
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds)]
    pub interval: Duration,
}

/// `oco containers deploy`'s options: the API's deploy request.
#[derive(Debug, Args)]
pub struct Deploy {
    /// The new container's name
    #[arg(long)]
    pub name: String,
    /// Target computers, by id (repeat or separate with commas)
    #[arg(long = "computer", value_name = "ID", value_delimiter = ',')]
    pub computers: Vec<i64>,
    /// Target computer groups, by id
    #[arg(long = "computer-group", value_name = "ID", value_delimiter = ',')]
    pub computer_groups: Vec<i64>,
    /// Packages to install, by id
    #[arg(long = "package", value_name = "ID", value_delimiter = ',')]
    pub packages: Vec<i64>,
    /// Package groups to install, by id
    #[arg(long = "package-group", value_name = "ID", value_delimiter = ',')]
    pub package_groups: Vec<i64>,
    /// Install even where the package is already installed
    #[arg(long)]
    pub force_reinstall: bool,
    /// Notes on the container
    #[arg(long)]
    pub notes: Option<String>,
    /// Create it disabled: no job is handed out until it is enabled
    #[arg(long)]
    pub disabled: bool,
    /// When it starts (RFC 3339, e.g. 2026-12-24T18:00:00Z) [server default: now]
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// When it ends: jobs not begun by then expire
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Delivery priority, -100 to 100 (higher first)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// ignore-failed or abort-after-failed
    #[arg(long, value_name = "MODE")]
    pub sequence_mode: Option<String>,
    /// IP ranges that may receive the jobs, e.g. `10.0.0.0/8, !10.66.0.0/16`
    #[arg(long, value_name = "RANGES")]
    pub ip_ranges: Option<String>,
    /// Time frames in which jobs are handed out, e.g. `Mon-Fri 18:00-06:00`
    #[arg(long, value_name = "FRAMES")]
    pub time_frames: Option<String>,
    /// The time zone of the time frames, e.g. Europe/Berlin [server default: its --time-zone]
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Minutes the agent waits before a post action (restart, shutdown), or `none` to disable
    /// post actions [server default: 5]
    #[arg(long, value_name = "MINUTES")]
    pub post_action_timeout: Option<PostActionTimeout>,
    /// Wake the computers with Wake-on-LAN
    #[arg(long)]
    pub wake: bool,
    /// Shut down the computers woken for it once their jobs are done
    #[arg(long)]
    pub shutdown_after: bool,
    /// Offer it in the agents' self-service
    #[arg(long)]
    pub self_service: bool,
    /// Watch the new container until it ends (as `oco containers watch`)
    #[arg(long)]
    pub watch: bool,
    /// With --watch: seconds between two looks
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = seconds)]
    pub interval: Duration,
}

/// A deploy's `--post-action-timeout`: minutes, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostActionTimeout {
    /// The agent waits this many minutes before a post action.
    Minutes(u32),
    /// Post actions are disabled.
    Disabled,
}

impl std::str::FromStr for PostActionTimeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(PostActionTimeout::Disabled);
        }
        text.trim()
            .parse()
            .map(PostActionTimeout::Minutes)
            .map_err(|_| format!("`{text}` is neither a number of minutes nor `none`"))
    }
}

/// `oco rules …`
#[derive(Debug, Subcommand)]
pub enum Rules {
    /// List deployment rules
    List(Listing),
    /// Show one rule
    Show {
        /// The rule's id
        id: i64,
    },
    /// Renew the rule's failed jobs in place
    Renew {
        /// The rule's id
        id: i64,
        /// Only these jobs (repeat or separate with commas; none: every failed job)
        #[arg(long = "job", value_name = "ID", value_delimiter = ',')]
        jobs: Vec<i64>,
    },
}

/// `oco jobs …`
#[derive(Debug, Subcommand)]
pub enum Jobs {
    /// List jobs, with the API's filters
    List(JobFilter),
    /// Show one job, with its whole output
    Show {
        /// The job's id
        id: i64,
    },
    /// Say whether a pending job would be handed out now, or why it is held
    Explain {
        /// The job's id
        id: i64,
        /// Decide for an agent at this address [default: the computer's last hello]
        #[arg(long, value_name = "IP")]
        address: Option<String>,
    },
}

/// `oco jobs list`'s filters.
#[derive(Debug, Args)]
pub struct JobFilter {
    /// Jobs of this container
    #[arg(long, value_name = "ID", conflicts_with_all = ["rule", "origin"])]
    pub container: Option<i64>,
    /// Jobs of this rule
    #[arg(long, value_name = "ID", conflicts_with = "origin")]
    pub rule: Option<i64>,
    /// Jobs of this origin, `container:<id>` or `rule:<id>`
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Jobs on this computer
    #[arg(long, value_name = "ID")]
    pub computer: Option<i64>,
    /// Jobs of this package
    #[arg(long, value_name = "ID")]
    pub package: Option<i64>,
    /// Jobs in this state: waiting, downloading, executing, succeeded, failed, expired,
    /// incompatible, already-installed
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// With --json: how much of each output to include (server default 1,000 characters)
    #[arg(long, value_name = "CHARS")]
    pub output_chars: Option<u32>,
    /// How much to read.
    #[command(flatten)]
    pub listing: Listing,
}

/// `oco tokens …`
#[derive(Debug, Subcommand)]
pub enum Tokens {
    /// List admin tokens (never their secrets)
    List(Listing),
    /// Show one token (not its secret)
    Show {
        /// The token's id
        id: i64,
    },
    /// Create a token; its secret is printed once, alone on stdout
    Create {
        /// Its name, e.g. the tool that will use it
        name: String,
        /// Allow only reading (GET); any change is refused with 403
        #[arg(long)]
        read_only: bool,
    },
    /// Revoke a token
    Revoke {
        /// The token's id
        id: i64,
    },
}

/// A duration in seconds (fractions allowed), more than zero and at most a day.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(value > 0.0 && value <= 86_400.0) {
        return Err(format!(
            "`{text}` seconds: must be more than 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_are_positive_and_bounded() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("2"), Ok(Duration::from_secs(2)));
        for bad in ["0", "-1", "nan", "inf", "1e9", "x", ""] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_post_action_timeout_is_minutes_or_none() {
        assert_eq!("5".parse(), Ok(PostActionTimeout::Minutes(5)));
        assert_eq!("None".parse(), Ok(PostActionTimeout::Disabled));
        assert_eq!(
            "soon".parse::<PostActionTimeout>(),
            Err("`soon` is neither a number of minutes nor `none`".to_owned())
        );
    }

    #[test]
    fn id_lists_take_commas_and_repeats() {
        let cli = Cli::try_parse_from([
            "oco",
            "containers",
            "deploy",
            "--name",
            "n",
            "--computer",
            "1,2",
            "--computer",
            "3",
            "--priority",
            "-5",
        ])
        .unwrap();
        let Command::Containers(Containers::Deploy(deploy)) = cli.command else {
            panic!("not a deploy: {:?}", cli.command);
        };
        assert_eq!(deploy.computers, [1, 2, 3]);
        assert_eq!(deploy.priority, Some(-5));
    }
}
