//! pgcalm-lab: risky and safe migrations run against the live demo app (`pgcalm-demo`)
//! under the probe, measured, judged and reported.
//!
//! - `scenario.rs`: the catalogue ([`catalogue`]: `scenarios/<name>/` in this crate,
//!   embedded in the binary).
//! - `experiment/`: the orchestration ([`run_lab`]): database, seed, demo API, then per
//!   scenario and form: setup, baseline probe, the migration under the probe and the
//!   monitor, the rollback, teardown.
//! - `app.rs`: the demo API in-process on free loopback ports, with one shared pool or
//!   separate read and write pools.
//! - `monitor.rs`: database snapshots every 250 ms (lock waiters and their blockers,
//!   index build phases).
//! - `topology.rs`: the app through PgBouncer, a streaming replica, and a sampler of the
//!   replica's lag and the pooler's waiting clients ([`LabTopology`]).
//! - `verdict.rs`: what the probe numbers and the monitor's observations say.
//! - `results.rs`: the data model of every figure a run measures ([`LabResults`],
//!   `results.json`).
//! - `report/`: writers of `report.md`, `report.html`, `results.json` and raw samples
//!   ([`write_report`]), and the tables the terminal prints too.
//!
//! Architecture invariant: this crate never prints. Progress reaches the caller as
//! [`LabEvent`]s; errors are typed ([`LabError`]).
//!
//! ```no_run
//! # async fn demo(target: &pgcalm_pg::Target) -> Result<(), pgcalm_lab::LabError> {
//! use pgcalm_lab::{LabOptions, run_lab};
//! let opts = LabOptions { rows: 1_000_000, ..LabOptions::default() };
//! let results = run_lab(target, &opts, std::sync::Arc::new(|_event| {}), Default::default()).await?;
//! let add_index = results.scenario("add_index").unwrap();
//! assert!(add_index.forms.iter().all(|f| !f.samples.is_empty()));
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies

mod app;
mod experiment;
mod monitor;
mod report;
mod results;
mod scenario;
mod topology;
mod verdict;

// Running the lab.
pub use experiment::{
    DEFAULT_ROWS, InApp, LabError, LabEvent, LabEventSink, LabOptions, LabStep, run_lab,
};
// The scenario catalogue.
pub use scenario::{Blocker, Blocks, Check, Scenario, catalogue};
// What a run measured: the data model of `results.json`.
pub use results::{
    BlockLevel, Blocking, EndpointRole, EndpointSummary, ErrorKind, Explain, ExplainPair, Form,
    FormRun, IndexBuildSample, LabResults, LockWait, MigrationRun, Moment, Outcome, Pool,
    PoolLayout, PoolTopology, ProbeTarget, RecordedSample, RunInfo, RunOptions, SCHEMA_VERSION,
    SafeCriteria, ScenarioResult, StatementRun, TimeSpan, TopologyFigures, TopologyInfo,
    TopologySample, Verdict, WindowStats,
};
// The production parts a run goes through (pooler) and watches (replica, pooler).
pub use topology::{DEFAULT_LAB_POOL_SIZE, LabPooler, LabTopology, stop_lab_pooler};
// The report: its files, the tables and paragraphs the terminal prints too, the
// timelines.
pub use report::{
    DEFAULT_OUT_DIR, FEW_REQUESTS_MARK, MIN_PERCENTILE_REQUESTS, ReportError, ReportFiles,
    SAFE_CRITERIA_HEADER, SEED_SCENARIO, Table, blocked_meaning, explain_table, few_requests_note,
    form_label, forms_table, has_few_requests_mark, hazard_seen, index_phase_stretches, level_cell,
    lock_wait_stretches, pool_topology_note, render_html, render_markdown, samples_csv,
    samples_path, scenario_summary_table, step5_table, step5_terminal_table, timeline_id,
    timeline_svg, write_report,
};
