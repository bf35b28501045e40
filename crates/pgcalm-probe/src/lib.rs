//! pgcalm-probe: the HTTP availability probe.
//!
//! Owns: firing requests at application endpoints on a fixed schedule (request `k` to
//! every target starts at `start + k * interval`, each in its own task, so a hung request
//! never delays the next), classifying each as ok / timeout / error by kind (connect
//! refused, HTTP 5xx, HTTP 4xx, body, ...), latency histograms (`hdrhistogram`), the
//! outages (stretches without a successful answer) that the lab report draws, and sample
//! files (CSV or JSON lines).
//!
//! Architecture invariant: probes only target loopback unless the caller allows remote
//! targets ([`ProbeConfig::allow_remote`]), and the crate never prints; callers render
//! its samples and summaries.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgcalm_probe::ProbeError> {
//! use std::time::Duration;
//! use pgcalm_probe::{Probe, ProbeConfig, ProbeTarget, StopWhen};
//! let target = ProbeTarget::parse("list=http://127.0.0.1:8001/list_large/")?;
//! let mut config = ProbeConfig::new(vec![target]);
//! config.interval = Duration::from_millis(200);
//! let probe = Probe::new(config).await?;
//! // In-process, for a given time: samples stream in, the summary comes at the end.
//! let mut running = probe.spawn(StopWhen::after(Duration::from_secs(10)));
//! while let Some(sample) = running.samples.recv().await {
//!     let _ = (sample.outcome, sample.latency_ms);
//! }
//! let report = running.finish().await;
//! println!("{:?}", report.targets[0].longest_outage);
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies

mod error;
mod out;
mod runner;
mod sample;
mod summary;
mod target;

pub use error::ProbeError;
pub use out::{CSV_HEADER, SampleFormat, SampleWriter, csv_field};
pub use runner::{Probe, ProbeConfig, RunningProbe, StopWhen};
pub use sample::{ErrorKind, Outcome, Sample};
pub use summary::{LatencySummary, Outage, ProbeReport, TargetSummary, outages};
pub use target::{CheckedTargets, ProbeTarget, check_targets};
pub use tokio_util::sync::CancellationToken;
