//! Lint and trace over the lint corpus (tests/fixtures/lint/): every case file runs on a
//! fresh database holding `schema.sql` (a migration's down section too, on another one
//! after its up section), and the two must agree on each statement's lock
//! mode (no `lock-table-mismatch`) and verdict. Where they cannot (a rewrite only a run
//! shows, a hazard no run shows), the disagreement must be one of the known ones below,
//! each with the reason, and the report must say who saw it.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use pgcalm_lint::{Evidence, LintOptions, PgVersion, RuleId, Schema, SeenBy};
use pgcalm_migrate::Direction;
use pgcalm_testkit::TestDb;
use pgcalm_trace::{Script, TraceError, TraceOptions, TraceReport, build_report, trace};

#[derive(serde::Deserialize)]
struct Expected {
    case: Vec<Case>,
}

#[derive(serde::Deserialize, Clone)]
struct Case {
    file: String,
    pg_version: Option<u32>,
    trace_note: Option<String>,
    #[serde(default)]
    statement: Vec<ExpectedStatement>,
}

#[derive(serde::Deserialize, Clone)]
struct ExpectedStatement {
    sql: String,
    verdict: String,
    /// What a real PostgreSQL 15 does differently (then lint's finding stays lint's).
    trace_note: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lint")
}

/// Disagreements that are the point of tracing, or that no run can show: `file:rule`
/// and why. The test fails if one of these stops happening, too (keep the list true).
/// Statements and cases with a `trace_note` in expected.toml are left out: the note says
/// what PostgreSQL 15 does differently (e.g. no rewrite of `timestamp -> timestamptz` in
/// the UTC session), and the report shows that finding as lint's alone.
const KNOWN: &[(&str, &str)] = &[
    // Hazards that are about clients, not locks: a run shows nothing wrong.
    (
        "risky/json_column.sql:prefer-jsonb",
        "json breaks DISTINCT/equality in clients; no lock shows it",
    ),
    (
        "risky/rename_column.sql:renaming-column",
        "breaks running clients; the lock is a short ACCESS EXCLUSIVE",
    ),
    (
        "risky/rename_table.sql:renaming-table",
        "breaks running clients; the lock is a short ACCESS EXCLUSIVE",
    ),
    (
        "risky/drop_column.sql:dropping-column",
        "breaks ORM column caches; the lock is short",
    ),
    (
        "risky/drop_table.sql:dropping-table",
        "breaks clients; the lock is short",
    ),
    (
        "risky/unbatched_backfill.sql:unbatched-backfill",
        "row locks for the whole UPDATE: pg_locks shows only ROW EXCLUSIVE",
    ),
    (
        "risky/drop_table_cascade.sql:dropping-table",
        "breaks clients; the lock is short",
    ),
    (
        "risky/drop_table_cascade.sql:dropping-with-cascade",
        "what CASCADE dropped is gone from the catalog, not seen in a lock",
    ),
    (
        "risky/drop_column_cascade.sql:dropping-column",
        "breaks ORM column caches; the lock is short",
    ),
    (
        "risky/drop_column_cascade.sql:dropping-with-cascade",
        "what CASCADE dropped is gone from the catalog, not seen in a lock",
    ),
    (
        "risky/drop_type_cascade.sql:dropping-with-cascade",
        "a column dropped with its data; no lock shows it",
    ),
    (
        "risky/drop_schema_cascade.sql:dropping-schema",
        "tables dropped with their rows; the locks are short",
    ),
    (
        "risky/rename_schema.sql:renaming-schema",
        "breaks running clients; takes no table lock",
    ),
    (
        "risky/drop_primary_key.sql:breaking-replica-identity",
        "breaks logical replication of a published table; the scratch database publishes none",
    ),
    (
        "risky/replica_identity_nothing.sql:breaking-replica-identity",
        "breaks logical replication of a published table; the scratch database publishes none",
    ),
    (
        "risky/replica_identity_default_without_key.sql:breaking-replica-identity",
        "breaks logical replication of a published table; the scratch database publishes none",
    ),
    (
        "risky/disable_trigger_all.sql:disabling-triggers",
        "rows left unchecked show in the data, not in a lock",
    ),
    (
        "risky/disable_trigger_all_load.sql:disabling-triggers",
        "rows left unchecked show in the data, not in a lock",
    ),
    (
        "risky/create_index_concurrently_if_not_exists.sql:concurrent-index-if-not-exists",
        "needs an INVALID leftover of an earlier failed build; a fresh database has none",
    ),
    (
        "risky/do_block_dynamic.sql:dynamic-sql",
        "says what lint could not read; the run shows only its locks",
    ),
    (
        "risky/set_schema.sql:renaming-table",
        "breaks running clients; the lock is a short ACCESS EXCLUSIVE",
    ),
];

struct Outcome {
    case: String,
    /// Findings by who saw them: lint only, trace only, both.
    seen: [usize; 3],
    /// `file:line rule` of the trace-only findings.
    trace_only: Vec<String>,
    /// `file:rule` disagreements found.
    disagreements: Vec<String>,
    mismatches: Vec<String>,
}

/// Traces one direction of a case file on a fresh database holding schema.sql.
async fn run_direction(
    case: &Case,
    direction: Direction,
    options: &LintOptions,
) -> Result<TraceReport, TraceError> {
    let db = TestDb::new().await;
    let dir = corpus();
    let script =
        Script::load_direction(&dir.join(&case.file), &[dir.join("schema.sql")], direction)?;
    let traced = trace(
        db.target(),
        &script,
        &TraceOptions {
            seed_rows: 0,
            ..TraceOptions::default()
        },
    )
    .await?;
    let lint = script.lint(options);
    Ok(build_report(&script, traced, &lint, options))
}

async fn run_case(case: Case) -> Outcome {
    // Linted as `pgcalm lint --schema schema.sql` lints it (pgcalm-lint's corpus test too):
    // the existing tables' partitions, indexes and constraints are known.
    let schema = std::fs::read_to_string(corpus().join("schema.sql")).unwrap();
    let options = LintOptions {
        pg_version: PgVersion(case.pg_version.unwrap_or(15)),
        schema: Some(std::sync::Arc::new(Schema::from_sql(&schema).unwrap())),
        ..LintOptions::default()
    };
    let mut reports = vec![
        run_direction(&case, Direction::Up, &options)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.file)),
    ];
    // A migration's down section too, traced after its up section ran (a case whose up
    // section PostgreSQL refuses, noted in expected.toml, has no down trace).
    match run_direction(&case, Direction::Down, &options).await {
        Ok(down) => reports.push(down),
        Err(TraceError::NoDownSection { .. }) => {}
        Err(_) if case.trace_note.is_some() => {}
        Err(e) => panic!("{} (down): {e}", case.file),
    }
    let findings = || reports.iter().flat_map(|r| &r.findings);
    let mut disagreements = Vec::new();
    let mismatches = findings()
        .filter(|f| f.rule == RuleId::LockTableMismatch)
        .map(|f| format!("{}:{}: {}", case.file, f.span.line, f.message))
        .collect();
    for expected in case.statement.iter().filter(|s| s.trace_note.is_none()) {
        let line = reports
            .iter()
            .flat_map(|r| &r.statements)
            .find(|s| s.trace.sql.contains(&expected.sql))
            .map(|s| s.trace.line);
        let here: Vec<_> = findings()
            .filter(|f| Some(f.span.line) == line && f.rule != RuleId::LockTableMismatch)
            .collect();
        if expected.verdict == "safe" {
            for f in here.iter().filter(|f| f.seen_by == SeenBy::Trace) {
                disagreements.push(format!("{}:{}", case.file, f.rule));
            }
            continue;
        }
        for rule in &expected.rules {
            let seen = here.iter().find(|f| f.rule.name() == rule);
            match seen {
                Some(f) if f.seen_by == SeenBy::Both => {}
                Some(_) => disagreements.push(format!("{}:{rule}", case.file)),
                // The statement never ran (an earlier one failed): lint's alone.
                None if line.is_none() => disagreements.push(format!("{}:{rule}", case.file)),
                None => disagreements.push(format!("{}:{rule} (no finding)", case.file)),
            }
        }
    }
    let count = |by: SeenBy| findings().filter(|f| f.seen_by == by).count();
    Outcome {
        seen: [
            count(SeenBy::Lint),
            count(SeenBy::Trace),
            count(SeenBy::Both),
        ],
        trace_only: findings()
            .filter(|f| f.seen_by == SeenBy::Trace)
            .map(|f| format!("{}:{} {}", case.file, f.span.line, f.rule))
            .collect(),
        case: case.file,
        disagreements,
        mismatches,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lint_and_trace_agree_on_the_corpus() {
    let text = std::fs::read_to_string(corpus().join("expected.toml")).unwrap();
    let expected: Expected = toml::from_str(&text).unwrap();
    let cases = expected.case.clone();
    let outcomes: Vec<Outcome> = futures_util::stream::iter(cases.into_iter().map(run_case))
        .buffer_unordered(4)
        .collect()
        .await;
    assert_eq!(outcomes.len(), expected.case.len());

    let noted: BTreeSet<&str> = expected
        .case
        .iter()
        .filter(|c| c.trace_note.is_some())
        .map(|c| c.file.as_str())
        .collect();
    let mut mismatches = Vec::new();
    let mut found = BTreeSet::new();
    for o in &outcomes {
        if noted.contains(o.case.as_str()) {
            continue;
        }
        mismatches.extend(o.mismatches.iter().cloned());
        // A hazard only the trace saw is a lint miss (the corpus names every hazard).
        found.extend(o.trace_only.iter().map(|t| format!("{t} (trace only)")));
        found.extend(o.disagreements.iter().cloned());
    }
    assert!(
        mismatches.is_empty(),
        "the lock table disagrees with PostgreSQL:\n{}",
        mismatches.join("\n")
    );
    let seen = outcomes.iter().fold([0; 3], |a, o| {
        [a[0] + o.seen[0], a[1] + o.seen[1], a[2] + o.seen[2]]
    });
    eprintln!(
        "corpus: {} files; findings seen by lint only {}, trace only {}, both {}",
        outcomes.len(),
        seen[0],
        seen[1],
        seen[2]
    );
    for o in &outcomes {
        for t in &o.trace_only {
            eprintln!("  trace only: {t}");
        }
    }
    // Not vacuous: most of lint's findings are hazards a run shows, and it showed them.
    assert!(seen[2] > seen[0], "{seen:?}");
    let known: BTreeSet<String> = KNOWN.iter().map(|(k, _)| k.to_string()).collect();
    let unexpected: Vec<&String> = found.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&found).collect();
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "lint and trace disagree where they should not: {unexpected:#?}\nknown disagreements no longer seen: {gone:#?}"
    );
    // Every known disagreement is about a rule no run can observe, so the report
    // marks those findings as lint's alone.
    for (k, why) in KNOWN {
        let rule: RuleId = k.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(rule.evidence(), Evidence::Unobservable, "{k}: {why}");
    }
}
