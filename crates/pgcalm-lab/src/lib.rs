//! pgcalm-lab: risky and safe migrations run against the live demo app (`pgcalm-demo`)
//! under the probe, measured, judged and reported.
//!
//! - [`scenario`]: the catalogue (`scenarios/<name>/` in this crate, embedded in the
//!   binary).
//! - [`experiment`]: the orchestration: database, seed, demo API, then per scenario and
//!   form: setup, baseline probe, the migration under the probe and the monitor, the
//!   rollback, teardown.
//! - [`app`]: the demo API in-process on free loopback ports, with one shared pool or
//!   separate read and write pools.
//! - [`monitor`]: database snapshots every 250 ms (lock waiters and their blockers,
//!   index build phases).
//! - [`verdict`]: what the probe numbers and the monitor's observations say.
//! - [`results`]: the data model of every figure a run measures (`results.json`).
//! - [`report`]: writers of `report.md`, `report.html`, `results.json` and raw samples.
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

pub mod app;
pub mod experiment;
pub mod monitor;
pub mod report;
pub mod results;
pub mod scenario;
pub mod verdict;

pub use experiment::{LabError, LabEvent, LabOptions, LabStep, run_lab};
