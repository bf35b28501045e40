//! What the numbers say about one form: per endpoint the baseline and migration
//! figures, and per kind of request (reads, writes) a three-level verdict, from the
//! probe's samples, the monitor's lock-waiter observations and the runner's statement
//! timings.
//!
//! The rules, in one place:
//! - The judged window runs from the migration's start to the end of the probe (a tail
//!   of one probe timeout after the migration), so a request that was sent during the
//!   migration and hung until the timeout is counted, and so is an app broken by the
//!   migration's result (a renamed column fails requests after the commit).
//! - A request *stalled* if it failed, timed out or took [`HUNG_MS`] or longer; the
//!   longest stretch is from the first stalled request of a run of them to the end of
//!   the last (by send time), in seconds.
//! - Reads (or writes) are **blocked** when one of them failed or timed out, or took
//!   longer than the lock timeout + 1 s (the safe forms' limit).
//! - Otherwise they are **queued** when the migration's lock held one of them up:
//!   either the monitor (every 250 ms) saw one wait at least [`QUEUE_MARGIN_MS`] on a
//!   lock of the migration's session (held, or still requested with the request queued
//!   behind it: the lock queue), or, for locks too short for the monitor to see, one
//!   was in flight while the migration held a lock that blocks its kind ([`LockHold`],
//!   from the runner's statement timings and the lock table) and was answered within
//!   [`RELEASE_WINDOW_MS`] after the lock went, [`QUEUE_MARGIN_MS`] slower than its
//!   baseline p99.
//! - Otherwise **no**.
//! - The safe criteria: zero failed or timed-out reads and writes, none slower than
//!   the lock timeout + 1 s. A queued request within the limit meets them (the lock
//!   queue's safe form queues requests behind its ALTER for up to lock_timeout, by
//!   design); a risky form that only queued requests is still reported as hazardous
//!   (the hold grows with the table). Lookups are reported apart (slow without the
//!   index whatever the migration does).

use std::collections::BTreeMap;

use crate::monitor::{self, AppWait, WaitedOn};
use crate::results::{
    BlockLevel, Blocking, EndpointRole, EndpointSummary, ErrorKind, LockWait, Outcome,
    PoolTopology, RecordedSample, SafeCriteria, StatementRun, TimeSpan, Verdict, WindowStats,
};

/// A request that took this long (ms) counts as hung in the longest stretch.
pub(crate) const HUNG_MS: f64 = 500.0;
/// A request held this much (ms) longer than its baseline p99, or seen waiting this long
/// on the migration's lock, was queued by it; less is noise on a busy machine.
pub(crate) const QUEUE_MARGIN_MS: f64 = 50.0;
/// A request answered this soon (ms) after the migration released a lock that blocks its
/// kind, while it was in flight during the hold, was waiting for that lock.
pub(crate) const RELEASE_WINDOW_MS: f64 = 250.0;
/// Slack (ms) between the probe's wall clock and the runner's statement timings.
const CLOCK_SLACK_MS: f64 = 50.0;

/// A stretch of the migration during which its session held (or was queued for) a lock
/// that blocks reads and/or writes of the app's table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LockHold {
    /// From the start of the locking statement to the end of its transaction.
    pub span: TimeSpan,
    /// The lock blocks `SELECT`s.
    pub reads: bool,
    /// The lock blocks `INSERT`s.
    pub writes: bool,
}

impl LockHold {
    fn blocks(&self, role: EndpointRole) -> bool {
        match role {
            EndpointRole::Read => self.reads,
            EndpointRole::Write => self.writes,
            EndpointRole::Lookup => self.reads,
        }
    }
}

/// When the migration held locks that block reads or writes, from its statements' timings
/// (`blocks_of(line)`: what the lock table says the statement at that file line blocks,
/// as (reads, writes)). In one transaction a lock is held from the statement that takes
/// it to the end of the transaction (the last statement, or the one that failed, e.g. on
/// lock_timeout: its transaction is rolled back and retried); without one, each
/// statement holds its locks while it runs.
pub(crate) fn lock_holds(
    statements: &[StatementRun],
    transactional: bool,
    blocks_of: impl Fn(usize) -> (bool, bool),
) -> Vec<LockHold> {
    let mut holds = Vec::new();
    let mut open: Option<LockHold> = None;
    for s in statements {
        let end = s.start_ms + s.duration_ms;
        let (reads, writes) = s.line.map(&blocks_of).unwrap_or((false, false));
        if !transactional {
            if reads || writes {
                holds.push(LockHold {
                    span: TimeSpan {
                        start_ms: s.start_ms,
                        end_ms: end,
                    },
                    reads,
                    writes,
                });
            }
            continue;
        }
        if reads || writes {
            let h = open.get_or_insert(LockHold {
                span: TimeSpan {
                    start_ms: s.start_ms,
                    end_ms: end,
                },
                reads: false,
                writes: false,
            });
            h.reads |= reads;
            h.writes |= writes;
        }
        if let Some(h) = open.as_mut() {
            h.span.end_ms = end;
        }
        if s.error.is_some() {
            holds.extend(open.take());
        }
    }
    holds.extend(open);
    holds
}

/// Successful requests of `samples` that a lock hold queued: in flight while it was held
/// and answered just after it went, [`QUEUE_MARGIN_MS`] slower than `baseline_p99_ms`.
fn queued_by_holds<'a>(
    samples: &[&'a RecordedSample],
    role: EndpointRole,
    holds: &[LockHold],
    baseline_p99_ms: f64,
) -> Vec<&'a RecordedSample> {
    samples
        .iter()
        .copied()
        .filter(|s| s.outcome == Outcome::Ok && s.latency_ms > baseline_p99_ms + QUEUE_MARGIN_MS)
        .filter(|s| {
            let answered = s.at_ms + s.latency_ms;
            holds.iter().filter(|h| h.blocks(role)).any(|h| {
                let released = h.span.end_ms;
                s.at_ms < released
                    && answered > h.span.start_ms
                    && answered >= released - CLOCK_SLACK_MS
                    && answered <= released + RELEASE_WINDOW_MS
            })
        })
        .collect()
}

/// Figures of the requests sent in `span`.
pub(crate) fn window_stats<'a>(
    samples: impl Iterator<Item = &'a RecordedSample>,
    span: TimeSpan,
) -> WindowStats {
    let mut stats = WindowStats::default();
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<ErrorKind, u64> = BTreeMap::new();
    for s in samples.filter(|s| span.contains(s.at_ms)) {
        stats.requests += 1;
        latencies.push(s.latency_ms);
        match s.outcome {
            Outcome::Ok => stats.ok += 1,
            Outcome::Timeout => stats.timed_out += 1,
            Outcome::Error => {
                *errors
                    .entry(s.error.unwrap_or(ErrorKind::Other))
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

fn stalled(s: &RecordedSample) -> bool {
    s.outcome != Outcome::Ok || s.latency_ms >= HUNG_MS
}

/// Stretches of consecutive stalled requests (by send time), as spans from the first
/// one's send to the last one's end.
pub(crate) fn stall_stretches(samples: &[&RecordedSample]) -> Vec<TimeSpan> {
    let mut sorted: Vec<&RecordedSample> = samples.to_vec();
    sorted.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut out = Vec::new();
    let mut current: Option<TimeSpan> = None;
    for s in sorted {
        if stalled(s) {
            let end = s.at_ms + s.latency_ms;
            current = Some(match current {
                Some(c) => TimeSpan {
                    start_ms: c.start_ms,
                    end_ms: c.end_ms.max(end),
                },
                None => TimeSpan {
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
fn longest_overlapping(stretches: &[TimeSpan], window: TimeSpan) -> Option<TimeSpan> {
    stretches
        .iter()
        .filter(|s| s.end_ms >= window.start_ms && s.start_ms <= window.end_ms)
        .max_by(|a, b| a.seconds().total_cmp(&b.seconds()))
        .copied()
}

/// One probe target of a form: its name and role.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// Probe target name.
    pub name: String,
    /// What it exercises.
    pub role: EndpointRole,
}

/// Everything the verdict is judged on.
pub(crate) struct VerdictEvidence<'a> {
    /// The probe targets, in report order.
    pub endpoints: &'a [Endpoint],
    /// Every probe sample of the form.
    pub samples: &'a [RecordedSample],
    /// Probe on, no migration.
    pub baseline: TimeSpan,
    /// Migration start to probe end.
    pub judged: TimeSpan,
    /// App requests the monitor saw waiting on the migration or the blocker.
    pub waits: &'a [AppWait],
    /// Every lock wait the monitor saw (counted per endpoint, not judged).
    pub lock_waits: &'a [LockWait],
    /// When the migration held locks that block reads or writes ([`lock_holds`]).
    pub holds: &'a [LockHold],
    /// The safe forms' lock_timeout, in ms.
    pub lock_timeout_ms: f64,
    /// The pool topology the form ran under.
    pub topology: PoolTopology,
    /// The app connected through a transaction pooler: every app pool shares its
    /// server connections.
    pub through_pooler: bool,
}

/// Per-endpoint summaries and the verdict.
pub(crate) fn judge(ev: &VerdictEvidence) -> (Vec<EndpointSummary>, Verdict) {
    let limit_ms = ev.lock_timeout_ms + 1000.0;
    // Each endpoint's samples, in the order of `ev.endpoints` (and of `endpoints`).
    let samples_of: Vec<Vec<&RecordedSample>> = ev
        .endpoints
        .iter()
        .map(|e| ev.samples.iter().filter(|s| s.endpoint == e.name).collect())
        .collect();
    let endpoints: Vec<EndpointSummary> = ev
        .endpoints
        .iter()
        .zip(&samples_of)
        .map(|(e, samples)| EndpointSummary {
            endpoint: e.name.clone(),
            role: e.role,
            baseline: window_stats(samples.iter().copied(), ev.baseline),
            migration: window_stats(samples.iter().copied(), ev.judged),
            longest_outage: longest_overlapping(&stall_stretches(samples), ev.judged),
            lock_waits_seen: Some(monitor::lock_waits_of(ev.lock_waits, e.role)),
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
            .filter(|w| w.role == role && w.on == WaitedOn::Migration && w.holder_granted)
            .collect();
        let queued: Vec<&AppWait> = ev
            .waits
            .iter()
            .filter(|w| w.role == role && w.on == WaitedOn::Migration && !w.holder_granted)
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
                "{noun} queued behind the migration's lock request, itself still waiting (seen in {} samples, longest wait seen {:.1} s)",
                queued.len(),
                longest_wait(&queued)
            ));
        }
        // Requests queued by a lock too short for the monitor: answered just after the
        // migration released it, well above their baseline.
        let mut by_holds: Vec<&RecordedSample> = Vec::new();
        for (e, samples) in endpoints.iter().zip(&samples_of) {
            if e.role != role {
                continue;
            }
            let samples: Vec<&RecordedSample> = samples
                .iter()
                .copied()
                .filter(|s| ev.judged.contains(s.at_ms))
                .collect();
            let p99 = e.baseline.p99_ms.unwrap_or(0.0);
            by_holds.extend(queued_by_holds(&samples, role, ev.holds, p99));
        }
        let slowest_queued_s = by_holds
            .iter()
            .map(|s| s.latency_ms / 1000.0)
            .fold(0.0, f64::max);
        if !by_holds.is_empty() {
            notes.push(format!(
                "{} {} answered only when the migration released its lock (slowest {:.2} s)",
                by_holds.len(),
                if by_holds.len() == 1 {
                    singular(role).to_string()
                } else {
                    noun.to_lowercase()
                },
                slowest_queued_s
            ));
        }
        let waited_s = longest_wait(&held).max(longest_wait(&queued));
        let level = if failed > 0 || slowest > limit_ms {
            BlockLevel::Blocked
        } else if waited_s * 1000.0 >= QUEUE_MARGIN_MS || !by_holds.is_empty() {
            BlockLevel::Queued
        } else {
            BlockLevel::No
        };
        let held_s = match level {
            BlockLevel::Blocked => longest.max(slowest / 1000.0),
            BlockLevel::Queued => waited_s.max(slowest_queued_s),
            BlockLevel::No => 0.0,
        };
        if level == BlockLevel::Blocked && failed > 0 && held.is_empty() && queued.is_empty() {
            let other_waits = ev.waits.iter().any(|w| w.role != role);
            if other_waits && (ev.topology.is_shared() || ev.through_pooler) {
                notes.push(format!(
                    "no {} waited on a lock: they failed waiting for {}, every one held by a blocked request of the other kind",
                    noun.to_lowercase(),
                    shared_connections(ev)
                ));
            }
        }
        Blocking {
            blocked: level == BlockLevel::Blocked,
            longest_stretch_s: longest,
            level,
            held_s,
        }
    };
    let reads = blocking(EndpointRole::Read, &mut notes);
    let writes = blocking(EndpointRole::Write, &mut notes);
    // On a shared pool, reads the lock lets through can still wait for a connection held
    // by a write waiting on it: not the lock's doing (the level stays), but said.
    let read_slowest = endpoints
        .iter()
        .filter(|e| e.role == EndpointRole::Read)
        .filter_map(|e| e.migration.max_ms)
        .fold(0.0, f64::max);
    if (ev.topology.is_shared() || ev.through_pooler)
        && reads.level == BlockLevel::No
        && writes.level != BlockLevel::No
        && read_slowest >= HUNG_MS
    {
        notes.push(format!(
            "reads were not held by the migration's lock but waited for {} held by writes waiting on it (slowest read {:.1} s)",
            shared_connections(ev),
            read_slowest / 1000.0
        ));
    }
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

/// What reads and writes shared: the pooler's server connections, or the app's pool.
fn shared_connections(ev: &VerdictEvidence) -> &'static str {
    if ev.through_pooler {
        "a server connection of the pooler"
    } else {
        "a connection of the shared pool"
    }
}

fn singular(role: EndpointRole) -> &'static str {
    match role {
        EndpointRole::Read => "read",
        EndpointRole::Write => "write",
        EndpointRole::Lookup => "lookup",
    }
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

    fn sample(endpoint: &str, at_ms: f64, latency_ms: f64, outcome: Outcome) -> RecordedSample {
        RecordedSample {
            endpoint: endpoint.into(),
            at_ms,
            latency_ms,
            outcome,
            status: None,
            error: (outcome == Outcome::Error).then_some(ErrorKind::Http5xx),
        }
    }

    fn span(start_ms: f64, end_ms: f64) -> TimeSpan {
        TimeSpan { start_ms, end_ms }
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
        let refs: Vec<&RecordedSample> = s.iter().collect();
        assert_eq!(
            stall_stretches(&refs),
            vec![span(200.0, 3300.0), span(800.0, 1400.0)]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank_and_failures_are_counted_by_kind() {
        let s: Vec<RecordedSample> = (1..=100)
            .map(|i| sample("r", i as f64, i as f64, Outcome::Ok))
            .chain([sample("r", 50.0, 7.0, Outcome::Error)])
            .collect();
        let w = window_stats(s.iter(), span(0.0, 1000.0));
        assert_eq!((w.requests, w.ok, w.failed()), (101, 100, 1));
        assert_eq!(w.errors.get(&ErrorKind::Http5xx), Some(&1));
        assert_eq!(
            (w.p50_ms, w.p99_ms, w.max_ms),
            (Some(50.0), Some(99.0), Some(100.0))
        );
        assert_eq!(window_stats(s.iter(), span(5000.0, 6000.0)).p50_ms, None);
    }

    fn evidence<'a>(
        endpoints: &'a [Endpoint],
        samples: &'a [RecordedSample],
        waits: &'a [AppWait],
        topology: PoolTopology,
    ) -> VerdictEvidence<'a> {
        VerdictEvidence {
            endpoints,
            samples,
            baseline: span(0.0, 1000.0),
            judged: span(1000.0, 10_000.0),
            waits,
            lock_waits: &[],
            holds: &[],
            lock_timeout_ms: 2000.0,
            topology,
            through_pooler: false,
        }
    }

    fn statement(line: usize, start_ms: f64, duration_ms: f64, error: bool) -> StatementRun {
        StatementRun {
            sql: format!("statement at line {line}"),
            line: Some(line),
            start_ms,
            duration_ms,
            lock_timeout_ms: None,
            error: error.then(|| "canceling statement due to lock timeout".into()),
        }
    }

    #[test]
    fn a_transaction_holds_its_lock_from_the_locking_statement_to_its_end() {
        // Line 2 takes SHARE (blocks writes), line 3 is a pg_sleep (no lock).
        let blocks = |line: usize| (false, line == 2);
        let statements = [
            statement(1, 1000.0, 5.0, false),
            statement(2, 1005.0, 300.0, false),
            statement(3, 1305.0, 1000.0, false),
        ];
        assert_eq!(
            lock_holds(&statements, true, blocks),
            vec![LockHold {
                span: span(1005.0, 2305.0),
                reads: false,
                writes: true
            }]
        );
        // Without a transaction each statement holds its lock while it runs.
        assert_eq!(
            lock_holds(&statements, false, blocks),
            vec![LockHold {
                span: span(1005.0, 1305.0),
                reads: false,
                writes: true
            }]
        );
        // A lock timeout ends the attempt (its transaction is rolled back); the retry
        // is a hold of its own.
        let both = |_| (true, true);
        let retried = [
            statement(1, 1000.0, 2000.0, true),
            statement(1, 3500.0, 10.0, false),
        ];
        assert_eq!(
            lock_holds(&retried, true, both)
                .iter()
                .map(|h| h.span)
                .collect::<Vec<_>>(),
            vec![span(1000.0, 3000.0), span(3500.0, 3510.0)]
        );
    }

    #[test]
    fn a_request_answered_when_a_short_lock_went_was_queued() {
        // Writes every 200 ms at ~5 ms; the migration held SHARE from 1500 to 1800 ms.
        let mut samples = vec![
            sample("add_large", 200.0, 5.0, Outcome::Ok),
            sample("add_large", 400.0, 6.0, Outcome::Ok),
            sample("list_large", 400.0, 4.0, Outcome::Ok),
            // Sent at 1600, in flight during the hold, answered at 1810: queued.
            sample("add_large", 1600.0, 210.0, Outcome::Ok),
            sample("list_large", 1600.0, 4.0, Outcome::Ok),
            sample("add_large", 2000.0, 5.0, Outcome::Ok),
        ];
        let holds = [LockHold {
            span: span(1500.0, 1800.0),
            reads: false,
            writes: true,
        }];
        let eps = endpoints();
        let judge_with_holds = |samples: &[RecordedSample]| {
            judge(&VerdictEvidence {
                holds: &holds,
                ..evidence(&eps, samples, &[], PoolTopology::Separate)
            })
            .1
        };
        let v = judge_with_holds(&samples);
        assert_eq!(v.writes.level, BlockLevel::Queued, "{:?}", v.notes);
        assert!((v.writes.held_s - 0.21).abs() < 1e-9);
        assert!(
            v.notes
                .iter()
                .any(|n| n.starts_with("1 write answered only when the migration released")),
            "{:?}",
            v.notes
        );
        assert_eq!(v.reads.level, BlockLevel::No);
        assert!(v.safe_criteria.passed);
        // The same latency long after the lock went is not the migration's doing.
        samples[3].at_ms = 5000.0;
        let v = judge_with_holds(&samples);
        assert_eq!(v.writes.level, BlockLevel::No, "{:?}", v.notes);
        // A write that timed out is blocked, whatever the holds say.
        samples[3] = sample("add_large", 1600.0, 3000.0, Outcome::Timeout);
        let v = judge_with_holds(&samples);
        assert_eq!(v.writes.level, BlockLevel::Blocked);
        assert!(v.writes.blocked && v.writes.held_s >= 3.0);
    }

    /// An app request seen waiting `secs` on the migration's session (which held its
    /// lock, or was itself queued for it).
    fn wait_on_migration(role: EndpointRole, secs: f64, holder_granted: bool) -> AppWait {
        AppWait {
            role,
            mode: match role {
                EndpointRole::Write => "RowExclusiveLock",
                _ => "AccessShareLock",
            }
            .into(),
            waited_secs: secs,
            holder_granted,
            on: WaitedOn::Migration,
        }
    }

    fn endpoints() -> Vec<Endpoint> {
        crate::experiment::probe_endpoints()
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
        let waits = vec![wait_on_migration(EndpointRole::Write, 1.5, true)];
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
    fn waits_behind_a_queued_lock_request_within_the_limit_are_queued_not_blocked() {
        let samples = vec![
            sample("list_large", 1200.0, 1990.0, Outcome::Ok),
            sample("add_large", 1200.0, 1995.0, Outcome::Ok),
        ];
        let waits = vec![wait_on_migration(EndpointRole::Read, 1.8, false)];
        let eps = endpoints();
        let (_, v) = judge(&evidence(&eps, &samples, &waits, PoolTopology::Shared));
        assert!(!v.reads.blocked && !v.writes.blocked);
        assert_eq!(v.reads.level, BlockLevel::Queued);
        assert_eq!(v.reads.held_s, 1.8);
        assert!(v.safe_criteria.passed);
        assert!(v.reads.longest_stretch_s > 1.9);
        assert!(v.notes[0].contains("queued behind"), "{:?}", v.notes);
    }

    #[test]
    fn reads_slowed_by_a_shared_pool_are_not_held_by_the_lock_but_said() {
        let samples = vec![
            sample("list_large", 1200.0, 2600.0, Outcome::Ok),
            sample("add_large", 1200.0, 3000.0, Outcome::Timeout),
        ];
        let waits = vec![wait_on_migration(EndpointRole::Write, 2.0, true)];
        let eps = endpoints();
        let (_, v) = judge(&evidence(&eps, &samples, &waits, PoolTopology::Shared));
        assert_eq!(
            (v.reads.level, v.writes.level),
            (BlockLevel::No, BlockLevel::Blocked)
        );
        assert!(
            v.notes
                .iter()
                .any(|n| n.contains("waited for a connection") && n.contains("2.6 s")),
            "{:?}",
            v.notes
        );
    }

    #[test]
    fn reads_starved_by_a_shared_pool_are_explained() {
        let samples = vec![
            sample("list_large", 1200.0, 3000.0, Outcome::Timeout),
            sample("add_large", 1200.0, 3000.0, Outcome::Timeout),
        ];
        let waits = vec![wait_on_migration(EndpointRole::Write, 2.0, true)];
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
