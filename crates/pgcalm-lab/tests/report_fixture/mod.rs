//! A small hand-built lab result for the report writers' tests: the seed's scenario
//! (risky on a shared pool, risky on separate pools, safe) and one more scenario. The
//! figures are made up to look like a short run; the tests check how the writers
//! present them, not what a run measures (the lab's own tests do that).
#![allow(dead_code)]

use std::collections::BTreeMap;

use pgcalm_lab::*;

const READ_MS: f64 = 3.2;
const WRITE_MS: f64 = 4.1;
const LOOKUP_MS: f64 = 340.0;
const TIMEOUT_MS: f64 = 3000.0;

fn moment(rel_ms: f64) -> Moment {
    // The run started at 2026-11-25T12:00:00Z.
    let unix_ms = 1_795_608_000_000 + rel_ms as u64;
    let secs = (rel_ms / 1000.0) as u64;
    Moment {
        rel_ms,
        unix_ms,
        utc: format!(
            "2026-11-25T12:{:02}:{:02}.{:03}Z",
            secs / 60,
            secs % 60,
            rel_ms as u64 % 1000
        ),
    }
}

fn target(
    name: &str,
    role: EndpointRole,
    method: &str,
    path: &str,
    interval_ms: u64,
) -> ProbeTarget {
    ProbeTarget {
        name: name.into(),
        role,
        method: method.into(),
        path: path.into(),
        interval_ms,
        timeout_ms: TIMEOUT_MS as u64,
    }
}

fn run_info() -> RunInfo {
    RunInfo {
        pgcalm_version: "0.1.0".into(),
        postgres_version: "15.14".into(),
        rows: 1_000_000,
        machine_cores: 2,
        started: moment(0.0),
        finished: Some(moment(60_000.0)),
        options: RunOptions {
            scenarios: vec!["add_index".into(), "set_not_null".into()],
            out_dir: "lab-report".into(),
            database: "embedded cluster .pgcalm (127.0.0.1:5433/pgcalm_lab)".into(),
            lock_timeout_ms: 2000,
            baseline_ms: 4000,
            probe_targets: vec![
                target("list_large", EndpointRole::Read, "GET", "/list_large/", 200),
                target("add_large", EndpointRole::Write, "POST", "/add_large/", 200),
                target(
                    "lookup",
                    EndpointRole::Lookup,
                    "GET",
                    "/lookup/?email=user5@example.com",
                    2000,
                ),
            ],
            pool_layouts: vec![
                PoolLayout {
                    topology: PoolTopology::Shared,
                    pools: vec![Pool {
                        name: "shared".into(),
                        size: 4,
                        endpoints: vec!["list_large".into(), "add_large".into(), "lookup".into()],
                    }],
                },
                PoolLayout {
                    topology: PoolTopology::Separate,
                    pools: vec![
                        Pool {
                            name: "reads".into(),
                            size: 2,
                            endpoints: vec!["list_large".into(), "lookup".into()],
                        },
                        Pool {
                            name: "writes".into(),
                            size: 2,
                            endpoints: vec!["add_large".into()],
                        },
                    ],
                },
            ],
            topology: None,
        },
    }
}

/// What one endpoint does over time: `(outcome, latency)` for a request sent at `t`.
type Behaviour = dyn Fn(f64) -> (Outcome, f64);

fn samples(
    endpoint: &str,
    interval_ms: f64,
    window: TimeSpan,
    behaviour: &Behaviour,
) -> Vec<RecordedSample> {
    let mut out = Vec::new();
    let mut t = window.start_ms;
    while t < window.end_ms {
        let (outcome, latency_ms) = behaviour(t);
        out.push(RecordedSample {
            endpoint: endpoint.into(),
            at_ms: t,
            latency_ms,
            outcome,
            status: match outcome {
                Outcome::Ok => Some(if endpoint == "add_large" { 201 } else { 200 }),
                Outcome::Error => Some(503),
                Outcome::Timeout => None,
            },
            error: (outcome == Outcome::Error).then_some(ErrorKind::Http5xx),
        });
        t += interval_ms;
    }
    out
}

fn stats(requests: u64, ok: u64, timed_out: u64, errors: u64, p: [f64; 4]) -> WindowStats {
    WindowStats {
        requests,
        ok,
        timed_out,
        errors: if errors > 0 {
            BTreeMap::from([(ErrorKind::Http5xx, errors)])
        } else {
            BTreeMap::new()
        },
        p50_ms: Some(p[0]),
        p90_ms: Some(p[1]),
        p99_ms: Some(p[2]),
        max_ms: Some(p[3]),
    }
}

fn endpoint(
    name: &str,
    role: EndpointRole,
    baseline: WindowStats,
    migration: WindowStats,
    longest_outage: Option<TimeSpan>,
) -> EndpointSummary {
    EndpointSummary {
        endpoint: name.into(),
        role,
        baseline,
        migration,
        longest_outage,
        lock_waits_seen: Some(0),
    }
}

fn blocking(stretch_s: f64) -> Blocking {
    Blocking {
        blocked: stretch_s > 0.0,
        longest_stretch_s: stretch_s,
        level: if stretch_s > 0.0 {
            BlockLevel::Blocked
        } else {
            BlockLevel::No
        },
        held_s: stretch_s,
    }
}

fn statement(
    sql: &str,
    start_ms: f64,
    duration_ms: f64,
    lock_timeout_ms: Option<u64>,
) -> StatementRun {
    StatementRun {
        sql: sql.into(),
        line: Some(2),
        start_ms,
        duration_ms,
        lock_timeout_ms,
        error: None,
    }
}

fn migration(
    name: &str,
    start_ms: f64,
    end_ms: f64,
    statements: Vec<StatementRun>,
) -> MigrationRun {
    MigrationRun {
        migration: name.into(),
        started: moment(start_ms),
        ended: moment(end_ms),
        wall_ms: end_ms - start_ms,
        succeeded: true,
        error: None,
        retries: 0,
        statements,
    }
}

fn lock_waits(from_ms: f64, to_ms: f64, app: &str, mode: &str) -> Vec<LockWait> {
    let mut out = Vec::new();
    let mut t = from_ms;
    while t <= to_ms {
        out.push(LockWait {
            at_ms: t,
            waiter_pid: 5101,
            waiter_app: app.into(),
            mode: mode.into(),
            relation: Some("large_email".into()),
            blocker_pids: vec![4242],
            waited_ms: Some(t - from_ms),
            query: Some("INSERT INTO large_email (name, email) VALUES ($1, $2)".into()),
        });
        t += 250.0;
    }
    out
}

fn phases(command: &str, phases: &[(&str, f64, f64)]) -> Vec<IndexBuildSample> {
    let mut out = Vec::new();
    for (phase, from, to) in phases {
        let mut t = *from;
        while t < *to {
            out.push(IndexBuildSample {
                at_ms: t,
                index: Some("large_email_email_idx".into()),
                command: command.into(),
                phase: (*phase).into(),
                done: Some(((t - from) / 10.0) as i64),
                total: Some(((to - from) / 10.0) as i64),
                unit: Some("blocks".into()),
            });
            t += 250.0;
        }
    }
    out
}

fn explain() -> ExplainPair {
    ExplainPair {
        query: "SELECT * FROM large_email WHERE email = 'user5@example.com'".into(),
        before: Explain {
            node: "Parallel Seq Scan on large_email".into(),
            execution_ms: 33.9,
            plan: "Gather  (cost=1000.00..14612.43 rows=1 width=40) (actual time=0.3..33.8 rows=1 loops=1)\n  Workers Planned: 2\n  ->  Parallel Seq Scan on large_email  (actual time=..)\n        Filter: ((email)::text = 'user5@example.com'::text)\nExecution Time: 33.9 ms".into(),
        },
        after: Explain {
            node: "Index Scan using large_email_email_idx on large_email".into(),
            execution_ms: 0.05,
            plan: "Index Scan using large_email_email_idx on large_email  (actual time=0.03..0.04 rows=1 loops=1)\n  Index Cond: ((email)::text = 'user5@example.com'::text)\nExecution Time: 0.05 ms".into(),
        },
    }
}

const CREATE_INDEX: &str = "CREATE INDEX large_email_email_idx ON large_email (email)";
const CREATE_INDEX_CONCURRENTLY: &str =
    "CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email)";

/// Risky form: the build runs 6.0 s (from +6 s to +12 s of the form's window). Writes
/// hang for all of it; on a shared pool the hung writes take every connection and
/// reads time out too, on separate pools reads go on.
fn risky(topology: PoolTopology, offset_ms: f64) -> FormRun {
    let window = TimeSpan {
        start_ms: offset_ms,
        end_ms: offset_ms + 15_000.0,
    };
    let baseline = TimeSpan {
        start_ms: offset_ms + 500.0,
        end_ms: offset_ms + 4_500.0,
    };
    let (m0, m1) = (offset_ms + 6_000.0, offset_ms + 12_000.0);
    let shared = topology == PoolTopology::Shared;
    let write = move |t: f64| {
        if t >= m0 && t < m1 {
            (Outcome::Timeout, TIMEOUT_MS)
        } else {
            (Outcome::Ok, WRITE_MS)
        }
    };
    let read = move |t: f64| {
        if shared && t >= m0 + 800.0 && t < m1 {
            (Outcome::Timeout, TIMEOUT_MS)
        } else if t >= m0 && t < m1 {
            (Outcome::Ok, READ_MS * 1.5)
        } else {
            (Outcome::Ok, READ_MS)
        }
    };
    let lookup = move |t: f64| {
        if shared && t >= m0 && t < m1 {
            (Outcome::Timeout, TIMEOUT_MS)
        } else if t >= m1 {
            (Outcome::Ok, 1.1)
        } else {
            (Outcome::Ok, LOOKUP_MS)
        }
    };
    let mut all = samples("list_large", 200.0, window, &read);
    all.extend(samples("add_large", 200.0, window, &write));
    all.extend(samples("lookup", 2000.0, window, &lookup));
    let reads_blocked = if shared { 5.2 } else { 0.0 };
    FormRun {
        form: Form::Risky,
        topology,
        probe_window: window,
        baseline,
        migration: migration(
            "add_index:risky",
            m0,
            m1,
            vec![
                statement("BEGIN", m0, 0.2, None),
                statement(CREATE_INDEX, m0 + 0.3, 5_999.0, None),
                statement("COMMIT", m1 - 0.5, 0.4, None),
            ],
        ),
        rollback: Some(migration(
            "add_index:risky (down)",
            offset_ms + 15_200.0,
            offset_ms + 15_300.0,
            vec![],
        )),
        endpoints: vec![
            endpoint(
                "list_large",
                EndpointRole::Read,
                stats(20, 20, 0, 0, [3.2, 3.2, 3.2, 3.2]),
                if shared {
                    stats(30, 4, 26, 0, [3000.0, 3000.0, 3000.0, 3000.0])
                } else {
                    stats(30, 30, 0, 0, [4.8, 4.8, 4.8, 4.8])
                },
                shared.then_some(TimeSpan {
                    start_ms: m0 + 800.0,
                    end_ms: m1,
                }),
            ),
            endpoint(
                "add_large",
                EndpointRole::Write,
                stats(20, 20, 0, 0, [4.1, 4.1, 4.1, 4.1]),
                stats(30, 0, 30, 0, [3000.0, 3000.0, 3000.0, 3000.0]),
                Some(TimeSpan {
                    start_ms: m0,
                    end_ms: m1,
                }),
            ),
            endpoint(
                "lookup",
                EndpointRole::Lookup,
                stats(2, 2, 0, 0, [340.0, 340.0, 340.0, 340.0]),
                if shared {
                    stats(3, 0, 3, 0, [3000.0, 3000.0, 3000.0, 3000.0])
                } else {
                    stats(3, 3, 0, 0, [340.0, 340.0, 340.0, 340.0])
                },
                shared.then_some(TimeSpan {
                    start_ms: m0,
                    end_ms: m1,
                }),
            ),
        ],
        verdict: Verdict {
            reads: blocking(reads_blocked),
            writes: blocking(6.0),
            safe_criteria: SafeCriteria {
                passed: false,
                failed_or_timed_out: if shared { 56 } else { 30 },
                slowest_ms: 3000.0,
                limit_ms: 3000.0,
            },
            notes: if shared {
                vec![
                    "reads stopped because hung writes held all 4 connections of the shared pool"
                        .into(),
                ]
            } else {
                vec![]
            },
        },
        lock_waits: lock_waits(m0 + 100.0, m1 - 100.0, "pgcalm-lab-app", "RowExclusiveLock"),
        index_builds: phases(
            "CREATE INDEX",
            &[
                ("building index: scanning table", m0 + 100.0, m0 + 3_000.0),
                (
                    "building index: sorting live tuples",
                    m0 + 3_000.0,
                    m0 + 4_500.0,
                ),
                (
                    "building index: loading tuples in tree",
                    m0 + 4_500.0,
                    m1 - 100.0,
                ),
            ],
        ),
        explain: Some(explain()),
        samples: all,
        topology_figures: None,
    }
}

/// Safe form: CREATE INDEX CONCURRENTLY, 8 s, nobody blocked.
fn safe(offset_ms: f64) -> FormRun {
    let window = TimeSpan {
        start_ms: offset_ms,
        end_ms: offset_ms + 17_000.0,
    };
    let baseline = TimeSpan {
        start_ms: offset_ms + 500.0,
        end_ms: offset_ms + 4_500.0,
    };
    let (m0, m1) = (offset_ms + 6_000.0, offset_ms + 14_000.0);
    let read = |_t: f64| (Outcome::Ok, READ_MS);
    let write = |_t: f64| (Outcome::Ok, WRITE_MS);
    let lookup = move |t: f64| {
        if t >= m1 {
            (Outcome::Ok, 1.1)
        } else {
            (Outcome::Ok, LOOKUP_MS)
        }
    };
    let mut all = samples("list_large", 200.0, window, &read);
    all.extend(samples("add_large", 200.0, window, &write));
    all.extend(samples("lookup", 2000.0, window, &lookup));
    FormRun {
        form: Form::Safe,
        topology: PoolTopology::Shared,
        probe_window: window,
        baseline,
        migration: migration(
            "add_index:safe",
            m0,
            m1,
            vec![statement(
                CREATE_INDEX_CONCURRENTLY,
                m0,
                8_000.0,
                Some(2000),
            )],
        ),
        rollback: Some(migration(
            "add_index:safe (down)",
            offset_ms + 17_200.0,
            offset_ms + 17_400.0,
            vec![],
        )),
        endpoints: vec![
            endpoint(
                "list_large",
                EndpointRole::Read,
                stats(20, 20, 0, 0, [3.2, 3.2, 3.2, 3.2]),
                stats(40, 40, 0, 0, [3.4, 5.0, 9.7, 12.0]),
                None,
            ),
            endpoint(
                "add_large",
                EndpointRole::Write,
                stats(20, 20, 0, 0, [4.1, 4.1, 4.1, 4.1]),
                stats(40, 40, 0, 0, [4.3, 6.0, 11.0, 14.0]),
                None,
            ),
            endpoint(
                "lookup",
                EndpointRole::Lookup,
                stats(2, 2, 0, 0, [340.0, 340.0, 340.0, 340.0]),
                stats(4, 4, 0, 0, [350.0, 360.0, 361.0, 361.0]),
                None,
            ),
        ],
        verdict: Verdict {
            reads: blocking(0.0),
            writes: blocking(0.0),
            safe_criteria: SafeCriteria {
                passed: true,
                failed_or_timed_out: 0,
                slowest_ms: 14.0,
                limit_ms: 3000.0,
            },
            notes: vec![],
        },
        lock_waits: vec![],
        index_builds: phases(
            "CREATE INDEX CONCURRENTLY",
            &[
                ("waiting for writers before build", m0 + 100.0, m0 + 400.0),
                ("building index: scanning table", m0 + 400.0, m0 + 3_400.0),
                (
                    "building index: sorting live tuples",
                    m0 + 3_400.0,
                    m0 + 4_600.0,
                ),
                (
                    "building index: loading tuples in tree",
                    m0 + 4_600.0,
                    m0 + 5_600.0,
                ),
                (
                    "waiting for writers before validation",
                    m0 + 5_600.0,
                    m0 + 5_800.0,
                ),
                (
                    "index validation: scanning index",
                    m0 + 5_800.0,
                    m0 + 6_600.0,
                ),
                (
                    "index validation: scanning table",
                    m0 + 6_600.0,
                    m0 + 7_800.0,
                ),
                ("waiting for old snapshots", m0 + 7_800.0, m1 - 50.0),
            ],
        ),
        explain: Some(explain()),
        samples: all,
        topology_figures: None,
    }
}

/// A second scenario with a failed safe attempt (lock timeout) and a retry.
fn set_not_null(offset_ms: f64) -> ScenarioResult {
    let mut risky = risky(PoolTopology::Separate, offset_ms);
    risky.explain = None;
    risky.index_builds.clear();
    risky.lock_waits = lock_waits(
        offset_ms + 6_100.0,
        offset_ms + 11_900.0,
        "pgcalm-lab-app",
        "RowExclusiveLock",
    );
    risky.verdict.reads = blocking(0.0);
    risky.migration.migration = "set_not_null:risky".into();
    risky.migration.statements = vec![statement(
        "ALTER TABLE large_email ALTER COLUMN name SET NOT NULL",
        offset_ms + 6_000.0,
        6_000.0,
        None,
    )];
    let mut safe = safe(offset_ms + 20_000.0);
    safe.explain = None;
    safe.index_builds.clear();
    safe.migration.migration = "set_not_null:safe".into();
    safe.migration.retries = 1;
    let m0 = safe.migration.started.rel_ms;
    safe.migration.statements = vec![
        StatementRun {
            error: Some("canceling statement due to lock timeout".into()),
            ..statement(
                "ALTER TABLE large_email ADD CONSTRAINT name_not_null CHECK (name IS NOT NULL) NOT VALID",
                m0,
                2_000.0,
                Some(2000),
            )
        },
        statement(
            "ALTER TABLE large_email ADD CONSTRAINT name_not_null CHECK (name IS NOT NULL) NOT VALID",
            m0 + 2_600.0,
            2.0,
            Some(2000),
        ),
        statement(
            "ALTER TABLE large_email VALIDATE CONSTRAINT name_not_null",
            m0 + 2_700.0,
            4_000.0,
            Some(2000),
        ),
        statement(
            "ALTER TABLE large_email ALTER COLUMN name SET NOT NULL",
            m0 + 6_800.0,
            3.0,
            Some(2000),
        ),
    ];
    ScenarioResult {
        name: "set_not_null".into(),
        title: "Set NOT NULL on large_email.name".into(),
        demonstrates: "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE; a validated CHECK lets it skip the scan.".into(),
        hazard: "blocks reads and writes for the whole scan".into(),
        forms: vec![risky, safe],
    }
}

/// The fixture: the seed's scenario on both topologies and a second scenario.
pub(crate) fn lab_results() -> LabResults {
    let mut results = LabResults::new(run_info());
    results.scenarios.push(ScenarioResult {
        name: "add_index".into(),
        title: "Add an index on large_email.email".into(),
        demonstrates: "The seed's scenario: CREATE INDEX inside a transaction vs CREATE INDEX CONCURRENTLY.".into(),
        hazard: "blocks writes for the whole build (SHARE lock); reads too when blocked writes exhaust the pool".into(),
        forms: vec![risky(PoolTopology::Shared, 0.0), risky(PoolTopology::Separate, 16_000.0), safe(32_000.0)],
    });
    results.scenarios.push(set_not_null(50_000.0));
    results
}
