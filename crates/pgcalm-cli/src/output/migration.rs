//! What a migration runs, statement by statement, with the timeouts the policy sets,
//! the lock each takes (the lock table), what that blocks, and lint's verdict: the text
//! and JSON of `pgcalm migrate --plan` and `pgcalm sqlmigrate`.

use pgcalm_lint::LintOptions;
use pgcalm_migrate::{
    Direction, MigrationFile, Plan, Policy, Setting, StatementVerdict, statement_verdicts,
};

/// The `--plan` text: each migration, then each statement with its file line, the
/// timeouts it runs with, the lock it takes (the lock table), what that blocks, and its
/// verdict (lint).
pub(crate) fn render_plan(plan: &Plan, policy: &Policy, lint: &LintOptions) -> String {
    let mut out = String::from("Planned operations:\n");
    if plan.steps.is_empty() {
        out.push_str("  No planned migration operations.\n");
        return out;
    }
    for step in &plan.steps {
        let section = step.section();
        let verb = match step.direction {
            Direction::Up => "apply",
            Direction::Down => "unapply",
        };
        let tx = if section.transaction {
            "in one transaction"
        } else {
            "transaction:false, statement by statement"
        };
        let resume = if step.resume_from > 0 {
            format!(
                "; resumes at statement {} (1-{} done by an interrupted run)",
                step.resume_from + 1,
                step.resume_from
            )
        } else {
            String::new()
        };
        out.push_str(&format!("{} ({verb}, {tx}{resume})\n", step.file.id()));
        let verdicts = statement_verdicts(&step.file, step.direction, step.resume_from, lint);
        for (s, v) in section
            .statements
            .iter()
            .skip(step.resume_from)
            .zip(&verdicts)
        {
            let settings: Vec<String> = policy
                .settings_for(s.kind())
                .iter()
                .map(|x| format!("{} {}", x.name, x.value))
                .collect();
            out.push_str(&format!(
                "    {}:{}  {}  [{}]\n      lock: {}; {}\n",
                step.file.path.display(),
                s.line,
                s.summary(),
                settings.join(", "),
                v.lock_summary(),
                v.verdict()
            ));
        }
    }
    out
}

/// The `--plan --format json` document.
pub(crate) fn plan_json(plan: &Plan, policy: &Policy, lint: &LintOptions) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = plan
        .steps
        .iter()
        .map(|step| {
            let section = step.section();
            serde_json::json!({
                "app": step.file.app,
                "name": step.file.name,
                "path": step.file.path,
                "direction": step.direction,
                "transaction": section.transaction,
                "resume_from": step.resume_from,
                "statements": section.statements.iter().skip(step.resume_from)
                    .zip(statement_verdicts(&step.file, step.direction, step.resume_from, lint))
                    .map(|(s, v)| with_verdict(serde_json::json!({
                    "number": s.index + 1,
                    "line": s.line,
                    "kind": s.kind().label,
                    "sql": s.sql,
                    "settings": policy.settings_for(s.kind()),
                }), &v)).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "operation": plan.operation, "steps": steps })
}

/// A statement's `--format json` object (`--plan`, `sqlmigrate`) with what the lock
/// table and lint say about it added: `locks`, `verdict` (`safe` or `risky`), `rules`.
fn with_verdict(mut statement: serde_json::Value, v: &StatementVerdict) -> serde_json::Value {
    statement["locks"] = serde_json::json!(v.locks.locks);
    statement["verdict"] = if v.findings.is_empty() {
        "safe"
    } else {
        "risky"
    }
    .into();
    statement["rules"] = v
        .findings
        .iter()
        .map(|f| f.rule.name())
        .collect::<Vec<_>>()
        .into();
    statement
}

/// `sqlmigrate`'s `--format json` document.
pub(crate) fn sql_json(
    file: &MigrationFile,
    direction: Direction,
    policy: &Policy,
    lint: &LintOptions,
) -> serde_json::Value {
    let section = file.section(direction).expect("checked by the caller");
    serde_json::json!({
        "app": file.app,
        "name": file.name,
        "path": file.path,
        "direction": direction,
        "transaction": section.transaction,
        "statements": section.statements.iter()
            .zip(statement_verdicts(file, direction, 0, lint))
            .map(|(s, v)| with_verdict(serde_json::json!({
            "line": s.line, "sql": s.sql, "settings": policy.settings_for(s.kind()),
        }), &v)).collect::<Vec<_>>(),
    })
}

/// `sqlmigrate`'s SQL text: the transaction around the statements (or none), the
/// timeouts set before each, and each statement's file line, lock and verdict.
pub(crate) fn sql_text(
    file: &MigrationFile,
    direction: Direction,
    policy: &Policy,
    lint: &LintOptions,
) -> String {
    let section = file.section(direction).expect("checked by the caller");
    let mut out = format!(
        "-- {} ({direction}) from {}:{}\n",
        file.id(),
        file.path.display(),
        section.line
    );
    if section.transaction {
        out.push_str("BEGIN;\n");
    } else {
        out.push_str(
            "-- transaction:false: each statement commits on its own (with pgcalm's journal \
             entry, in a transaction of its own where PostgreSQL allows one)\n",
        );
    }
    let mut current: Vec<Setting> = Vec::new();
    let verdicts = statement_verdicts(file, direction, 0, lint);
    for (s, v) in section.statements.iter().zip(&verdicts) {
        let settings = policy.settings_for(s.kind());
        // transaction:false: a statement PostgreSQL allows in a transaction runs in one of
        // its own, which also records it in pgcalm's journal (done and journaled commit
        // together); only the others (CONCURRENTLY, VACUUM...) run alone.
        let own_transaction =
            !section.transaction && !s.kind().needs_no_transaction && !s.kind().commits_itself;
        if own_transaction {
            out.push_str("BEGIN;\n");
            for x in &settings {
                out.push_str(&format!("SET LOCAL {} = {};\n", x.name, x.value.sql()));
            }
        } else if settings != current {
            for x in &settings {
                let local = if section.transaction { "LOCAL " } else { "" };
                out.push_str(&format!("SET {local}{} = {};\n", x.name, x.value.sql()));
            }
            current = settings;
        }
        out.push_str(&format!(
            "-- line {}: {}; {}\n{};\n",
            s.line,
            v.lock_summary(),
            v.verdict(),
            s.sql
        ));
        if own_transaction {
            out.push_str("COMMIT;\n");
        }
    }
    if section.transaction {
        out.push_str("COMMIT;\n");
    }
    out
}
