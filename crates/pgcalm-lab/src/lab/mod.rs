//! The lab: risky and safe migrations run against the live demo app under the probe,
//! measured, judged and reported.
//!
//! - [`results`]: the data model of every figure a run measures (`results.json`).
//! - [`report`]: writers of `report.md`, `report.html`, `results.json` and raw samples.

pub mod report;
pub mod results;
