//! Trace's report: per traced file a header and a table of its statements (locks taken,
//! the lock table's prediction, effects, time, lint's and trace's verdicts), with the
//! findings rendered by lint's renderer, in every format.

use std::sync::Arc;

use pgcalm_lint::LintResult;
use pgcalm_migrate::SourceKind;
use pgcalm_trace::TraceReport;

use crate::output::lint_report::{self, FileReport};
use crate::settings::OutputFormat;

/// The reports in a format: text (tables, then the findings), markdown (findings, then
/// tables), JSON (lint's document plus `traces`), github (the findings).
pub(crate) fn render(
    reports: &[TraceReport],
    format: OutputFormat,
    fancy: bool,
) -> anyhow::Result<String> {
    let lint_view: Vec<FileReport> = reports.iter().map(file_report).collect();
    let findings = lint_report::render(&lint_view, &[], format, fancy);
    Ok(match format {
        OutputFormat::Text => {
            let tables: Vec<String> = reports.iter().map(render_table).collect();
            format!(
                "{}
{findings}",
                tables.join("\n")
            )
        }
        OutputFormat::Markdown => {
            let tables: Vec<String> = reports.iter().map(render_markdown_table).collect();
            format!("{findings}\n## pgcalm trace\n\n{}", tables.join("\n"))
        }
        // Lint's document (files, findings with seen_by, summary) plus what was traced.
        OutputFormat::Json => {
            let mut doc: serde_json::Value = serde_json::from_str(&findings)?;
            doc["traces"] = serde_json::to_value(reports)?;
            crate::output::json::to_string(&doc)?
        }
        OutputFormat::Github | OutputFormat::Sarif | OutputFormat::Gitlab => findings,
    })
}

/// A trace report as lint's renderer takes it: the same findings, `seen_by` filled in.
fn file_report(r: &TraceReport) -> FileReport {
    FileReport {
        path: r.path.display().to_string(),
        label: None,
        mode: None,
        source: Arc::new(r.source.clone()),
        kind: if r.migration {
            SourceKind::Migration
        } else {
            SourceKind::PlainSql
        },
        statements: r.statements.len() + r.not_run,
        result: LintResult {
            findings: r.findings.clone(),
            ignored: r.ignored.clone(),
        },
    }
}

/// `SHARE on public.large_email`, strongest first, tables before indexes.
fn observed(locks: &[pgcalm_trace::ObservedLock]) -> String {
    let mut l: Vec<&pgcalm_trace::ObservedLock> = locks.iter().collect();
    l.sort_by_key(|x| (!x.on_table(), std::cmp::Reverse(x.lock_mode())));
    // One line per relation: its strongest mode.
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for x in l {
        if seen.contains(&&x.relation) {
            continue;
        }
        seen.push(&x.relation);
        let mode =
            pgcalm_lint::LockMode::from_name(&x.mode).map_or(x.mode.clone(), |m| m.to_string());
        out.push(format!(
            "{mode} on {}{}",
            x.relation,
            if x.granted { "" } else { " (waited)" }
        ));
    }
    if out.is_empty() {
        "none on existing relations".to_string()
    } else {
        out.join(", ")
    }
}

/// One row per traced statement: line, statement, locks taken, lock table, effects,
/// time, lint's verdict, the trace's.
fn statement_rows(r: &TraceReport) -> Vec<Vec<String>> {
    r.statements
        .iter()
        .map(|s| {
            let t = &s.trace;
            let mut first: String = t
                .sql
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            if first.len() < t.sql.len() {
                first.push_str(" ...");
            }
            let mut effects = Vec::new();
            if !t.rewrites.is_empty() {
                effects.push(format!("rewrote {}", t.rewrites.join(", ")));
            }
            if !t.scans.is_empty() {
                effects.push(format!("scanned {}", t.scans.join(", ")));
            }
            for i in &t.indexes {
                effects.push(format!(
                    "built {}{}",
                    i.index,
                    if i.valid { "" } else { " (INVALID)" }
                ));
            }
            for c in &t.constraints {
                let verb = if c.added { "added" } else { "validated" };
                let not_valid = if c.added && !c.validated {
                    " NOT VALID"
                } else {
                    ""
                };
                effects.push(format!("{verb} {} {}{not_valid}", c.kind, c.name));
            }
            for n in &t.not_null {
                let how = if n.proven_by_constraint {
                    "proven by a CHECK, no scan"
                } else {
                    "scanned"
                };
                effects.push(format!("{}.{} NOT NULL ({how})", n.table, n.column));
            }
            // Locks an earlier statement of the transaction still holds while this one works.
            let held: Vec<_> = t
                .held_before
                .iter()
                .filter(|l| l.on_table() && l.blocks().any())
                .cloned()
                .collect();
            if !held.is_empty() {
                effects.push(format!("ran holding {}", observed(&held)));
            }
            if let Some(e) = &t.error {
                effects.push(format!("FAILED: {e}"));
            }
            let verdict = |risky: bool| if risky { "risky" } else { "safe" }.to_string();
            vec![
                t.line.to_string(),
                first,
                observed(&t.locks),
                if s.predicted.is_empty() {
                    "-".to_string()
                } else {
                    s.predicted.join(", ")
                },
                if effects.is_empty() {
                    "-".to_string()
                } else {
                    effects.join("; ")
                },
                crate::output::secs(t.duration),
                verdict(s.lint_risky()),
                verdict(s.trace_risky()),
            ]
        })
        .collect()
}

const HEADERS: [&str; 8] = [
    "line",
    "statement",
    "locks taken (pg_locks)",
    "lock table",
    "effects",
    "time",
    "lint",
    "trace",
];

fn header(r: &TraceReport) -> String {
    let mut out = format!(
        "Trace of {} on PostgreSQL {}\n",
        r.path.display(),
        r.server_version.split_whitespace().next().unwrap_or("")
    );
    let seeded: Vec<String> = r
        .seeded
        .iter()
        .map(|s| match &s.skipped {
            None => format!("{} ({} rows)", s.table, s.rows),
            Some(why) => format!("{} (not seeded: {why})", s.table),
        })
        .collect();
    if !seeded.is_empty() {
        out.push_str(&format!("existing tables: {}\n", seeded.join(", ")));
    }
    if r.not_run > 0 {
        out.push_str(&format!(
            "{} statement(s) not run: an earlier one failed\n",
            r.not_run
        ));
    }
    out
}

/// The header and the per-statement table, for people (findings follow, from lint's
/// renderer).
fn render_table(r: &TraceReport) -> String {
    format!(
        "{}\n{}",
        header(r),
        crate::output::psql_table(None, &HEADERS, &statement_rows(r))
    )
}

/// The same as a Markdown table, for a pull-request comment.
fn render_markdown_table(r: &TraceReport) -> String {
    let mut out = format!(
        "{}\n| {} |\n|{}\n",
        header(r),
        HEADERS.join(" | "),
        "---|".repeat(HEADERS.len())
    );
    for row in statement_rows(r) {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}
