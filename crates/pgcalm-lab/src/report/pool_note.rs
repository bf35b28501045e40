//! The shared-vs-separate pools paragraph, worded from the figures of the seed's
//! scenario: its risky form on separate pools, on the seed-like shared pool and (when it
//! ran) on the shared pool served by pgcalm serve, which cancels abandoned queries.

use crate::results::{BlockLevel, EndpointRole, EndpointSummary, Form, FormRun, LabResults};
use crate::results::{PoolTopology, RunOptions, ScenarioResult};
use crate::verdict::QUEUE_MARGIN_MS;

use super::format::{form_label, level_cell};
use super::tables::SEED_SCENARIO;

/// Why the seed's risky form stops reads on a shared pool and not on separate pools, in
/// a paragraph; None unless it ran on separate pools and on the seed-like shared pool.
pub fn pool_topology_note(results: &LabResults) -> Option<String> {
    let s = results.scenario(SEED_SCENARIO)?;
    if let Some(size) = results
        .run
        .options
        .topology
        .as_ref()
        .and_then(|t| t.pooler_pool_size)
    {
        return pooler_note(s, size);
    }
    let separate = s.form(Form::Risky, PoolTopology::Separate)?;
    let seed_like = s.form(Form::Risky, PoolTopology::SharedSeedLike)?;
    let cancelling = s.form(Form::Risky, PoolTopology::Shared);
    let setup = ProbeSetup::of(&results.run.options)?;
    let mitigation = cancelling
        .map(|c| mitigation(c, &setup))
        .unwrap_or_default();
    Some(format!(
        "A plain CREATE INDEX takes a SHARE lock on large_email: it conflicts with the ROW EXCLUSIVE lock every INSERT needs, not with the ACCESS SHARE lock of a SELECT. \
         Measured with reads and writes on separate connection pools: {}. \
         With one shared pool of {} connections (the demo app's default) served like the seed's Django app on sync workers, where a request whose client gave up keeps its connection until its query ends: {}. {}{mitigation}",
        describe(separate),
        setup.pool_size,
        describe(seed_like),
        conclusion(separate, seed_like, &setup),
    ))
}

/// The heading of [`pool_topology_note`]'s paragraph.
pub(crate) fn pool_note_heading(results: &LabResults) -> &'static str {
    match results
        .run
        .options
        .topology
        .as_ref()
        .and_then(|t| t.pooler_pool_size)
    {
        Some(_) => "Through a transaction pooler",
        None => "Shared pool vs separate pools",
    }
}

/// The figures of the run the paragraph quotes: the shared pool's size, the writes'
/// cadence and the probe's timeout.
struct ProbeSetup {
    pool_size: usize,
    write_interval_ms: u64,
    timeout_s: u64,
}

impl ProbeSetup {
    fn of(options: &RunOptions) -> Option<Self> {
        let pool_size = options
            .pool_layouts
            .iter()
            .find(|l| l.topology == PoolTopology::SharedSeedLike)?
            .pools
            .first()?
            .size;
        let writes = options
            .probe_targets
            .iter()
            .find(|t| t.role == EndpointRole::Write)?;
        Some(ProbeSetup {
            pool_size,
            write_interval_ms: writes.interval_ms,
            timeout_s: writes.timeout_ms / 1000,
        })
    }
}

/// Through a transaction pooler every app pool shares the pooler's few server
/// connections: whether the risky form's blocked writes took them all (clients left
/// waiting for one) and stopped reads, and what the safe form did.
fn pooler_note(s: &ScenarioResult, pool_size: u32) -> Option<String> {
    let waits = |f: &FormRun| {
        let t = f.topology_figures.as_ref()?;
        Some((t.max_clients_waiting?, t.max_wait_ms.unwrap_or(0.0)))
    };
    let risky: Vec<String> = s
        .forms
        .iter()
        .filter(|f| f.form == Form::Risky)
        .filter_map(|f| {
            let (waiting, wait) = waits(f)?;
            Some(format!(
                "{}: {}; at most {waiting} clients waited for a server connection, the longest {:.1} s",
                form_label(f.form, f.topology),
                describe(f),
                wait / 1000.0
            ))
        })
        .collect();
    if risky.is_empty() {
        return None;
    }
    // The separate app pools are the run where the app's own pools cannot explain a
    // read held up: only the pooler's shared server connections can.
    let finding = match s.form(Form::Risky, PoolTopology::Separate) {
        Some(sep) if sep.verdict.reads.level == BlockLevel::Blocked => format!(
            "Blocked INSERTs held the pooler's {pool_size} server connections, so reads waited in PgBouncer behind them and were stopped even with the app's reads and writes on separate pools: behind a transaction pooler, separate app pools do not protect reads."
        ),
        Some(sep) if waits(sep).is_some_and(|(w, _)| w > 0) => format!(
            "Blocked INSERTs held the pooler's {pool_size} server connections, so reads waited in PgBouncer behind them even with the app's reads and writes on separate pools (connected directly, separate pools leave reads untouched): slowed, not stopped, because pgcalm serve closes the connection of a write whose client gave up, and PgBouncer then frees its server connection. Where an abandoned query keeps its connection (the seed-like app), reads stop."
        ),
        _ => format!(
            "No client waited for one of the pooler's {pool_size} server connections on separate app pools: the build ended before blocked INSERTs held them all (a bigger table, or a smaller pool, would)."
        ),
    };
    let safe = s
        .forms
        .iter()
        .filter(|f| f.form == Form::Safe)
        .filter_map(|f| {
            let (waiting, wait) = waits(f)?;
            Some(format!(
                " The safe form (CONCURRENTLY): {}; at most {waiting} clients waited, the longest {:.1} s.",
                describe(f),
                wait / 1000.0
            ))
        })
        .collect::<String>();
    Some(format!(
        "Through PgBouncer in transaction pooling mode with {pool_size} server connections for the app's clients (migrations direct). {}. {finding}{safe}",
        risky.join(". ")
    ))
}

fn reads(f: &FormRun) -> Option<&EndpointSummary> {
    f.endpoints.iter().find(|e| e.role == EndpointRole::Read)
}

/// The reads' p99 before and during the migration.
fn read_p99(f: &FormRun) -> Option<(f64, f64)> {
    reads(f).and_then(|e| Some((e.baseline.p99_ms?, e.migration.p99_ms?)))
}

/// One form's figures: levels, the reads' p99, failures and lock waits.
fn describe(f: &FormRun) -> String {
    let p99 = read_p99(f)
        .map(|(before, during)| {
            format!(", read p99 {before:.0} ms before vs {during:.0} ms during")
        })
        .unwrap_or_default();
    let failed = reads(f)
        .map(|e| {
            format!(
                ", {} of {} reads failed or timed out",
                e.migration.failed(),
                e.migration.requests
            )
        })
        .unwrap_or_default();
    let waits = reads(f)
        .and_then(|e| e.lock_waits_seen)
        .map(|n| format!("; {n} read(s) seen waiting on a lock"))
        .unwrap_or_default();
    format!(
        "reads {}, writes {}{p99}{failed}{waits}",
        level_cell(f.verdict.reads),
        level_cell(f.verdict.writes)
    )
}

/// What the separate and the seed-like shared pools' reads say together.
fn conclusion(separate: &FormRun, seed_like: &FormRun, setup: &ProbeSetup) -> String {
    match (separate.verdict.reads.level, seed_like.verdict.reads.level) {
        (BlockLevel::Blocked, _) => "Reads were stopped even on separate pools: see the lock waits for what they waited on (not the index build's SHARE lock, which lets SELECTs through).".to_string(),
        (_, BlockLevel::Blocked) => format!(
            "Reads stopped only on the shared pool, without waiting on any lock: each blocked INSERT kept its connection until the index was built, a write arrives every {} ms, so all {} connections were soon held by waiting writes and reads waited for a connection until they timed out. \
             The seed's \"blocks reads\" is true of an app whose pool (or worker count) blocked writes can use up, not of the lock itself.",
            setup.write_interval_ms, setup.pool_size
        ),
        _ => "Reads were not stopped on the seed-like shared pool either: the build ended before blocked writes had held every connection past a read's timeout (a bigger table, or fewer connections, would stop them).".to_string(),
    }
}

/// The same shared pool served by pgcalm serve, which frees the connection of a request
/// whose client gave up.
fn mitigation(cancelling: &FormRun, setup: &ProbeSetup) -> String {
    let outcome = match cancelling.verdict.reads.level {
        BlockLevel::Blocked => "reads were still stopped".to_string(),
        _ => match read_p99(cancelling) {
            Some((before, during)) if during > before + QUEUE_MARGIN_MS => {
                format!("reads slowed (p99 {before:.0} ms to {during:.0} ms) but did not stop")
            }
            _ => "reads were not slowed".to_string(),
        },
    };
    format!(
        " On the same shared pool served by pgcalm serve as it runs, which cancels the query of a request whose client gave up ({} s) and frees its connection: {}. That mitigation is pgcalm serve's, not the lock's: {outcome}.",
        setup.timeout_s,
        describe(cancelling)
    )
}
