//! What the numbers say about one form: per endpoint the baseline and migration
//! figures, and whether reads and writes were blocked, from the probe's samples plus
//! the monitor's lock-waiter observations.
//!
//! The rules, in one place:
//! - The judged window runs from the migration's start to the end of the probe (a tail
//!   of one probe timeout after the migration), so a request that was sent during the
//!   migration and hung until the timeout is counted, and so is an app broken by the
//!   migration's result (a renamed column fails requests after the commit).
//! - A request *stalled* if it failed, timed out or took [`HUNG_MS`] or longer; the
//!   longest stretch is from the first stalled request of a run of them to the end of
//!   the last (by send time), in seconds.
//! - Reads (or writes) are *blocked* when one of them failed or timed out, or took longer
//!   than the lock timeout + 1 s (the safe forms' limit), or when the monitor saw one
//!   wait at least [`MIN_WAIT_SECS`] on a lock the migration's session held. A wait
//!   behind the migration's own queued lock request (the lock queue with lock_timeout)
//!   is bounded by lock_timeout; it is reported in the notes, and judged by the limit.
//! - The safe criteria: zero failed or timed-out reads and writes, none slower than
//!   the lock timeout + 1 s. Lookups are reported apart (slow without the index whatever
//!   the migration does).

use std::collections::BTreeMap;

use super::monitor::AppWait;
use super::results::{
    Blocking, EndpointRole, EndpointSummary, Outcome, PoolTopology, SafeCriteria, Sample, Span,
    Verdict, WindowStats,
};

/// A request that took this long (ms) counts as hung in the longest stretch.
pub const HUNG_MS: f64 = 500.0;
/// A wait on the migration's lock shorter than this (seconds) is not called blocking.
pub const MIN_WAIT_SECS: f64 = 0.2;

/// Figures of the requests sent in `span`.
pub fn window_stats<'a>(samples: impl Iterator<Item = &'a Sample>, span: Span) -> WindowStats {
    let mut stats = WindowStats::default();
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples.filter(|s| span.contains(s.at_ms)) {
        stats.requests += 1;
        latencies.push(s.latency_ms);
        match s.outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::Timeout => stats.timed_out += 1,
            Outcome::Error => {
                *errors
                    .entry(s.error.clone().unwrap_or_else(|| "other".into()))
                    .or_default() += 1
            }
        }
    }
    stats.errors = errors;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> Option<f64> {
        if latencies.is_empty() {
            return None;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * latencies.len() as f64).ceil().max(1.0) as usize;
        Some(latencies[rank.min(latencies.len()) - 1])
    };
    stats.p50_ms = pct(50.0);
    stats.p90_ms = pct(90.0);
    stats.p99_ms = pct(99.0);
    stats.max_ms = latencies.last().copied();
    stats
}

fn stalled(s: &Sample) -> bool {
    s.outcome != Outcome::Ok || s.latency_ms >= HUNG_MS
}

/// Stretches of consecutive stalled requests (by send time), as spans from the first
/// one's send to the last one's end.
pub fn stall_stretches(samples: &[&Sample]) -> Vec<Span> {
    let mut sorted: Vec<&Sample> = samples.to_vec();
    sorted.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut out = Vec::new();
    let mut current: Option<Span> = None;
    for s in sorted {
        if stalled(s) {
            let end = s.at_ms + s.latency_ms;
            current = Some(match current {
                Some(c) => Span {
                    start_ms: c.start_ms,
                    end_ms: c.end_ms.max(end),
                },
                None => Span {
                    start_ms: s.at_ms,
                    end_ms: end,
                },
            });
        } else if let Some(c) = current.take() {
            out.push(c);
        }
    }
    out.extend(current);
    out
}

/// The longest stretch that overlaps `window`.
fn longest_overlapping(stretches: &[Span], window: Span) -> Option<Span> {
    stretches
        .iter()
        .filter(|s| s.end_ms >= window.start_ms && s.start_ms <= window.end_ms)
        .max_by(|a, b| a.seconds().total_cmp(&b.seconds()))
        .copied()
}

/// One probe target of a form: its name and role.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Probe target name.
    pub name: String,
    /// What it exercises.
    pub role: EndpointRole,
}

/// Everything the verdict is judged on.
pub struct Evidence<'a> {
    /// The probe targets, in report order.
    pub endpoints: &'a [Endpoint],
    /// Every probe sample of the form.
    pub samples: &'a [Sample],
    /// Probe on, no migration.
    pub baseline: Span,
    /// Migration start to probe end.
    pub judged: Span,
    /// App requests the monitor saw waiting on the migration or the blocker.
    pub waits: &'a [AppWait],
    /// The safe forms' lock_timeout, in ms.
    pub lock_timeout_ms: f64,
    /// The pool topology the form ran under.
    pub topology: PoolTopology,
}

/// Per-endpoint summaries and the verdict.
pub fn judge(ev: &Evidence) -> (Vec<EndpointSummary>, Verdict) {
    let limit_ms = ev.lock_timeout_ms + 1000.0;
    let of =
        |name: &str| -> Vec<&Sample> { ev.samples.iter().filter(|s| s.endpoint == name).collect() };
    let endpoints: Vec<EndpointSummary> = ev
        .endpoints
        .iter()
        .map(|e| {
            let samples = of(&e.name);
            EndpointSummary {
                endpoint: e.name.clone(),
                role: e.role,
                baseline: window_stats(samples.iter().copied(), ev.baseline),
                migration: window_stats(samples.iter().copied(), ev.judged),
                longest_outage: longest_overlapping(&stall_stretches(&samples), ev.judged),
            }
        })
        .collect();
    let mut notes = Vec::new();
    let blocking = |role: EndpointRole, notes: &mut Vec<String>| -> Blocking {
        let in_role: Vec<&EndpointSummary> = endpoints.iter().filter(|e| e.role == role).collect();
        let failed: u64 = in_role.iter().map(|e| e.migration.failed()).sum();
        let slowest = in_role
            .iter()
            .filter_map(|e| e.migration.max_ms)
            .fold(0.0, f64::max);
        let longest = in_role
            .iter()
            .filter_map(|e| e.longest_outage)
            .map(|s| s.seconds())
            .fold(0.0, f64::max);
        let held: Vec<&AppWait> = ev
            .waits
            .iter()
            .filter(|w| w.role == role && w.on == "migration" && w.holder_granted)
            .collect();
        let queued: Vec<&AppWait> = ev
            .waits
            .iter()
            .filter(|w| w.role == role && !w.holder_granted)
            .collect();
        let noun = role_noun(role);
        let longest_wait = |ws: &[&AppWait]| ws.iter().map(|w| w.waited_secs).fold(0.0, f64::max);
        if !held.is_empty() {
            let modes = modes(&held);
            notes.push(format!(
                "{noun} waited on a lock held by the migration ({modes} wanted; seen in {} samples, longest wait seen {:.1} s)",
                held.len(),
                longest_wait(&held)
            ));
        }
        if !queued.is_empty() {
            notes.push(format!(
                "{noun} queued behind a lock request still waiting itself (seen in {} samples, longest wait seen {:.1} s)",
                queued.len(),
                longest_wait(&queued)
            ));
        }
        let waited_on_migration = longest_wait(&held) >= MIN_WAIT_SECS;
        let blocked = failed > 0 || slowest > limit_ms || waited_on_migration;
        if blocked && failed > 0 && held.is_empty() && queued.is_empty() {
            let other_waits = ev.waits.iter().any(|w| w.role != role);
            if other_waits && ev.topology == PoolTopology::Shared {
                notes.push(format!(
                    "no {} waited on a lock: they failed waiting for a connection of the shared pool, every one held by a blocked request of the other kind",
                    noun.to_lowercase()
                ));
            }
        }
        Blocking {
            blocked,
            longest_stretch_s: longest,
        }
    };
    let reads = blocking(EndpointRole::Read, &mut notes);
    let writes = blocking(EndpointRole::Write, &mut notes);
    let judged: Vec<&EndpointSummary> = endpoints
        .iter()
        .filter(|e| e.role != EndpointRole::Lookup)
        .collect();
    let failed_or_timed_out = judged.iter().map(|e| e.migration.failed()).sum();
    let slowest_ms = judged
        .iter()
        .filter_map(|e| e.migration.max_ms)
        .fold(0.0, f64::max);
    for e in endpoints.iter().filter(|e| e.role == EndpointRole::Lookup) {
        if e.migration.failed() > 0 {
            notes.push(format!(
                "{}: {} of {} lookups failed or timed out (reported apart: without the index each one scans the whole table)",
                e.endpoint,
                e.migration.failed(),
                e.migration.requests
            ));
        }
    }
    let verdict = Verdict {
        reads,
        writes,
        safe_criteria: SafeCriteria {
            passed: failed_or_timed_out == 0 && slowest_ms <= limit_ms,
            failed_or_timed_out,
            slowest_ms,
            limit_ms,
        },
        notes,
    };
    (endpoints, verdict)
}

fn role_noun(role: EndpointRole) -> &'static str {
    match role {
        EndpointRole::Read => "Reads",
        EndpointRole::Write => "Writes",
        EndpointRole::Lookup => "Lookups",
    }
}

fn modes(waits: &[&AppWait]) -> String {
    let mut modes: Vec<&str> = waits.iter().map(|w| w.mode.as_str()).collect();
    modes.sort_unstable();
    modes.dedup();
    modes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoint: &str, at_ms: f64, latency_ms: f64, outcome: Outcome) -> Sample {
        Sample {
            endpoint: endpoint.into(),
            at_ms,
            latency_ms,
            outcome,
            status: None,
            error: (outcome == Outcome::Error).then(|| "http_5xx".into()),
        }
    }

    fn span(start_ms: f64, end_ms: f64) -> Span {
        Span { start_ms, end_ms }
    }

    #[test]
    fn stretches_run_from_the_first_stalled_send_to_the_last_stalled_end() {
        let s = [
            sample("w", 0.0, 5.0, Outcome::Ok),
            sample("w", 200.0, 3000.0, Outcome::Timeout),
            sample("w", 400.0, 2900.0, Outcome::Ok),
            sample("w", 600.0, 5.0, Outcome::Ok),
            sample("w", 800.0, 600.0, Outcome::Ok),
        ];
        let refs: Vec<&Sample> = s.iter().collect();
        assert_eq!(
            stall_stretches(&refs),
            vec![span(200.0, 3300.0), span(800.0, 1400.0)]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_and_failures_are_counted_by_kind() {
        let s: Vec<Sample> = (1..=100)
            .map(|i| sample("r", i as f64, i as f64, Outcome::Ok))
            .chain([sample("r", 50.0, 7.0, Outcome::Error)])
            .collect();
        let w = window_stats(s.iter(), span(0.0, 1000.0));
        assert_eq!((w.requests, w.ok, w.failed()), (101, 100, 1));
        assert_eq!(w.errors.get("http_5xx"), Some(&1));
        assert_eq!(
            (w.p50_ms, w.p99_ms, w.max_ms),
            (Some(50.0), Some(99.0), Some(100.0))
        );
        assert_eq!(window_stats(s.iter(), span(5000.0, 6000.0)).p50_ms, None);
    }

    fn evidence<'a>(
        endpoints: &'a [Endpoint],
        samples: &'a [Sample],
        waits: &'a [AppWait],
        topology: PoolTopology,
    ) -> Evidence<'a> {
        Evidence {
            endpoints,
            samples,
            baseline: span(0.0, 1000.0),
            judged: span(1000.0, 10_000.0),
            waits,
            lock_timeout_ms: 2000.0,
            topology,
        }
    }

    fn endpoints() -> Vec<Endpoint> {
        super::super::experiment::probe_endpoints()
    }

    #[test]
    fn timed_out_writes_block_writes_and_fail_the_safe_criteria() {
        let samples = vec![
            sample("list_large", 500.0, 4.0, Outcome::Ok),
            sample("add_large", 500.0, 4.0, Outcome::Ok),
            sample("list_large", 1200.0, 4.0, Outcome::Ok),
            sample("add_large", 1200.0, 3000.0, Outcome::Timeout),
            sample("add_large", 1400.0, 2500.0, Outcome::Ok),
            sample("add_large", 4000.0, 4.0, Outcome::Ok),
        ];
        let waits = vec![AppWait {
            role: EndpointRole::Write,
            mode: "RowExclusiveLock".into(),
            waited_secs: 1.5,
            holder_granted: true,
            on: "migration",
        }];
        let eps = endpoints();
        let (summaries, v) = judge(&evidence(&eps, &samples, &waits, PoolTopology::Separate));
        assert!(v.writes.blocked && !v.reads.blocked);
        assert_eq!(v.writes.longest_stretch_s, 3.0);
        assert!(!v.safe_criteria.passed);
        assert_eq!(v.safe_criteria.failed_or_timed_out, 1);
        assert_eq!(summaries[1].baseline.requests, 1);
        assert_eq!(summaries[1].migration.requests, 3);
        assert!(
            v.notes[0].contains("Writes waited on a lock held by the migration"),
            "{:?}",
            v.notes
        );
    }

    #[test]
    fn waits_behind_a_queued_request_within_the_limit_are_not_blocking() {
        let samples = vec![
            sample("list_large", 1200.0, 1990.0, Outcome::Ok),
            sample("add_large", 1200.0, 1995.0, Outcome::Ok),
        ];
        let waits = vec![AppWait {
            role: EndpointRole::Read,
            mode: "AccessShareLock".into(),
            waited_secs: 1.8,
            holder_granted: false,
            on: "migration",
        }];
        let eps = endpoints();
        let (_, v) = judge(&evidence(&eps, &samples, &waits, PoolTopology::Shared));
        assert!(!v.reads.blocked && !v.writes.blocked);
        assert!(v.safe_criteria.passed);
        assert!(v.reads.longest_stretch_s > 1.9);
        assert!(v.notes[0].contains("queued behind"), "{:?}", v.notes);
    }

    #[test]
    fn reads_starved_by_a_shared_pool_are_explained() {
        let samples = vec![
            sample("list_large", 1200.0, 3000.0, Outcome::Timeout),
            sample("add_large", 1200.0, 3000.0, Outcome::Timeout),
        ];
        let waits = vec![AppWait {
            role: EndpointRole::Write,
            mode: "RowExclusiveLock".into(),
            waited_secs: 2.0,
            holder_granted: true,
            on: "migration",
        }];
        let eps = endpoints();
        let (_, v) = judge(&evidence(&eps, &samples, &waits, PoolTopology::Shared));
        assert!(v.reads.blocked && v.writes.blocked);
        assert!(
            v.notes
                .iter()
                .any(|n| n.contains("no reads waited on a lock")),
            "{:?}",
            v.notes
        );
    }
}
