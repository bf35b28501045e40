//! From what a trace saw to findings with lint's rule names, each marked with who saw
//! it: `lint` (static analysis only), `trace` (only seen when run: a rewrite whose type
//! change or default the text cannot judge) or `both`.
//!
//! Each lint rule's id names the evidence that shows its hazard on a real server
//! ([`RuleId::evidence`], pgcalm-lint's one table of rule facts): a rewrite, a table scan
//! under a lock, an index built under SHARE, a lock that blocks reads or writes, a
//! statement run while an earlier one's lock is still held, a failure, a blocking lock
//! taken with no `lock_timeout`, or nothing a run can show (a rename breaks clients, not
//! locks). A lint finding whose evidence the trace saw becomes `both`. Evidence seen with
//! no lint finding to explain it becomes a finding of its own, `trace` only, under the
//! rule that names that hazard. Each statement's observed locks are also compared with
//! the lock table (`pgcalm_lint::statement_locks`), and a difference is reported as
//! `lock-table-mismatch`: pgcalm's one definition of locks
//! disagrees with PostgreSQL.

use std::path::PathBuf;

use pgcalm_lint::{
    Condition, Effect, Evidence, Finding, LintOptions, LintResult, LockMode, LockTarget, RuleId,
    SeenBy, Severity, StatementLocks, sql_statement_locks,
};
use serde::Serialize;

use crate::script::Script;
use crate::tracer::{StatementTrace, Trace};

/// Per statement: what lint predicted, what the trace saw, and each one's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct StatementReport {
    /// The trace of the statement.
    #[serde(flatten)]
    pub trace: StatementTrace,
    /// The lock table's prediction: `SHARE on large_email`, one per relation.
    pub predicted: Vec<String>,
    /// The evidence kinds the trace saw.
    pub evidence: Vec<Evidence>,
    /// Rules of the findings lint reported on it.
    pub lint_rules: Vec<RuleId>,
    /// Rules of the findings the trace saw (confirmed or its own).
    pub trace_rules: Vec<RuleId>,
}

impl StatementReport {
    /// Lint's verdict: risky when it has a finding.
    pub fn lint_risky(&self) -> bool {
        !self.lint_rules.is_empty()
    }

    /// The trace's verdict: risky when it saw a hazard.
    pub fn trace_risky(&self) -> bool {
        !self.trace_rules.is_empty()
    }
}

/// The trace of one file, as findings plus the per-statement detail.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// The traced file.
    pub path: PathBuf,
    /// Its text (for snippets).
    #[serde(skip)]
    pub source: String,
    /// `server_version` of the server that ran it.
    pub server_version: String,
    /// Rows seeded into the existing tables.
    pub seeded: Vec<crate::seed::Seeded>,
    /// Every finding, lint's and the trace's, in statement order, with `seen_by`.
    pub findings: Vec<Finding>,
    /// Per traced statement.
    pub statements: Vec<StatementReport>,
    /// Statements not run because an earlier one failed.
    pub not_run: usize,
    /// A pgcalm migration file (not plain SQL).
    pub migration: bool,
    /// Lint's findings suppressed by `-- pgcalm:ignore`.
    pub ignored: Vec<pgcalm_lint::Ignored>,
}

/// Combines a trace with lint's findings on the same file.
pub fn build_report(
    script: &Script,
    trace: Trace,
    lint: &LintResult,
    options: &LintOptions,
) -> TraceReport {
    let traced_count = trace.statements.len();
    let total = script
        .statements
        .iter()
        .filter(|s| !s.kind.transaction_control)
        .count();
    let mut findings: Vec<Finding> = Vec::new();
    let mut statements = Vec::new();
    for st in trace.statements {
        let predicted = sql_statement_locks(&st.sql, options.pg_version);
        let lint_here: Vec<&Finding> = lint
            .findings
            .iter()
            .filter(|f| f.span.line == st.line)
            .collect();
        let seen = observed_evidence(&st);
        let mut trace_rules = Vec::new();
        for f in &lint_here {
            let e = f.rule.evidence();
            let mut f = (*f).clone();
            if e != Evidence::Unobservable && seen.contains(&e) {
                f.seen_by = SeenBy::Both;
                trace_rules.push(f.rule);
            }
            findings.push(f);
        }
        for e in &seen {
            if lint_here.iter().any(|f| explains(f.rule.evidence(), *e)) {
                continue;
            }
            if let Some(f) = trace_only(&st, *e, &predicted, script.setup.len()) {
                trace_rules.push(f.rule);
                findings.push(f);
            }
        }
        if st.error.is_none()
            && let Some(f) = lock_mismatch(&st, &predicted)
        {
            trace_rules.push(f.rule);
            findings.push(f);
        }
        statements.push(StatementReport {
            predicted: predicted
                .locks
                .iter()
                .map(|l| format!("{} on {}", l.mode, l.target))
                .collect(),
            evidence: seen,
            lint_rules: lint_here.iter().map(|f| f.rule).collect(),
            trace_rules,
            trace: st,
        });
    }
    // Lint's findings on statements that never ran (after a failure) stay lint's.
    for f in &lint.findings {
        if !statements.iter().any(|s| s.trace.line == f.span.line) {
            findings.push(f.clone());
        }
    }
    findings.sort_by_key(|f| (f.span.line, f.span.start));
    TraceReport {
        path: script.path.clone(),
        source: script.source.clone(),
        server_version: trace.server_version,
        seeded: trace.seeded,
        findings,
        statements,
        not_run: total.saturating_sub(traced_count),
        migration: script.migration.is_some(),
        ignored: lint.ignored.clone(),
    }
}

/// Whether a lint finding with evidence `predicted` accounts for `seen`: the same kind,
/// or both long work under a write-blocking lock (an exclusion or unique constraint
/// builds its index and checks the rows in one go).
fn explains(predicted: Evidence, seen: Evidence) -> bool {
    let long_work = |e| matches!(e, Evidence::Scan | Evidence::IndexBuild);
    predicted == seen || (long_work(predicted) && long_work(seen))
}

/// The evidence kinds a statement's trace shows, in [`Evidence`] order.
fn observed_evidence(st: &StatementTrace) -> Vec<Evidence> {
    let strongest_on = |table: &str| {
        st.locks
            .iter()
            .chain(&st.held_before)
            .filter(|l| l.relation == table)
            .filter_map(|l| l.lock_mode())
            .max()
    };
    let under_write_lock = |table: &str| strongest_on(table).is_some_and(|m| m.blocks().writes);
    let mut out = Vec::new();
    if !st.rewrites.is_empty() {
        out.push(Evidence::Rewrite);
    }
    let scanned = st.scans.iter().any(|t| under_write_lock(t))
        // Added validated, or validated while the transaction still holds a lock that
        // blocks writes (VALIDATE in the transaction that added it NOT VALID).
        || st.constraints.iter().any(|c| {
            c.validated
                && c.kind != "primary key"
                && c.kind != "unique"
                && under_write_lock(&c.table)
        })
        || st
            .not_null
            .iter()
            .any(|n| !n.proven_by_constraint && under_write_lock(&n.table));
    if scanned {
        out.push(Evidence::Scan);
    }
    if st.indexes.iter().any(|i| under_write_lock(&i.table)) {
        out.push(Evidence::IndexBuild);
    }
    // Index and sequence locks follow from the table's (a concurrent drop ends with
    // ACCESS EXCLUSIVE on the index nobody uses any more).
    let table_blocking = st.locks.iter().any(|l| l.on_table() && l.blocks().any());
    if table_blocking {
        out.push(Evidence::BlockingLock);
    }
    // Work done while an earlier statement's write-blocking lock is still held.
    if st
        .held_before
        .iter()
        .any(|l| l.on_table() && l.blocks().writes)
        && st.error.is_none()
    {
        out.push(Evidence::HeldLock);
    }
    if st.error.is_some() {
        out.push(Evidence::Failure);
    }
    if st.lock_timeout == "0" && table_blocking {
        out.push(Evidence::NoLockTimeout);
    }
    out
}

/// A finding of the trace's own, with its rule's severity.
fn trace_finding(
    st: &StatementTrace,
    rule: RuleId,
    lock: Option<(LockMode, String)>,
    message: String,
    help: &str,
) -> Finding {
    Finding {
        rule,
        severity: rule.severity(),
        span: st.span,
        statement: st.label.clone(),
        blocks: lock.as_ref().map(|(m, _)| m.blocks()).unwrap_or_default(),
        lock: lock.as_ref().map(|(m, _)| *m),
        table: lock.map(|(_, t)| t),
        message,
        help: help.to_string(),
        fix_sql: None,
        seen_by: SeenBy::Trace,
        table_size: None,
    }
}

/// The strongest lock the statement took on `relation`.
fn lock_on(st: &StatementTrace, relation: &str) -> Option<(LockMode, String)> {
    st.locks
        .iter()
        .filter(|l| l.relation == relation)
        .filter_map(|l| l.lock_mode())
        .max()
        .map(|m| (m, relation.to_string()))
}

/// A finding for evidence lint did not predict, under the rule that names the hazard.
/// `setup_statements`: how many statements ran before the traced ones (`--setup` files,
/// a migration's earlier migrations), for the words of a failure.
fn trace_only(
    st: &StatementTrace,
    e: Evidence,
    predicted: &StatementLocks,
    setup_statements: usize,
) -> Option<Finding> {
    match e {
        Evidence::Rewrite => {
            let table = st.rewrites[0].clone();
            // The lock table knows which condition would have spared the rewrite.
            let rule = predicted
                .locks
                .iter()
                .find_map(|l| match l.rewrite {
                    Effect::Unless(Condition::NonVolatileDefault) => {
                        Some(RuleId::AddingFieldWithVolatileDefault)
                    }
                    Effect::Unless(Condition::BinaryCoercible) => Some(RuleId::ChangingColumnType),
                    _ => None,
                })
                .unwrap_or(RuleId::TableRewriteCommand);
            Some(trace_finding(
                st,
                rule,
                lock_on(st, &table),
                format!(
                    "{} rewrote {table} (new relfilenode) while holding its lock; lint could not tell from the text",
                    st.label
                ),
                "add a new column (or table), backfill it in batches, then switch over; a rewrite blocks every read and write for its whole duration",
            ))
        }
        Evidence::Scan => {
            let (rule, table) = match st.not_null.iter().find(|n| !n.proven_by_constraint) {
                Some(n) => (RuleId::SettingNotNull, n.table.clone()),
                None => (
                    RuleId::ConstraintMissingNotValid,
                    st.scans
                        .first()
                        .cloned()
                        .or_else(|| st.constraints.first().map(|c| c.table.clone()))
                        .unwrap_or_default(),
                ),
            };
            Some(trace_finding(
                st,
                rule,
                lock_on(st, &table),
                format!(
                    "{} read all of {table} under a lock that blocks writes",
                    st.label
                ),
                "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a separate transaction (SHARE UPDATE EXCLUSIVE)",
            ))
        }
        Evidence::IndexBuild => {
            let index = &st.indexes[0];
            Some(trace_finding(
                st,
                RuleId::RequireConcurrentIndexCreation,
                lock_on(st, &index.table),
                format!(
                    "{} built {} on {} under a lock that blocks writes",
                    st.label, index.index, index.table
                ),
                "build the index with CREATE INDEX CONCURRENTLY outside a transaction (transaction:false)",
            ))
        }
        Evidence::Failure if missing_object(st) => Some(trace_finding(
            st,
            RuleId::StatementFailed,
            None,
            format!(
                "{} failed: {} in the scratch database the trace ran it in",
                st.label,
                st.error.as_deref().unwrap_or("")
            ),
            &missing_object_help(setup_statements),
        )),
        Evidence::Failure => Some(trace_finding(
            st,
            RuleId::StatementFailed,
            None,
            format!(
                "{} failed on a database with rows: {}",
                st.label,
                st.error.as_deref().unwrap_or("")
            ),
            "the migration would fail in production as it failed here; fix the statement",
        )),
        Evidence::NoLockTimeout => {
            let l = st
                .locks
                .iter()
                .filter(|l| l.on_table() && l.blocks().any())
                .max_by_key(|l| l.lock_mode())?;
            // Trace has reported this one as a warning, where lint's rule is an error.
            Some(Finding {
                severity: Severity::Warning,
                ..trace_finding(
                    st,
                    RuleId::MissingLockTimeout,
                    lock_on(st, &l.relation),
                    format!(
                        "{} took {} on {} with lock_timeout = 0: queued behind a long transaction it would block the application indefinitely",
                        st.label, l.mode, l.relation
                    ),
                    "SET lock_timeout = '2s' before it (and retry on timeout)",
                )
            })
        }
        // A blocking lock or a held lock is a hazard only through one of lint's rules
        // (a short ACCESS EXCLUSIVE under lock_timeout is how safe DDL works).
        Evidence::BlockingLock | Evidence::HeldLock | Evidence::Unobservable => None,
    }
}

/// Whether the statement failed because something it names does not exist (a table,
/// column, schema, type or function): in a trace, first of all a sign that the scratch
/// database lacks the schema the file expects.
fn missing_object(st: &StatementTrace) -> bool {
    // undefined_table, undefined_column, undefined_object, undefined_function,
    // invalid_schema_name.
    matches!(
        st.error_code.as_deref(),
        Some("42P01" | "42703" | "42704" | "42883" | "3F000")
    )
}

/// What to do when a statement names something the scratch database lacks.
fn missing_object_help(setup_statements: usize) -> String {
    if setup_statements == 0 {
        "the trace runs the file in a new, empty database, and nothing ran before it there, \
         so the tables it uses do not exist: give the schema it expects with --setup FILE \
         (e.g. a `pg_dump --schema-only` of production, or the migrations that create it), \
         or trace the migration file in its app's folder (migrations/<app>/<NNNN>_<name>.sql), \
         where the app's earlier migrations run first"
            .to_string()
    } else {
        format!(
            "the set-up run before it ({setup_statements} statement{}: the app's earlier \
             migrations and --setup files) did not create it: add what creates it to --setup; \
             if production lacks it too, the statement would fail there as well",
            if setup_statements == 1 { "" } else { "s" }
        )
    }
}

/// Compares each existing table's observed lock with the lock table's prediction.
fn lock_mismatch(st: &StatementTrace, predicted: &StatementLocks) -> Option<Finding> {
    if predicted.opaque || (st.sampled && st.locks.is_empty()) {
        return None;
    }
    let mut problems = Vec::new();
    for p in &predicted.locks {
        let name = match &p.target {
            LockTarget::Table(t) | LockTarget::Index(t) => t,
            _ => continue,
        };
        let matches = |relation: &str| {
            relation.rsplit('.').next() == Some(name.name.as_str())
                && name
                    .schema
                    .as_deref()
                    .is_none_or(|s| relation.split('.').next() == Some(s))
        };
        let relation_seen = st
            .locks
            .iter()
            .chain(&st.held_before)
            .any(|l| matches(&l.relation));
        if !relation_seen {
            // Not an existing relation (created by the migration), or not locked at all.
            continue;
        }
        let new = st
            .locks
            .iter()
            .filter(|l| matches(&l.relation))
            .filter_map(|l| l.lock_mode())
            .max();
        let already_held = st
            .held_before
            .iter()
            .filter(|l| matches(&l.relation))
            .filter_map(|l| l.lock_mode())
            .any(|m| m >= p.mode);
        match new {
            Some(m) if m == p.mode => {}
            // Re-taking a mode the transaction holds adds no pg_locks row.
            None if already_held => {}
            Some(m) if m < p.mode && already_held => {}
            other => problems.push(format!(
                "the lock table says {} on {name}, PostgreSQL took {}",
                p.mode,
                other.map_or("no new lock".to_string(), |m| m.to_string())
            )),
        }
    }
    if problems.is_empty() {
        return None;
    }
    Some(trace_finding(
        st,
        RuleId::LockTableMismatch,
        None,
        problems.join("; "),
        "pgcalm's lock table (crates/pgcalm-lint/src/locks/) disagrees with the server: report it; trust the traced lock",
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tracer::ObservedLock;
    use pgcalm_lint::PgVersion;

    /// A statement as the tracer would record it, with these locks on existing tables.
    fn traced(sql: &str, locks: &[(&str, &str)]) -> StatementTrace {
        let statement = crate::script::ScriptStatement {
            path: "t.sql".into(),
            span: pgcalm_lint::Span {
                start: 0,
                end: sql.len(),
                line: 1,
                column: 1,
            },
            sql: sql.to_string(),
            kind: Default::default(),
        };
        let mut st = StatementTrace::new(&statement, true, Duration::ZERO);
        st.lock_timeout = "2s".into();
        st.locks = locks
            .iter()
            .map(|(relation, mode)| ObservedLock {
                relation: relation.to_string(),
                relation_kind: "table",
                mode: mode.to_string(),
                granted: true,
            })
            .collect();
        st
    }

    #[test]
    fn a_lock_the_lock_table_did_not_predict_is_a_mismatch() {
        let sql = "CREATE INDEX i ON t (a)";
        let predicted = sql_statement_locks(sql, PgVersion::DEFAULT);
        assert!(lock_mismatch(&traced(sql, &[("public.t", "ShareLock")]), &predicted).is_none());
        let f = lock_mismatch(
            &traced(sql, &[("public.t", "AccessExclusiveLock")]),
            &predicted,
        )
        .expect("ACCESS EXCLUSIVE where the table says SHARE");
        assert_eq!(f.rule, RuleId::LockTableMismatch);
        assert_eq!(f.seen_by, SeenBy::Trace);
        assert_eq!(
            f.message,
            "the lock table says SHARE on t, PostgreSQL took ACCESS EXCLUSIVE"
        );
        // A mode the transaction already holds adds no pg_locks row: not a mismatch.
        let mut held = traced(sql, &[]);
        held.held_before = traced(sql, &[("public.t", "ShareLock")]).locks;
        assert!(lock_mismatch(&held, &predicted).is_none());
    }

    #[test]
    fn an_unpredicted_rewrite_is_a_trace_finding_named_by_the_lock_tables_condition() {
        let sql = "ALTER TABLE t ADD COLUMN w int DEFAULT pick()";
        let predicted = sql_statement_locks(sql, PgVersion::DEFAULT);
        let mut st = traced(sql, &[("public.t", "AccessExclusiveLock")]);
        st.rewrites = vec!["public.t".into()];
        let seen = observed_evidence(&st);
        assert_eq!(seen, [Evidence::Rewrite, Evidence::BlockingLock]);
        let f = trace_only(&st, Evidence::Rewrite, &predicted, 0).unwrap();
        assert_eq!(f.rule, RuleId::AddingFieldWithVolatileDefault);
        assert_eq!(f.lock, Some(LockMode::AccessExclusive));
        // A blocking lock alone is no hazard of its own (short DDL under lock_timeout).
        assert!(trace_only(&st, Evidence::BlockingLock, &predicted, 0).is_none());
    }

    #[test]
    fn a_blocking_lock_with_lock_timeout_zero_is_missing_lock_timeout() {
        let sql = "CREATE INDEX i ON t (a)";
        let mut st = traced(sql, &[("public.t", "ShareLock")]);
        assert!(!observed_evidence(&st).contains(&Evidence::NoLockTimeout));
        st.lock_timeout = "0".into();
        assert!(observed_evidence(&st).contains(&Evidence::NoLockTimeout));
    }

    #[test]
    fn a_trace_only_finding_is_under_a_rule_whose_evidence_it_is() {
        use crate::tracer::{IndexBuilt, NotNullSet};
        let sql = "ALTER TABLE t ALTER COLUMN c TYPE bigint";
        let predicted = sql_statement_locks(sql, PgVersion::DEFAULT);
        let mut st = traced(sql, &[("public.t", "AccessExclusiveLock")]);
        st.rewrites = vec!["public.t".into()];
        st.scans = vec!["public.t".into()];
        st.indexes = vec![IndexBuilt {
            index: "public.i".into(),
            table: "public.t".into(),
            valid: true,
        }];
        st.error = Some("boom".into());
        st.lock_timeout = "0".into();
        let mut rules = Vec::new();
        for e in observed_evidence(&st) {
            if let Some(f) = trace_only(&st, e, &predicted, 0) {
                assert_eq!(f.rule.evidence(), e, "{}", f.rule);
                rules.push(f.rule);
            }
        }
        st.not_null = vec![NotNullSet {
            table: "public.t".into(),
            column: "c".into(),
            proven_by_constraint: false,
        }];
        let f = trace_only(&st, Evidence::Scan, &predicted, 0).unwrap();
        assert_eq!(f.rule.evidence(), Evidence::Scan);
        rules.push(f.rule);
        use RuleId::*;
        assert_eq!(
            rules,
            [
                ChangingColumnType,
                ConstraintMissingNotValid,
                RequireConcurrentIndexCreation,
                StatementFailed,
                MissingLockTimeout,
                SettingNotNull
            ]
        );
    }
}
