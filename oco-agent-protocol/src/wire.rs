//! The JSON the agent sends and the server replies, as types.
//!
//! Requests are read in two parts: [`Head`], what every request carries (borrowed from the body,
//! the rest skipped without being built), and a report's own [`ReportRequest`]. Replies are
//! [`Reply`]s around a method's parameters; a hello's jobs are rendered from [`JobParts`] by
//! [`render_software_jobs`], byte for byte what `serde_json` writes for the [`SoftwareJob`]s.
//!
//! ```
//! use oco_agent_protocol::wire::Head;
//!
//! let body = br#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "test-uid", "hostname": "testhost", "timestamp": 1700000000.5, "data": {"agent_version": "1.2.0"}}}"#;
//! let head: Head<'_> = serde_json::from_slice(body)?;
//! assert_eq!(head.method, "oco.agent.hello");
//! assert_eq!(head.params.hostname, "testhost");
//! assert_eq!(head.params.timestamp, 1_700_000_000.5);
//! assert_eq!(head.params.data.agent_version.as_deref(), Some("1.2.0"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use oco_core::model::{Job, JobId, Origin, PostAction, SequenceMode};
use oco_core::plan::Delivery;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// What every request carries: the method, who sends it and (a hello) the agent's version. Other
/// fields (the rest of `data`, `uid`,
/// `jsonrpc`, `id`) are skipped without being built.
#[derive(Debug, Deserialize)]
pub struct Head<'a> {
    /// The JSON-RPC method, `oco.agent.hello` and so on.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// What every request's `params` carries.
    #[serde(borrow)]
    pub params: HeadParams<'a>,
}

/// The parameters every request carries, and the download's package.
#[derive(Debug, Deserialize)]
pub struct HeadParams<'a> {
    /// The computer's hostname, as the agent names it.
    #[serde(borrow)]
    pub hostname: Cow<'a, str>,
    /// The agent's clock, in seconds since the epoch.
    pub timestamp: f64,
    /// The package of a download (`package-id`).
    #[serde(rename = "package-id", default)]
    pub package_id: Option<i64>,
    /// What the server keeps of `data`.
    #[serde(borrow, default)]
    pub data: HeadData<'a>,
}

/// What every request's `params.data` says that the server keeps: the agent's version (a hello
/// sends it). Everything else in `data`, a report's output included, is skipped without being
/// built, and a `data` that is not an object, or a version that is not a string, says nothing.
#[derive(Debug, Default)]
pub struct HeadData<'a> {
    /// The agent's version, as sent (a hello's `data.agent_version`).
    pub agent_version: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for HeadData<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Lenient::deserialize(deserializer)? {
            Lenient::Object { agent_version } => HeadData { agent_version },
            Lenient::Text(_) | Lenient::Other => HeadData::default(),
        })
    }
}

/// Any JSON value, of which only what [`HeadData`] needs is built: a string, or an object's
/// `agent_version` string.
enum Lenient<'a> {
    Text(Cow<'a, str>),
    Object { agent_version: Option<Cow<'a, str>> },
    Other,
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient::Text(Cow::Borrowed(text)))
    }
    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Lenient::Text(Cow::Owned(text.to_owned())))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut agent_version = None;
        while let Some(IsAgentVersion(wanted)) = map.next_key()? {
            if wanted {
                if let Lenient::Text(text) = map.next_value()? {
                    agent_version = Some(text);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Lenient::Object { agent_version })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }
}

/// A map key: whether it is `agent_version` (compared without allocating).
struct IsAgentVersion(bool);

impl<'de> Deserialize<'de> for IsAgentVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl Visitor<'_> for Visit {
            type Value = IsAgentVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
                Ok(IsAgentVersion(key == "agent_version"))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// An `oco.agent.update_job_state` request's report.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::wire::ReportRequest;
/// use oco_core::model::JobId;
///
/// let body = br#"{"params": {"data": {"job-id": "41.2", "state": 3, "return-code": 0, "message": "done"}}}"#;
/// let report: ReportRequest = serde_json::from_slice(body)?;
/// let data = &report.params.data;
/// assert_eq!(data.job_id.parse(), Some((JobId(41), 2)));
/// assert_eq!((data.state, data.return_code), (3, Some(0)));
/// assert_eq!(data.download_progress, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Deserialize)]
pub struct ReportRequest {
    /// The request's parameters.
    pub params: ReportParams,
}

/// A report's parameters (what it needs of them).
#[derive(Debug, Deserialize)]
pub struct ReportParams {
    /// The job's state.
    pub data: ReportData,
}

/// One job's state, as the agent reports it.
#[derive(Debug, Deserialize)]
pub struct ReportData {
    /// The job, as the hello named it (`job-id`).
    #[serde(rename = "job-id")]
    pub job_id: WireJobId,
    /// The agent's state code: 1 downloading, 2 executing, 3 finished, -1 error.
    pub state: i64,
    /// The procedure's exit code (`return-code`), once it ended.
    #[serde(rename = "return-code", default)]
    pub return_code: Option<i64>,
    /// A download's progress in percent (`download-progress`).
    #[serde(rename = "download-progress", default)]
    pub download_progress: Option<i64>,
    /// The output so far.
    #[serde(default)]
    pub message: Option<String>,
}

/// A job id as the agent echoes it: a number, or a string (`"<id>.<attempt>"` after a renew).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WireJobId {
    /// A number: a first attempt.
    Number(i64),
    /// A string: `"<id>"`, or `"<id>.<attempt>"` after a renew.
    Text(String),
}

impl WireJobId {
    /// The job and attempt it names, if it is one of ours.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_agent_protocol::wire::WireJobId;
    /// use oco_core::model::JobId;
    ///
    /// assert_eq!(WireJobId::Number(41).parse(), Some((JobId(41), 1)));
    /// assert_eq!(WireJobId::Text("41.3".into()).parse(), Some((JobId(41), 3)));
    /// assert_eq!(WireJobId::Text("dynamic-3".into()).parse(), None);
    /// ```
    pub fn parse(&self) -> Option<(JobId, u32)> {
        match self {
            WireJobId::Number(id) => Some((JobId(*id), 1)),
            WireJobId::Text(text) => match text.split_once('.') {
                None => Some((JobId(text.parse().ok()?), 1)),
                Some((id, attempt)) => {
                    let attempt: u32 = attempt.parse().ok()?;
                    // "<id>.1" is never handed out; accept it as attempt 1 all the same.
                    (attempt >= 1).then_some((JobId(id.parse().ok()?), attempt))
                }
            },
        }
    }
}

impl std::fmt::Display for WireJobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireJobId::Number(id) => write!(f, "{id}"),
            WireJobId::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// `{"id":1,"error":null,"result":{"success":true,"params":P,"timestamp":F}}`.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::wire::{NoParams, Reply};
///
/// let reply = Reply::new(NoParams {}, 1_700_000_001.25);
/// assert_eq!(
///     serde_json::to_string(&reply)?,
///     r#"{"id":1,"error":null,"result":{"success":true,"params":{},"timestamp":1700000001.25}}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Serialize)]
pub struct Reply<P> {
    id: u8,
    error: Option<()>,
    result: ReplyResult<P>,
}

#[derive(Debug, Serialize)]
struct ReplyResult<P> {
    success: bool,
    params: P,
    timestamp: f64,
}

impl<P: Serialize> Reply<P> {
    /// A successful reply with `params`, stamped `timestamp`.
    pub fn new(params: P, timestamp: f64) -> Self {
        Reply {
            id: 1,
            error: None,
            result: ReplyResult {
                success: true,
                params,
                timestamp,
            },
        }
    }
}

/// An empty `params` object (never a list: the agent indexes into it).
#[derive(Debug, Serialize)]
pub struct NoParams {}

/// The hello reply's parameters. Keys are left out unless sent (a `null` server key corrupts a new
/// agent's configuration); `update-passwords` and `events` are left out so that the agent makes
/// no extra calls.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::wire::{no_software_jobs, HelloParams, Reply};
///
/// let jobs = no_software_jobs();
/// let params = HelloParams {
///     server_key: Some("serverkey0123456789abcdefghijkl"),
///     agent_key: None,
///     update: 0,
///     software_jobs: &jobs,
/// };
/// assert_eq!(
///     serde_json::to_string(&Reply::new(params, 1_700_000_001.25))?,
///     r#"{"id":1,"error":null,"result":{"success":true,"params":{"server-key":"serverkey0123456789abcdefghijkl","update":0,"software-jobs":[]},"timestamp":1700000001.25}}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Serialize)]
pub struct HelloParams<'a> {
    /// The server key to send (`server-key`), left out when `None`.
    #[serde(rename = "server-key", skip_serializing_if = "Option::is_none")]
    pub server_key: Option<&'a str>,
    /// The agent key to send (`agent-key`), left out when `None`.
    #[serde(rename = "agent-key", skip_serializing_if = "Option::is_none")]
    pub agent_key: Option<&'a str>,
    /// Whether the agent should update itself; always 0.
    pub update: u8,
    /// The jobs handed out, rendered by [`render_software_jobs`].
    #[serde(rename = "software-jobs")]
    pub software_jobs: &'a RawValue,
}

/// A delivered job as a hello reply carries it, in two parts: its wire id, and the rest of its
/// object, which it shares with every job of its origin and package (so that the hello cache
/// keeps the rest once for all of them).
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::wire::{render_software_jobs, JobParts};
/// use oco_core::model::{ContainerId, JobId, Origin, SequenceMode};
/// use oco_core::plan::Delivery;
/// use oco_core::store::{testkit, MemoryStore};
///
/// let store = MemoryStore::new();
/// let fixture = testkit::fixture(&store);
/// let origin = Origin::Container(ContainerId(3));
/// let mut job = testkit::job(origin, fixture.computers[0].id, &fixture.packages[0], 1);
/// job.id = JobId(41);
/// let delivery = Delivery { job: &job, sequence_mode: SequenceMode::IgnoreFailed, post_action: None };
/// let parts = JobParts::of(&delivery);
/// assert!(parts.rest.starts_with(r#""container-id":3,"package-id":"#));
/// let jobs = render_software_jobs([(parts.id, parts.attempt, parts.rest.as_str())].into_iter());
/// assert!(jobs.get().starts_with(r#"[{"id":41,"container-id":3,"#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobParts {
    /// The job's id.
    pub id: JobId,
    /// Its attempt (the wire id is `"<id>.<attempt>"` after a renew).
    pub attempt: u32,
    /// The object's members after the id, and its closing brace.
    pub rest: String,
}

impl JobParts {
    /// The parts of a delivered job.
    pub fn of(delivery: &Delivery<'_>) -> Self {
        let job = SoftwareJob::of(delivery);
        // Invariant: the fields are numbers, booleans and strings, which always serialize, to
        // an object (`{` first).
        let object = serde_json::to_string(&job.rest).unwrap_or_else(|_| "{}".to_owned());
        JobParts {
            id: delivery.job.id,
            attempt: delivery.job.attempt,
            rest: object.get(1..).unwrap_or("}").to_owned(),
        }
    }
}

/// The JSON array of the jobs handed out, as a hello reply carries it, from their parts: the
/// bytes `serde_json` writes for the [`SoftwareJob`]s themselves.
///
/// Each item is a job's id, attempt and [`JobParts::rest`]; see [`JobParts`] for an example.
pub fn render_software_jobs<'a>(
    jobs: impl ExactSizeIterator<Item = (JobId, u32, &'a str)>,
) -> Box<RawValue> {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(2 + jobs.len() * 256);
    text.push('[');
    for (index, (id, attempt, rest)) in jobs.enumerate() {
        if index > 0 {
            text.push(',');
        }
        // Writing to a String cannot fail.
        let _ = if attempt <= 1 {
            write!(text, "{{\"id\":{id},")
        } else {
            write!(text, "{{\"id\":\"{id}.{attempt}\",")
        };
        text.push_str(rest);
    }
    text.push(']');
    RawValue::from_string(text).unwrap_or_else(|error| {
        // Invariant: the parts are what serde_json wrote; were it otherwise, the poll would
        // hand out nothing, and say why.
        tracing::error!(%error, "the jobs to hand out could not be rendered; none are");
        no_software_jobs()
    })
}

/// The empty JSON array.
///
/// # Examples
///
/// ```
/// assert_eq!(oco_agent_protocol::wire::no_software_jobs().get(), "[]");
/// ```
pub fn no_software_jobs() -> Box<RawValue> {
    // Invariant: an empty slice serializes to `[]`.
    serde_json::value::to_raw_value::<[u8]>(&[]).unwrap_or_default()
}

/// A job as the agent runs it: what [`render_software_jobs`] writes for each job, built whole.
#[derive(Debug, Serialize)]
pub struct SoftwareJob<'a> {
    #[serde(serialize_with = "wire_id")]
    id: &'a Job,
    #[serde(flatten)]
    rest: SoftwareJobRest<'a>,
}

/// A job as the agent runs it, but its id.
#[derive(Debug, Serialize)]
struct SoftwareJobRest<'a> {
    #[serde(rename = "container-id", serialize_with = "wire_origin")]
    container_id: Origin,
    #[serde(rename = "package-id")]
    package_id: i64,
    download: bool,
    procedure: &'a str,
    #[serde(rename = "sequence-mode")]
    sequence_mode: u8,
    restart: Option<u32>,
    shutdown: Option<u32>,
    exit: Option<u32>,
}

impl<'a> SoftwareJob<'a> {
    /// The wire form of a delivered job. The post action is the planner's (already `None` when
    /// the policy disables post actions); its minutes go into the one field it names, the other
    /// two stay `null` (`0` or `false` would trigger them).
    pub fn of(delivery: &Delivery<'a>) -> Self {
        let job = delivery.job;
        let (mut restart, mut shutdown, mut exit) = (None, None, None);
        if let Some(order) = delivery.post_action {
            let minutes = Some(order.timeout_minutes);
            match order.action {
                PostAction::None => {}
                PostAction::Restart => restart = minutes,
                PostAction::Shutdown => shutdown = minutes,
                PostAction::ExitAgent => exit = minutes,
            }
        }
        SoftwareJob {
            id: job,
            rest: SoftwareJobRest {
                container_id: job.origin,
                package_id: job.package.0,
                download: job.snapshot.download,
                procedure: &job.snapshot.procedure.command,
                sequence_mode: match delivery.sequence_mode {
                    SequenceMode::IgnoreFailed => 0,
                    SequenceMode::AbortAfterFailed => 1,
                },
                restart,
                shutdown,
                exit,
            },
        }
    }
}

/// The job's wire id: a number on the first attempt, else the string [`Job::wire_id`] gives.
fn wire_id<S: Serializer>(job: &&Job, serializer: S) -> Result<S::Ok, S::Error> {
    let text = job.wire_id();
    match text.parse::<i64>() {
        Ok(number) => serializer.serialize_i64(number),
        Err(_) => serializer.serialize_str(&text),
    }
}

/// A container's integer id, or `"deployment_rule::<id>"` for a rule.
fn wire_origin<S: Serializer>(origin: &Origin, serializer: S) -> Result<S::Ok, S::Error> {
    match origin {
        Origin::Container(id) => serializer.serialize_i64(id.0),
        Origin::Rule(id) => serializer.collect_str(&format_args!("deployment_rule::{}", id.0)),
    }
}

/// The report reply's parameters.
#[derive(Debug, Serialize)]
pub struct ReportReplyParams {
    /// Whether the job succeeded (`job-succeeded`).
    #[serde(rename = "job-succeeded")]
    pub job_succeeded: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

    use super::*;

    #[test]
    fn wire_job_ids() {
        let parse = |json: &str| serde_json::from_str::<WireJobId>(json).unwrap().parse();
        assert_eq!(parse("41"), Some((JobId(41), 1)));
        assert_eq!(parse("\"41\""), Some((JobId(41), 1)));
        assert_eq!(parse("\"41.3\""), Some((JobId(41), 3)));
        assert_eq!(parse("\"41.0\""), None);
        assert_eq!(parse("\"dynamic-3\""), None);
        assert_eq!(parse("\"41.x\""), None);
    }

    proptest::proptest! {
        /// For all delivered jobs, the array rendered from their parts is exactly the bytes of
        /// their serialized wire forms.
        #[test]
        fn jobs_rendered_from_parts_are_the_serialized_jobs(
            jobs in proptest::collection::vec(
                (1i64..1_000_000, 1u32..4, proptest::bool::ANY, "[ -~\u{e9}\\\\\"]{0,40}",
                 proptest::bool::ANY, 0u8..4),
                0..6,
            ),
        ) {
            use oco_core::model::*;
            use oco_core::plan::PostActionOrder;
            let package = |download: bool, command: &str| Package {
                id: PackageId(7),
                family: FamilyId(1),
                version: Name::new("version", "1.0").unwrap(),
                install: Procedure { command: command.to_owned(), ..Procedure::default() },
                uninstall: Procedure::default(),
                payload: download.then(|| Payload::new(1, Sha256Digest([0; 32]))),
                download_for_uninstall: false,
                upgrade_behavior: UpgradeBehavior::KeepOthers,
                compatibility: Compatibility::default(),
                dependencies: vec![],
            };
            let built: Vec<(Job, SequenceMode, Option<PostActionOrder>)> = jobs
                .iter()
                .map(|(id, attempt, rule, command, download, post)| {
                    let origin = if *rule { Origin::Rule(RuleId(3)) } else { Origin::Container(ContainerId(3)) };
                    let mut job = Job::new(origin, ComputerId(1), &package(*download, command), JobKind::Install, 1);
                    job.id = JobId(*id);
                    job.attempt = *attempt;
                    let action = [PostAction::None, PostAction::Restart, PostAction::Shutdown, PostAction::ExitAgent][usize::from(*post)];
                    let mode = if *rule { SequenceMode::AbortAfterFailed } else { SequenceMode::IgnoreFailed };
                    (job, mode, (*post > 0).then_some(PostActionOrder { action, timeout_minutes: 5 }))
                })
                .collect();
            let deliveries: Vec<Delivery<'_>> = built
                .iter()
                .map(|(job, sequence_mode, post_action)| Delivery { job, sequence_mode: *sequence_mode, post_action: *post_action })
                .collect();
            let serialized: Vec<SoftwareJob<'_>> = deliveries.iter().map(SoftwareJob::of).collect();
            let parts: Vec<JobParts> = deliveries.iter().map(JobParts::of).collect();
            let rendered = render_software_jobs(parts.iter().map(|p| (p.id, p.attempt, p.rest.as_str())));
            proptest::prop_assert_eq!(rendered.get(), serde_json::to_string(&serialized).unwrap());
        }
    }

    #[test]
    fn reply_shape() {
        let reply = Reply::new(NoParams {}, 1_700_000_001.25);
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"id":1,"error":null,"result":{"success":true,"params":{},"timestamp":1700000001.25}}"#
        );
    }
}
