//! `/metrics`: the server's counters in the Prometheus text format (version 0.0.4).
//!
//! Each [`AppState`] has its own [`Metrics`] (a registry of the `prometheus-client` crate, not a
//! process-wide recorder), so servers sharing a process count apart. What is counted:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `oco_http_requests_total` | `route`, `method`, `status` | requests answered; `route` is the route's pattern (`/api/v1/computers/{id}`), `unmatched` for none |
//! | `oco_http_request_duration_seconds` | `route`, `method` | from the request's arrival to its response's head |
//! | `oco_agent_requests_total` | `kind` | agent requests: `hello`, `report`, `download`, `other`, `refused`, `failed` |
//! | `oco_hello_cache_lookups_total` | `result` | hellos answered from the hello cache (`hit`) or the store (`miss`) |
//! | `oco_jobs_handed_out_total` | | jobs handed to agents in hellos |
//! | `oco_job_reports_total` | `outcome` | job reports: the state they wrote (`downloading`, `succeeded`, `failed`, …), `applied` (a success recorded on a deleted job) or `ignored` |
//! | `oco_commit_batch_size` | | change sets per group commit |
//! | `oco_commit_duration_seconds` | | a group commit's write, from its start to its durable end |
//! | `oco_housekeeping_runs_total` | `result` | housekeeping runs of this process: `ok` or `error` |
//! | `oco_housekeeping_effects_total` | `effect` | what they did: `expired`, `expired_stale`, `purged`, `wakes`, `shutdown_marks`, `tombstone_purges`, `packets_sent` |
//! | `oco_open_connections` | | connections open now |
//! | `oco_hello_cache_entries`, `oco_hello_cache_bytes` | | the hello cache's entries and their weight |
//! | `oco_build_info` | `version` | 1 |
//!
//! Recording an agent request costs a few atomic operations and a histogram's lock, the series
//! it counts into being held from the start; another request also looks its labels up under a
//! read lock. The figures are read only when `/metrics` is asked.
//!
//! # Examples
//!
//! ```
//! use oco_server_min::metrics::Metrics;
//!
//! let metrics = Metrics::new("/api-agent.php");
//! metrics.request("/api/v1/computers", &axum::http::Method::GET, 200, 0.002);
//! let text = metrics.render();
//! assert!(text.contains(
//!     r#"oco_http_requests_total{route="/api/v1/computers",method="GET",status="200"} 1"#
//! ));
//! ```

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use oco_agent_protocol::cache::CachedStore;
use oco_agent_protocol::service::Outcome;
use oco_core::housekeeping::Summary;
use oco_core::report::Disposition;
use oco_core::store::columns::TextEnum;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::connections::OpenConnections;
use crate::AppState;

/// The upper bounds of the request-latency buckets, in seconds: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The upper bounds of the commit-duration buckets, in seconds: 0.1 ms to 5 s.
const COMMIT_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The upper bounds of the batch-size buckets: 1 to 512 change sets (the most in one commit).
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A route pattern as a label: shared, so that a request's labels are made without allocating.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct RouteLabel(Arc<str>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: RouteLabel,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteLabel,
    method: &'static str,
}

/// The most route patterns kept apart; more (the router has about fifty) share `other`.
const MAX_ROUTES: usize = 256;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EffectLabel {
    effect: &'static str,
}

/// The kinds of agent request, as `oco_agent_requests_total` labels them; in [`AgentKind`]
/// order.
const AGENT_KINDS: [&str; 6] = ["hello", "report", "download", "other", "refused", "failed"];

/// An index into [`AGENT_KINDS`].
#[derive(Clone, Copy)]
enum AgentKind {
    Hello,
    Report,
    Download,
    Other,
    Refused,
    Failed,
}

/// A latency histogram with [`LATENCY_BUCKETS`].
fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The server's metrics: what requests, the agent API, the group commit and housekeeping
/// record, and the registry `/metrics` renders. Cheap to clone (the metrics are shared).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    /// The series of the agent API's usual request (a `POST` answered 200), held so that
    /// recording one looks nothing up.
    agent_ok: (Counter, Histogram),
    /// The agent route's label.
    agent_route: RouteLabel,
    /// `oco_agent_requests_total` by kind, in [`AGENT_KINDS`] order.
    agent_kinds: [Counter; 6],
    /// `oco_hello_cache_lookups_total`: hits, misses.
    cache_lookups: [Counter; 2],
    /// The route patterns seen, each held once.
    routes: RwLock<HashMap<Box<str>, RouteLabel>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    jobs_handed_out: Counter,
    reports: Family<OutcomeLabel, Counter>,
    commit: CommitMetrics,
    housekeeping_runs: Family<ResultLabel, Counter>,
    housekeeping_effects: Family<EffectLabel, Counter>,
    /// What the scrape reads at the time: set once the server knows them.
    live: Arc<Live>,
}

/// The figures read when `/metrics` is asked rather than counted.
#[derive(Debug, Default)]
struct Live {
    connections: OnceLock<OpenConnections>,
    cache: OnceLock<Arc<CachedStore>>,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut gauge = |name: &str, help: &str, value: i64| -> Result<(), fmt::Error> {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)
        };
        if let Some(open) = self.connections.get() {
            let open = i64::try_from(open.get()).unwrap_or(i64::MAX);
            gauge("oco_open_connections", "Connections open now.", open)?;
        }
        if let Some(cache) = self.cache.get() {
            let entries = i64::try_from(cache.len()).unwrap_or(i64::MAX);
            let bytes = i64::try_from(cache.weight()).unwrap_or(i64::MAX);
            gauge(
                "oco_hello_cache_entries",
                "Computers whose hello the hello cache holds.",
                entries,
            )?;
            gauge(
                "oco_hello_cache_bytes",
                "The memory the hello cache's entries weigh, in bytes.",
                bytes,
            )?;
        }
        Ok(())
    }
}

/// What the group commit records: batch sizes and durations.
#[derive(Debug, Clone)]
pub(crate) struct CommitMetrics {
    batch: Histogram,
    duration: Histogram,
}

impl CommitMetrics {
    /// A commit of `sets` change sets took `seconds`.
    pub(crate) fn committed(&self, sets: usize, seconds: f64) {
        // A batch holds at most 512 sets: exact as a float.
        #[allow(clippy::cast_precision_loss)]
        self.batch.observe(sets as f64);
        self.duration.observe(seconds);
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics at zero, registered, for a server whose agent API is at `agent_path`.
    pub fn new(agent_path: &str) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "oco_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "oco_http_request_duration_seconds",
            "Time from a request's arrival to its response's head, by route pattern and method",
            latency.clone(),
        );
        let agent_requests = Family::<KindLabel, Counter>::default();
        registry.register(
            "oco_agent_requests",
            "Agent requests, by kind: hello, report, download, other, refused, failed",
            agent_requests.clone(),
        );
        let hello_cache = Family::<ResultLabel, Counter>::default();
        registry.register(
            "oco_hello_cache_lookups",
            "Hellos answered from the hello cache (hit) or from the store (miss)",
            hello_cache.clone(),
        );
        let jobs_handed_out = Counter::default();
        registry.register(
            "oco_jobs_handed_out",
            "Jobs handed to agents in hellos",
            jobs_handed_out.clone(),
        );
        let reports = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "oco_job_reports",
            "Job reports, by the state they wrote (or ignored)",
            reports.clone(),
        );
        let commit = CommitMetrics {
            batch: Histogram::new(BATCH_BUCKETS),
            duration: Histogram::new(COMMIT_BUCKETS),
        };
        registry.register(
            "oco_commit_batch_size",
            "Change sets written by one group commit",
            commit.batch.clone(),
        );
        registry.register(
            "oco_commit_duration_seconds",
            "Time a group commit's write took, to its durable end",
            commit.duration.clone(),
        );
        let housekeeping_runs = Family::<ResultLabel, Counter>::default();
        registry.register(
            "oco_housekeeping_runs",
            "Housekeeping runs of this process, by result (ok, error)",
            housekeeping_runs.clone(),
        );
        let housekeeping_effects = Family::<EffectLabel, Counter>::default();
        registry.register(
            "oco_housekeeping_effects",
            "What housekeeping runs did, by effect",
            housekeeping_effects.clone(),
        );
        let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("oco_build_info", "The server's version", build);
        // The series whose labels are known start at zero, so that a dashboard shows them
        // before the first event; the agent API's are held.
        let agent_kinds =
            AGENT_KINDS.map(|kind| agent_requests.get_or_create_owned(&KindLabel { kind }));
        let cache_lookups =
            ["hit", "miss"].map(|result| hello_cache.get_or_create_owned(&ResultLabel { result }));
        let agent_route = RouteLabel(agent_path.into());
        let agent_ok = (
            requests.get_or_create_owned(&RequestLabels {
                route: agent_route.clone(),
                method: "POST",
                status: 200,
            }),
            latency.get_or_create_owned(&RouteLabels {
                route: agent_route.clone(),
                method: "POST",
            }),
        );
        for result in ["ok", "error"] {
            housekeeping_runs
                .get_or_create(&ResultLabel { result })
                .inc_by(0);
        }
        let live = Arc::new(Live::default());
        registry.register_collector(Box::new(live.clone()));
        Metrics(Arc::new(Inner {
            registry,
            agent_ok,
            agent_route,
            agent_kinds,
            cache_lookups,
            routes: RwLock::default(),
            requests,
            latency,
            jobs_handed_out,
            reports,
            commit,
            housekeeping_runs,
            housekeeping_effects,
            live,
        }))
    }

    /// Records a request answered with `status` after `seconds`; `route` is its route's
    /// pattern (or `unmatched`).
    pub fn request(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        self.record(self.route(route), method, status, seconds);
    }

    /// Records an agent API request answered with `status` after `seconds`.
    pub fn agent_request(&self, method: &Method, status: u16, seconds: f64) {
        if status == 200 && *method == Method::POST {
            let (count, latency) = &self.0.agent_ok;
            count.inc();
            latency.observe(seconds);
            return;
        }
        self.record(self.0.agent_route.clone(), method, status, seconds);
    }

    /// Counts a request of `route` and its latency into the series of its labels.
    fn record(&self, route: RouteLabel, method: &Method, status: u16, seconds: f64) {
        let method = method_label(method);
        self.0
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status,
            })
            .inc();
        self.0
            .latency
            .get_or_create(&RouteLabels { route, method })
            .observe(seconds);
    }

    /// The label of the route pattern `route`: the one kept, or a new one (`other` past
    /// [`MAX_ROUTES`]).
    fn route(&self, route: &str) -> RouteLabel {
        let routes = &self.0.routes;
        if let Some(label) = routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return label.clone();
        }
        let mut routes = routes.write().unwrap_or_else(PoisonError::into_inner);
        let route = if routes.len() < MAX_ROUTES {
            route
        } else {
            "other"
        };
        routes
            .entry(route.into())
            .or_insert_with(|| RouteLabel(route.into()))
            .clone()
    }

    /// Records what an agent request came to.
    pub fn agent(&self, outcome: &Outcome) {
        let kind = match outcome {
            Outcome::Hello {
                delivered, cached, ..
            } => {
                self.0.cache_lookups[usize::from(!*cached)].inc();
                self.0.jobs_handed_out.inc_by(u64::from(*delivered));
                AgentKind::Hello
            }
            Outcome::Report {
                disposition, state, ..
            } => {
                let outcome = match (disposition, state) {
                    (Disposition::Applied, Some(state)) => TextEnum::text(*state),
                    (Disposition::Applied, None) => "applied",
                    (Disposition::Ignored(_), _) => "ignored",
                };
                self.0
                    .reports
                    .get_or_create(&OutcomeLabel { outcome })
                    .inc();
                AgentKind::Report
            }
            Outcome::Download { .. } => AgentKind::Download,
            Outcome::Refused => AgentKind::Refused,
            Outcome::Failed { .. } => AgentKind::Failed,
            _ => AgentKind::Other,
        };
        self.0.agent_kinds[kind as usize].inc();
    }

    /// Records a housekeeping run: its summary and packets sent, or that it failed.
    pub fn housekeeping(&self, run: Result<(&Summary, usize), ()>) {
        let result = if run.is_ok() { "ok" } else { "error" };
        self.0
            .housekeeping_runs
            .get_or_create(&ResultLabel { result })
            .inc();
        let Ok((summary, packets_sent)) = run else {
            return;
        };
        let effects = [
            ("expired", summary.expired),
            ("expired_stale", summary.expired_stale),
            ("purged", summary.purged),
            ("wakes", summary.wakes),
            ("shutdown_marks", summary.shutdown_marks),
            ("tombstone_purges", usize::from(summary.tombstones_purged)),
            ("packets_sent", packets_sent),
        ];
        for (effect, n) in effects {
            self.0
                .housekeeping_effects
                .get_or_create(&EffectLabel { effect })
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// What the group commit records into.
    pub(crate) fn commit(&self) -> CommitMetrics {
        self.0.commit.clone()
    }

    /// Shows `open` as `oco_open_connections` (the first call counts; later ones are ignored).
    pub fn watch_connections(&self, open: OpenConnections) {
        let _ = self.0.live.connections.set(open);
    }

    /// Shows the hello cache's size (the first call counts; later ones are ignored).
    pub(crate) fn watch_cache(&self, cache: Arc<CachedStore>) {
        let _ = self.0.live.cache.set(cache);
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a metric's name.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.0.registry)
        {
            tracing::error!(%error, "rendering the metrics failed");
        }
        text
    }
}

/// A method as a label: the common ones by name, the rest as `other` (a client may send any
/// token as a method; labels must stay few).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`.
pub(crate) async fn serve(State(state): State<AppState>) -> Response {
    let text = state.metrics().render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn route_patterns_past_the_bound_share_one_label() {
        let metrics = Metrics::new("/api-agent.php");
        for n in 0..MAX_ROUTES + 10 {
            metrics.request(&format!("/r{n}"), &Method::GET, 200, 0.001);
        }
        let text = metrics.render();
        let series = |route: &str| {
            format!(r#"oco_http_requests_total{{route="{route}",method="GET",status="200"}}"#)
        };
        assert!(text.contains(&format!("{} 1", series("/r0"))), "{text}");
        assert!(text.contains(&format!("{} 1", series(&format!("/r{}", MAX_ROUTES - 1)))));
        assert!(!text.contains(&series(&format!("/r{MAX_ROUTES}"))));
        assert!(text.contains(&format!("{} 10", series("other"))), "{text}");
    }

    #[test]
    fn a_method_outside_the_usual_ones_is_other() {
        let metrics = Metrics::new("/api-agent.php");
        let method = Method::from_bytes(b"BREW").unwrap();
        metrics.request("/metrics", &method, 405, 0.001);
        assert!(metrics.render().contains(
            r#"oco_http_requests_total{route="/metrics",method="other",status="405"} 1"#
        ));
    }
}
