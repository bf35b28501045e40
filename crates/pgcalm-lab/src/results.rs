//! The lab's results: every figure a run measures, as plain serde data.
//!
//! The orchestration fills a [`LabResults`]; the writers in [`crate::report`] turn it into
//! `report.md`, `report.html`, `results.json` and the raw samples. Nothing here measures
//! or decides: the types hold what the probe, the monitor and the runner saw, and the
//! verdict the orchestration reached.
//!
//! Time: every timestamp is milliseconds since the run started ([`RunClock::start`]),
//! as `f64` (`*_ms` fields), so one axis serves every chart. The run's absolute start
//! is [`RunInfo::started`]; migration start and end also carry their absolute time
//! ([`Moment`]). [`RunClock`] converts `Instant`s and `SystemTime`s to both.
//!
//! Shape (what `results.json` holds, `schema_version` 3: since 2, `Blocking::blocked`
//! no longer counts a wait on the migration's lock without a failure, which is
//! `level: queued`; since 3, `pool_topology_note` is gone (the report words that
//! paragraph from the figures) and each endpoint carries the lock waits the monitor saw
//! of it, `lock_waits_seen`):
//!
//! ```text
//! LabResults
//! ├── run: RunInfo                  versions, rows, cores, options (probe targets, pools)
//! └── scenarios[]: ScenarioResult   name, title, what it demonstrates, the hazard
//!     └── forms[]: FormRun          risky|safe × shared|separate pools
//!         ├── migration, rollback   MigrationRun: wall time, statements with timings
//!         ├── endpoints[]           per endpoint: baseline vs migration stats, longest
//!         │                         outage, lock waits seen
//!         ├── verdict               blocks reads/writes (longest stretch), safe criteria
//!         ├── lock_waits[]          waiter, mode wanted, relation, blockers
//!         ├── index_builds[]        pg_stat_progress_create_index over time
//!         ├── explain               EXPLAIN ANALYZE before / after
//!         └── samples[]             every probe request
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgcalm_demo::format_utc;
use serde::{Deserialize, Serialize};

/// Version of the `results.json` shape; bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 3;

/// Everything one `pgcalm lab` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabResults {
    /// [`SCHEMA_VERSION`] of this value.
    pub schema_version: u32,
    /// What ran where, with which options.
    pub run: RunInfo,
    /// Scenarios in the order they ran.
    pub scenarios: Vec<ScenarioResult>,
}

impl LabResults {
    /// An empty result for `run`, ready to receive scenarios.
    pub fn new(run: RunInfo) -> Self {
        LabResults {
            schema_version: SCHEMA_VERSION,
            run,
            scenarios: Vec::new(),
        }
    }

    /// The scenario named `name` (its folder name), if it ran.
    pub fn scenario(&self, name: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

/// Run metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `CARGO_PKG_VERSION` of pgcalm.
    pub pgcalm_version: String,
    /// `server_version` of the PostgreSQL server the lab ran against (e.g. `15.14`).
    pub postgres_version: String,
    /// Rows in `large_email` during the run.
    pub rows: u64,
    /// Logical CPUs of the machine (`std::thread::available_parallelism`).
    pub machine_cores: usize,
    /// When the run started; every `*_ms` field counts from here.
    pub started: Moment,
    /// When the run ended (None while it runs).
    #[serde(default)]
    pub finished: Option<Moment>,
    /// The options the run used.
    pub options: RunOptions,
}

/// Options of a run, as resolved (flags, environment, defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Scenarios asked for (`--scenario`), e.g. `["add_index"]` or every name for `all`.
    pub scenarios: Vec<String>,
    /// Where the report went (`--out`).
    pub out_dir: String,
    /// Database the lab ran in, password masked (`Target::masked_url`) or the embedded
    /// cluster's description. Never a password.
    pub database: String,
    /// `lock_timeout` of the safe forms' statements, in ms: the safe criteria allow no
    /// request slower than this plus one second.
    pub lock_timeout_ms: u64,
    /// How long each baseline probe lasted, in ms.
    pub baseline_ms: u64,
    /// The probe's targets.
    pub probe_targets: Vec<ProbeTarget>,
    /// Pool layouts the forms ran under (shared, separate).
    pub pool_layouts: Vec<PoolLayout>,
    /// The production parts the app ran through and the lab watched (`pgcalm lab
    /// --pooler --replica`); None when the app connected to the server directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologyInfo>,
}

/// The parts beside the server during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyInfo {
    /// PgBouncer's server connections for the lab's database (`default_pool_size`),
    /// when the demo app connected through it (transaction pooling).
    pub pooler_pool_size: Option<u32>,
    /// Whether a streaming replica was attached and its lag sampled.
    pub replica: bool,
}

/// One endpoint the probe requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTarget {
    /// Short name used in tables and charts (`list_large`, `add_large`, `lookup`).
    pub name: String,
    /// What the endpoint exercises.
    pub role: EndpointRole,
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query (`/lookup/?email=user5@example.com`).
    pub path: String,
    /// Time between two requests, in ms.
    pub interval_ms: u64,
    /// Client timeout, in ms: a request past it counts as timed out.
    pub timeout_ms: u64,
}

/// What an endpoint exercises; the verdict's "blocks reads / writes" looks at these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointRole {
    /// Reads the table (`GET /list_large/`).
    Read,
    /// Writes the table (`POST /add_large/`).
    Write,
    /// Looks a row up by the column being indexed (`GET /lookup/`), reported apart: it
    /// is slow without the index whatever the migration does.
    Lookup,
}

/// Whether the endpoints share the demo API's connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolTopology {
    /// One pool of the demo's default size for every endpoint: blocked writes can hold
    /// every connection and starve the reads.
    Shared,
    /// One pool per endpoint role: a blocked write cannot take a read's connection.
    Separate,
    /// One shared pool, served the way the seed's Django app on sync workers behaves: a
    /// request whose client gave up keeps its connection until its query finishes
    /// (`ServeOptions::cancel_abandoned_queries` off).
    SharedSeedLike,
}

impl PoolTopology {
    /// `shared` / `separate`, as used in file names and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolTopology::Shared => "shared",
            PoolTopology::Separate => "separate",
            PoolTopology::SharedSeedLike => "shared-seed-like",
        }
    }

    /// One pool for every endpoint (whatever the app does with abandoned requests).
    pub fn is_shared(self) -> bool {
        self != PoolTopology::Separate
    }
}

/// The connection pools of one topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolLayout {
    /// Which topology this is.
    pub topology: PoolTopology,
    /// Its pools.
    pub pools: Vec<Pool>,
}

/// One connection pool of the demo API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Name (`shared`, `reads`, `writes`, ...).
    pub name: String,
    /// Maximum connections.
    pub size: usize,
    /// Probe target names served through it.
    pub endpoints: Vec<String>,
}

/// One scenario: a folder of `setup.sql`, `risky.sql`, `safe.sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Folder name (`add_index`).
    pub name: String,
    /// One-line title (`Add an index on large_email.email`).
    pub title: String,
    /// What the scenario demonstrates, a sentence or two.
    pub demonstrates: String,
    /// The hazard the risky form is expected to show (`blocks writes for the whole build`).
    pub hazard: String,
    /// Forms in the order they ran (risky on each topology, then safe).
    pub forms: Vec<FormRun>,
}

impl ScenarioResult {
    /// The run of `form` under `topology`, if it ran.
    pub fn form(&self, form: Form, topology: PoolTopology) -> Option<&FormRun> {
        self.forms
            .iter()
            .find(|f| f.form == form && f.topology == topology)
    }
}

/// Risky or safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// `risky.sql`: the way that takes the dangerous lock.
    Risky,
    /// `safe.sql`: the zero-downtime way.
    Safe,
}

impl Form {
    /// `risky` / `safe`, as used in file names and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Risky => "risky",
            Form::Safe => "safe",
        }
    }
}

/// One form of one scenario, run once under one pool topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormRun {
    /// Risky or safe.
    pub form: Form,
    /// The demo API's pool topology during this run.
    pub topology: PoolTopology,
    /// The probe's whole window for this form (baseline, migration, tail).
    pub probe_window: TimeSpan,
    /// The baseline window (probe on, no migration).
    pub baseline: TimeSpan,
    /// The migration under the probe.
    pub migration: MigrationRun,
    /// The rollback that followed (not under judgement, shown for completeness).
    #[serde(default)]
    pub rollback: Option<MigrationRun>,
    /// Per probe target, in the order of [`RunOptions::probe_targets`].
    pub endpoints: Vec<EndpointSummary>,
    /// What the numbers say.
    pub verdict: Verdict,
    /// Lock waits the monitor saw during the probe window.
    #[serde(default)]
    pub lock_waits: Vec<LockWait>,
    /// Index build progress the monitor saw during the probe window.
    #[serde(default)]
    pub index_builds: Vec<IndexBuildSample>,
    /// EXPLAIN ANALYZE of the scenario's query before and after, when it has one.
    #[serde(default)]
    pub explain: Option<ExplainPair>,
    /// Every probe request of the window, in the order they were sent.
    #[serde(default)]
    pub samples: Vec<RecordedSample>,
    /// The replica's lag and the pooler's waiting clients over the probe window, when
    /// the run had them ([`RunOptions::topology`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_figures: Option<TopologyFigures>,
}

/// What the replica and the pooler showed during one run: the maxima over the judged
/// window (the migration's start to the probe's end) and every sample of the probe
/// window. A figure is None when its part was not there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyFigures {
    /// Most WAL the replica had not replayed, in bytes (`pg_stat_replication` on the
    /// primary).
    pub max_replica_lag_bytes: Option<i64>,
    /// Longest replay lag, in ms (0 while nothing is left to replay).
    pub max_replica_lag_ms: Option<f64>,
    /// Most clients waiting at once for a server connection (`SHOW POOLS` cl_waiting).
    pub max_clients_waiting: Option<i64>,
    /// Longest a client waited for a server connection, in ms (`SHOW POOLS` maxwait).
    pub max_wait_ms: Option<f64>,
    /// The samples, every 250 ms.
    pub samples: Vec<TopologySample>,
}

/// One sample of the replica and the pooler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologySample {
    /// When, ms since the run started.
    pub at_ms: f64,
    /// WAL the replica had not replayed, in bytes.
    pub replica_lag_bytes: Option<i64>,
    /// Replay lag, in ms.
    pub replica_lag_ms: Option<f64>,
    /// Clients waiting for a server connection.
    pub clients_waiting: Option<i64>,
    /// How long the oldest waiting client had waited, in ms.
    pub max_wait_ms: Option<f64>,
    /// Server connections linked to a client.
    pub servers_active: Option<i64>,
}

impl TopologyFigures {
    /// The maxima of `samples` within `judged`, and all the samples.
    pub fn of(samples: Vec<TopologySample>, judged: TimeSpan) -> TopologyFigures {
        let inside = || {
            samples
                .iter()
                .filter(move |s| s.at_ms >= judged.start_ms && s.at_ms <= judged.end_ms)
        };
        let max_i = |f: fn(&TopologySample) -> Option<i64>| inside().filter_map(f).max();
        let max_f = |f: fn(&TopologySample) -> Option<f64>| inside().filter_map(f).reduce(f64::max);
        TopologyFigures {
            max_replica_lag_bytes: max_i(|s| s.replica_lag_bytes),
            max_replica_lag_ms: max_f(|s| s.replica_lag_ms),
            max_clients_waiting: max_i(|s| s.clients_waiting),
            max_wait_ms: max_f(|s| s.max_wait_ms),
            samples,
        }
    }
}

impl FormRun {
    /// `risky-shared`, `safe-separate`, ...: unique within a scenario, used in file
    /// names and element ids.
    pub fn key(&self) -> String {
        format!("{}-{}", self.form.as_str(), self.topology.as_str())
    }

    /// The summary of probe target `name`, if it was probed.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointSummary> {
        self.endpoints.iter().find(|e| e.endpoint == name)
    }
}

/// An interval in ms since the run started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// Start, ms since the run started.
    pub start_ms: f64,
    /// End, ms since the run started.
    pub end_ms: f64,
}

impl TimeSpan {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        (self.end_ms - self.start_ms) / 1000.0
    }

    /// Whether `at_ms` falls inside (bounds included).
    pub fn contains(&self, at_ms: f64) -> bool {
        at_ms >= self.start_ms && at_ms <= self.end_ms
    }
}

/// A point in time, relative to the run's start and absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// ms since the run started.
    pub rel_ms: f64,
    /// Unix time in ms.
    pub unix_ms: u64,
    /// Absolute UTC time, RFC 3339 with milliseconds (`2026-11-25T12:49:08.123Z`).
    pub utc: String,
}

/// A migration (or rollback) run under the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRun {
    /// Migration named as `pgcalm migrate` takes it (`add_index:0001_risky`) or the file.
    pub migration: String,
    /// When the runner started.
    pub started: Moment,
    /// When it returned.
    pub ended: Moment,
    /// Wall time, in ms.
    pub wall_ms: f64,
    /// Whether it applied; a safe form that gives up after its retries is `false`.
    pub succeeded: bool,
    /// The runner's error, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Lock-timeout retries the runner made.
    #[serde(default)]
    pub retries: u32,
    /// Every statement sent, in order (retried attempts included).
    #[serde(default)]
    pub statements: Vec<StatementRun>,
}

impl MigrationRun {
    /// Start to end, in ms since the run started.
    pub fn span(&self) -> TimeSpan {
        TimeSpan {
            start_ms: self.started.rel_ms,
            end_ms: self.ended.rel_ms,
        }
    }
}

/// One statement the runner sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementRun {
    /// The statement text.
    pub sql: String,
    /// Its line in the migration file.
    #[serde(default)]
    pub line: Option<usize>,
    /// Sent at, ms since the run started.
    pub start_ms: f64,
    /// How long it ran, in ms.
    pub duration_ms: f64,
    /// `lock_timeout` it ran with, in ms (None: the server's, i.e. none).
    #[serde(default)]
    pub lock_timeout_ms: Option<u64>,
    /// The error, when it failed (e.g. `canceling statement due to lock timeout`).
    #[serde(default)]
    pub error: Option<String>,
}

/// What the probe saw of one endpoint during one form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    /// Probe target name.
    pub endpoint: String,
    /// What the endpoint exercises.
    pub role: EndpointRole,
    /// Requests sent during the baseline window.
    pub baseline: WindowStats,
    /// Requests sent while the migration ran.
    pub migration: WindowStats,
    /// The longest stretch without a successful answer that overlaps the migration
    /// (from the first failed or hung request to the next success), None if none.
    #[serde(default)]
    pub longest_outage: Option<TimeSpan>,
    /// How often the monitor (a snapshot every 250 ms, the whole probe window) saw one
    /// of this endpoint's queries waiting for a lock, on any session; None in results
    /// written before schema 3.
    #[serde(default)]
    pub lock_waits_seen: Option<u64>,
}

/// Counts and latency percentiles of the requests sent in a window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WindowStats {
    /// Requests sent.
    pub requests: u64,
    /// Answered 2xx.
    pub ok: u64,
    /// No answer within the probe timeout.
    pub timed_out: u64,
    /// Answered with an error or failed to connect, by kind (`http_5xx`, `connect`, ...
    /// in JSON).
    #[serde(default)]
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Latency percentiles over every request in the window (timed-out ones count at
    /// the timeout), in ms; None when no request was sent.
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Slowest, ms.
    pub max_ms: Option<f64>,
}

impl WindowStats {
    /// Requests that failed or timed out.
    pub fn failed(&self) -> u64 {
        self.timed_out + self.errors.values().sum::<u64>()
    }
}

/// What the numbers say about one form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Did reads stop during the migration?
    pub reads: Blocking,
    /// Did writes stop during the migration?
    pub writes: Blocking,
    /// The safe criteria: zero failed or timed-out requests and none slower than the
    /// lock timeout + 1 s.
    pub safe_criteria: SafeCriteria,
    /// Anything else worth saying in a sentence (e.g. what differed from the seed).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Whether one kind of request was blocked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Blocking {
    /// Blocked: `level` is [`BlockLevel::Blocked`] (kept for tools that read the flag).
    pub blocked: bool,
    /// The longest stretch without a successful request, in seconds (0 when none).
    pub longest_stretch_s: f64,
    /// Blocked, queued or neither (the rules are documented in the lab's `verdict.rs`).
    #[serde(default)]
    pub level: BlockLevel,
    /// The longest time a request of this kind was held by the migration, in seconds:
    /// the longest stretch when blocked, the longest queued request when queued, 0 when
    /// neither.
    #[serde(default)]
    pub held_s: f64,
}

/// How far the migration held up one kind of request, from least to most.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BlockLevel {
    /// Not held by the migration's lock.
    #[default]
    No,
    /// Held by the migration's lock but answered within the limit (lock timeout + 1 s).
    Queued,
    /// Failed, timed out, or slower than the limit.
    Blocked,
}

impl BlockLevel {
    /// `no` / `queued` / `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockLevel::No => "no",
            BlockLevel::Queued => "queued",
            BlockLevel::Blocked => "blocked",
        }
    }
}

/// The safe forms' pass mark, with the figures it was judged on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SafeCriteria {
    /// Both figures within the limits.
    pub passed: bool,
    /// Failed plus timed-out requests during the migration, over every endpoint.
    pub failed_or_timed_out: u64,
    /// The slowest request during the migration, in ms.
    pub slowest_ms: f64,
    /// The limit for `slowest_ms`: lock timeout + 1 s, in ms.
    pub limit_ms: f64,
}

/// A session the monitor saw waiting for a lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    /// Seen at, ms since the run started.
    pub at_ms: f64,
    /// Waiting backend.
    pub waiter_pid: i32,
    /// Its `application_name` (`pgcalm-migrate`, `pgcalm-serve`, ...).
    pub waiter_app: String,
    /// Lock mode it wants (`ShareLock`, `AccessExclusiveLock`, ...).
    pub mode: String,
    /// The relation it waits for, when the lock is on one.
    #[serde(default)]
    pub relation: Option<String>,
    /// Sessions blocking it (`pg_blocking_pids`).
    pub blocker_pids: Vec<i32>,
    /// How long it had waited when seen, in ms.
    #[serde(default)]
    pub waited_ms: Option<f64>,
    /// Its query, shortened.
    #[serde(default)]
    pub query: Option<String>,
}

/// One observation of an index build (`pg_stat_progress_create_index`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexBuildSample {
    /// Seen at, ms since the run started.
    pub at_ms: f64,
    /// Index being built, when known.
    #[serde(default)]
    pub index: Option<String>,
    /// `CREATE INDEX`, `CREATE INDEX CONCURRENTLY`, ...
    pub command: String,
    /// `building index: scanning table`, `waiting for old snapshots`, ...
    pub phase: String,
    /// Work done in the phase, when it counts something.
    #[serde(default)]
    pub done: Option<i64>,
    /// Work to do in the phase.
    #[serde(default)]
    pub total: Option<i64>,
    /// What `done`/`total` count (`blocks`, `tuples`, `lockers`).
    #[serde(default)]
    pub unit: Option<String>,
}

/// EXPLAIN ANALYZE of one query before and after the migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainPair {
    /// The query explained.
    pub query: String,
    /// Before the migration.
    pub before: Explain,
    /// After it.
    pub after: Explain,
}

/// One EXPLAIN ANALYZE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explain {
    /// The plan's main scan node (`Parallel Seq Scan on large_email`,
    /// `Index Scan using large_email_email_idx on large_email`).
    pub node: String,
    /// `Execution Time`, in ms.
    pub execution_ms: f64,
    /// The whole plan as PostgreSQL printed it.
    pub plan: String,
}

/// One probe request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedSample {
    /// Probe target name.
    pub endpoint: String,
    /// Sent at, ms since the run started.
    pub at_ms: f64,
    /// Time to the answer (or to the timeout), in ms.
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, when an answer came.
    #[serde(default)]
    pub status: Option<u16>,
    /// Error kind for [`Outcome::Error`] (`http_5xx`, `connect_refused`, ... in JSON:
    /// [`ErrorKind::key`]).
    #[serde(default)]
    pub error: Option<ErrorKind>,
}

/// Why a probe request failed: the probe's own kinds, with their keys in JSON.
pub use pgcalm_probe::ErrorKind;
/// How a probe request ended: the probe's own outcome, with its names in JSON.
pub use pgcalm_probe::Outcome;

/// The run's clock: converts `Instant`s and `SystemTime`s into the results' timestamps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    start_instant: Instant,
    start_system: SystemTime,
}

impl RunClock {
    /// Starts the clock now.
    pub(crate) fn start() -> Self {
        RunClock {
            start_instant: Instant::now(),
            start_system: SystemTime::now(),
        }
    }

    /// The run's start as a [`Moment`] (for [`RunInfo::started`]).
    pub(crate) fn started(&self) -> Moment {
        moment_at(0.0, self.start_system)
    }

    /// Unix time in ms of the run's start.
    pub(crate) fn start_unix_ms(&self) -> u64 {
        unix_ms(self.start_system)
    }

    /// ms since the run started of a Unix time in ms (the probe's `started_at_ms`).
    pub(crate) fn rel_ms_unix(&self, unix_ms: u64) -> f64 {
        unix_ms as f64 - self.start_unix_ms() as f64
    }

    /// ms since the run started (0 for instants before it).
    pub(crate) fn rel_ms(&self, at: Instant) -> f64 {
        duration_ms(at.saturating_duration_since(self.start_instant))
    }

    /// `at` as a [`Moment`].
    pub(crate) fn moment(&self, at: Instant) -> Moment {
        let since = at.saturating_duration_since(self.start_instant);
        moment_at(duration_ms(since), self.start_system + since)
    }

    /// Now, as a [`Moment`].
    pub(crate) fn now(&self) -> Moment {
        self.moment(Instant::now())
    }
}

fn moment_at(rel_ms: f64, t: SystemTime) -> Moment {
    Moment {
        rel_ms,
        unix_ms: unix_ms(t),
        utc: format_utc(t),
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// A duration in (fractional) ms.
pub(crate) fn duration_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_moments_count_from_the_start() {
        let clock = RunClock::start();
        let later = Instant::now() + Duration::from_millis(1500);
        let m = clock.moment(later);
        assert!((m.rel_ms - 1500.0).abs() < 50.0, "{m:?}");
        assert_eq!(clock.started().rel_ms, 0.0);
        assert_eq!(clock.rel_ms_unix(clock.start_unix_ms() + 250), 250.0);
    }

    #[test]
    fn window_stats_count_failures_of_every_kind() {
        let stats = WindowStats {
            requests: 10,
            ok: 5,
            timed_out: 2,
            errors: BTreeMap::from([(ErrorKind::Http5xx, 2), (ErrorKind::Connect, 1)]),
            ..Default::default()
        };
        assert_eq!(stats.failed(), 5);
    }
}
