//! Summaries per target: counts by outcome and error kind, latency percentiles
//! (`hdrhistogram`), and outages (stretches without a successful answer).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::sample::{ErrorKind, Outcome, Sample};
use crate::target::ProbeTarget;

/// Latency of successful answers, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// A stretch of time in which every request to a target failed.
///
/// It starts when the first failing request was sent and ends when the next request sent
/// got its successful answer (a request queued behind a lock counts from the moment the
/// lock let it through), so both ends are exact to within one interval; if the run
/// ended first, it ends when the last failure was known and `recovered` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outage {
    /// Unix time in milliseconds.
    pub start_ms: u64,
    /// Unix time in milliseconds.
    pub end_ms: u64,
    /// `end_ms - start_ms`.
    pub duration_ms: u64,
    /// Requests that failed in it.
    pub failed_requests: u64,
    /// Whether a successful answer came before the run ended.
    pub recovered: bool,
}

/// Everything the probe learned about one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSummary {
    /// Target name.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Requests that finished (ok, timed out or failed).
    pub requests: u64,
    /// Successful answers.
    pub ok: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Other failures.
    pub errors: u64,
    /// Failures by kind (only kinds that occurred).
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Latency of successful answers (None when there was none).
    pub latency: Option<LatencySummary>,
    /// The longest outage, if there was any.
    pub longest_outage: Option<Outage>,
    /// Every outage in time order.
    pub outages: Vec<Outage>,
}

/// A probe run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// When the probe started, Unix time in milliseconds.
    pub started_at_ms: u64,
    /// How long it ran, milliseconds.
    pub duration_ms: u64,
    /// Interval between requests to one target, milliseconds.
    pub interval_ms: u64,
    /// Per-request timeout, milliseconds.
    pub timeout_ms: u64,
    /// Whether connections were kept alive between requests.
    pub keep_alive: bool,
    /// Whether the run was cancelled (Ctrl-C) rather than reaching its end.
    pub cancelled: bool,
    /// One summary per target, in the order given.
    pub targets: Vec<TargetSummary>,
}

impl ProbeReport {
    /// Fills `targets` with one summary per configured target, from every sample of the
    /// run (any order).
    pub fn summarize(mut self, targets: &[ProbeTarget], samples: &[Sample]) -> ProbeReport {
        self.targets = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut mine: Vec<&Sample> =
                    samples.iter().filter(|s| s.target_index == i).collect();
                mine.sort_by_key(|s| s.seq);
                summarize(t, &mine)
            })
            .collect();
        self
    }
}

/// Summarizes one target's samples, given in schedule order.
fn summarize(target: &ProbeTarget, samples: &[&Sample]) -> TargetSummary {
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    let mut errors_by_kind: BTreeMap<ErrorKind, u64> = BTreeMap::new();
    let (mut ok, mut timeouts, mut errors) = (0, 0, 0);
    for s in samples {
        match s.outcome {
            Outcome::Ok => {
                ok += 1;
                histogram.saturating_record(((s.latency_ms * 1000.0).round() as u64).max(1));
            }
            Outcome::Timeout => timeouts += 1,
            Outcome::Error => {
                errors += 1;
                *errors_by_kind
                    .entry(s.error.unwrap_or(ErrorKind::Other))
                    .or_default() += 1;
            }
        }
    }
    let micros_to_ms = |v: u64| v as f64 / 1000.0;
    let latency = (ok > 0).then(|| LatencySummary {
        p50_ms: micros_to_ms(histogram.value_at_quantile(0.50)),
        p90_ms: micros_to_ms(histogram.value_at_quantile(0.90)),
        p99_ms: micros_to_ms(histogram.value_at_quantile(0.99)),
        max_ms: micros_to_ms(histogram.max()),
    });
    let outages = outages(samples);
    let longest_outage = outages.iter().copied().max_by_key(|o| o.duration_ms);
    TargetSummary {
        name: target.name.clone(),
        method: target.method.to_string(),
        url: target.url.to_string(),
        requests: samples.len() as u64,
        ok,
        timeouts,
        errors,
        errors_by_kind: errors_by_kind
            .into_iter()
            .map(|(k, n)| (k.key(), n))
            .collect(),
        latency,
        longest_outage,
        outages,
    }
}

/// Stretches of consecutive failures, from samples in schedule order.
pub fn outages(samples: &[&Sample]) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut open: Option<(u64, u64, u64)> = None; // (start, last failure known, failures)
    for s in samples {
        if s.is_ok() {
            if let Some((start, _, failed)) = open.take() {
                let end = s.ended_at_ms().max(start);
                out.push(Outage {
                    start_ms: start,
                    end_ms: end,
                    duration_ms: end - start,
                    failed_requests: failed,
                    recovered: true,
                });
            }
        } else {
            let (start, known, failed) = open.get_or_insert((s.started_at_ms, 0, 0));
            *known = (*known).max(s.ended_at_ms()).max(*start);
            *failed += 1;
        }
    }
    if let Some((start, known, failed)) = open {
        out.push(Outage {
            start_ms: start,
            end_ms: known,
            duration_ms: known - start,
            failed_requests: failed,
            recovered: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, outcome: Outcome) -> Sample {
        Sample {
            target: "t".into(),
            target_index: 0,
            seq,
            started_at_ms: 1_000 + seq * 100,
            offset_ms: (seq * 100) as f64,
            latency_ms: if outcome == Outcome::Timeout {
                300.0
            } else {
                2.0
            },
            outcome,
            error: (outcome == Outcome::Error).then_some(ErrorKind::ConnectRefused),
            status: None,
            detail: None,
        }
    }

    #[test]
    fn outages_run_from_first_failure_to_next_success() {
        use Outcome::*;
        let s: Vec<Sample> = [Ok, Timeout, Timeout, Ok, Error, Ok, Timeout]
            .into_iter()
            .enumerate()
            .map(|(i, o)| sample(i as u64, o))
            .collect();
        let refs: Vec<&Sample> = s.iter().collect();
        let o = outages(&refs);
        assert_eq!(o.len(), 3);
        assert_eq!(
            (o[0].start_ms, o[0].end_ms, o[0].failed_requests),
            (1100, 1302, 2)
        );
        assert_eq!((o[1].start_ms, o[1].end_ms), (1400, 1502));
        assert!(!o[2].recovered);
        assert_eq!((o[2].start_ms, o[2].end_ms), (1600, 1900));
        let target = crate::ProbeTarget::parse("t=http://127.0.0.1/").unwrap();
        let summary = summarize(&target, &refs);
        assert_eq!(
            (
                summary.requests,
                summary.ok,
                summary.timeouts,
                summary.errors
            ),
            (7, 3, 3, 1)
        );
        assert_eq!(summary.errors_by_kind.get("connect_refused"), Some(&1));
        assert_eq!(summary.longest_outage, Some(o[2]));
        assert_eq!(summary.latency.unwrap().max_ms, 2.0);
    }
}
