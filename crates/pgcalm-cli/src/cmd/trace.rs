//! `pgcalm trace [PATHS]`: runs each migration on a throwaway database and reports the
//! locks it really takes (pg_locks), rewrites, scans and index builds, per statement,
//! beside what the lock table predicted; findings carry lint's rule names and who saw
//! them (lint, trace, both), rendered by `pgcalm lint`'s renderer in every format (text,
//! json, github, markdown). A pgcalm migration runs with the runner's timeouts, from the
//! resolved policy (pgcalm.toml `[migrate]`, `PGCALM_*`). Exit 1 when there are findings.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use pgcalm_lint::{LintOptions, LintResult, PgVersion};
use pgcalm_migrate::{Direction, Policy, SourceKind};
use pgcalm_trace::{ScratchDb, Script, Server, TraceOptions, TraceReport, build_report, trace};

use crate::cmd::lint::{FileReport, render_reports};
use crate::render::Exit;
use crate::settings::{OutputFormat, Settings};

/// Flags of `pgcalm trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Migration files (`migrations/<app>/<NNNN>_<name>.sql`: the app's earlier
    /// migrations run first) or plain SQL files (see --setup).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// SQL run before a traced file, untraced (the schema the migration expects, e.g. a
    /// `pg_dump -s`); repeatable, in order.
    #[arg(long)]
    pub setup: Vec<PathBuf>,
    /// Rows put into every existing table before tracing, so scans and rewrites do work.
    #[arg(long, default_value_t = 100)]
    pub rows: u64,
    /// With --database-url: trace in that database even if it has tables.
    #[arg(long)]
    pub force: bool,
    /// Trace a migration's down section (what unapplying runs), after applying it.
    #[arg(long)]
    pub backwards: bool,
}

/// Where the traces run.
enum Place {
    Server(Server),
    Given(Option<Box<ScratchDb>>),
}

/// Traces each file and prints the reports.
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let mut place = match settings.cluster() {
        // DATABASE_URL / --database-url: a scratch database the user owns.
        None => {
            if args.paths.len() > 1 {
                bail!(
                    "with --database-url, trace one file at a time: each needs an empty database\n  \
                     fix: give one path, or leave --database-url out to get a fresh database per file"
                );
            }
            Place::Given(Some(Box::new(
                ScratchDb::given(settings.target_unchecked()?, args.force).await?,
            )))
        }
        Some(cluster) if cluster.running_pid().is_some() => Place::Server(Server::Existing {
            admin: Box::new(settings.target_unchecked()?),
        }),
        Some(_) => Place::Server(
            Server::start_throwaway().context("starting a throwaway PostgreSQL for the trace")?,
        ),
    };
    let mut reports = Vec::new();
    let mut outcome = Ok(());
    for path in &args.paths {
        // A spinner on a terminal: a trace takes seconds (setup, seeding, each statement).
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!("tracing {}", path.display()));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        // Ctrl-C ends the trace but still stops and deletes a throwaway cluster below.
        let traced = tokio::select! {
            r = trace_one(&mut place, path, &args, &settings.policy) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        if let Some(bar) = spinner {
            bar.finish_and_clear();
        }
        match traced {
            Ok(r) => reports.push(r),
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if let Place::Server(server) = place {
        server.shutdown()?;
    }
    outcome?;
    let lint_view: Vec<FileReport> = reports.iter().map(file_report).collect();
    let fancy = settings.format == OutputFormat::Text && std::io::stdout().is_terminal();
    let findings = render_reports(&lint_view, settings.format, fancy);
    let out = match settings.format {
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
            doc["traces"] = serde_json::to_value(&reports)?;
            serde_json::to_string_pretty(&doc)?
        }
        OutputFormat::Github => findings,
    };
    say!("{}", out.trim_end_matches('\n'));
    if reports.iter().any(|r| !r.findings.is_empty()) {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// A trace report as lint's renderer takes it: the same findings, `seen_by` filled in.
fn file_report(r: &TraceReport) -> FileReport {
    FileReport {
        path: r.path.display().to_string(),
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

async fn trace_one(
    place: &mut Place,
    path: &Path,
    args: &Args,
    policy: &Policy,
) -> anyhow::Result<TraceReport> {
    let direction = if args.backwards {
        Direction::Down
    } else {
        Direction::Up
    };
    let script = Script::load_direction(path, &args.setup, direction)?;
    let db = match place {
        Place::Server(server) => server.fresh_database().await?,
        Place::Given(db) => *db.take().context("one file per given database")?,
    };
    let options = TraceOptions {
        seed_rows: args.rows,
        policy: policy.clone(),
    };
    let traced = trace(db.target(), &script, &options).await;
    db.dispose().await?;
    let traced = traced?;
    let lint_options = LintOptions {
        pg_version: PgVersion(traced.server_major),
        ..LintOptions::default()
    };
    let lint = script.lint(&lint_options);
    Ok(build_report(&script, traced, &lint, &lint_options))
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
                crate::cmd::migrate::secs(t.duration),
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
pub fn render_table(r: &TraceReport) -> String {
    format!(
        "{}\n{}",
        header(r),
        crate::render::psql_table(None, &HEADERS, &statement_rows(r))
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
