//! `pgcalm lab`: runs each scenario's risky and safe migrations against the live demo
//! app, measures the downtime, prints the seed's Step 5 table with measured values and
//! writes the report (`report.md`, `report.html`, `results.json`, samples).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgcalm_demo::SeedEvent;
use pgcalm_lab::{
    DEFAULT_LAB_POOL_SIZE, DEFAULT_OUT_DIR, DEFAULT_ROWS, EndpointRole, InApp, LabEvent,
    LabOptions, LabResults, LabStep, LabTopology, SEED_SCENARIO, Table, blocked_meaning,
    explain_table, few_requests_note, form_label, forms_table, has_few_requests_mark, level_cell,
    pool_topology_note, run_lab, step5_terminal_table, write_report,
};
use pgcalm_migrate::Event;
use pgcalm_pg::{ClusterOptions, Target};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The lab's own database (seeded once, reused while it holds the seed's rows).
pub(crate) const LAB_DATABASE: &str = "pgcalm_lab";

/// Flags of `pgcalm lab`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rows in large_email (seeded once; a later run with the same count reuses them).
    #[arg(long, default_value_t = DEFAULT_ROWS)]
    pub rows: u64,
    /// Scenario to run (repeatable), or `all`. Scenarios: add_index (the seed's),
    /// drop_index, add_unique_constraint, add_foreign_key, add_check_constraint,
    /// set_not_null, add_column_volatile_default, change_column_type, rename_column,
    /// backfill, lock_queue.
    #[arg(long = "scenario", default_value = "add_index")]
    pub scenarios: Vec<String>,
    /// Directory of the report (report.md, report.html, results.json, samples/).
    #[arg(long, default_value = DEFAULT_OUT_DIR)]
    pub out: PathBuf,
    /// Emulate a bigger table: keep each risky form's transaction (and its locks) open
    /// this many seconds after its last statement. For small --rows, where a risky
    /// statement is over before a 200 ms probe can see it.
    #[arg(long, value_name = "SECS")]
    pub hold: Option<f64>,
    /// Seconds of probing before each migration.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub baseline: f64,
    /// Seconds the lock scenarios' blocking session (slow query, open transaction) lasts.
    #[arg(long, value_name = "SECS", default_value_t = 6.0)]
    pub blocker: f64,
    /// Database the lab works in (created if missing) on the embedded server or the
    /// server DATABASE_URL names.
    #[arg(long, default_value = LAB_DATABASE)]
    pub lab_database: String,
    /// The seed walkthrough's Step 5 right after its Step 3: run in the app's own database
    /// (the one migrate, seed and serve use) on its rows as seeded. The app's demoapp
    /// migrations after 0001 are rolled back first (0002's index has the name the risky
    /// form builds) and re-applied at the end; the demo API runs on free ports of its own.
    /// The seed's scenario only.
    #[arg(long, conflicts_with_all = ["rows", "lab_database"])]
    pub app_database: bool,
    /// Attach a streaming replica (as `pgcalm up --replica` does, and kept) and record
    /// its lag during each run. Embedded cluster only.
    #[arg(long)]
    pub replica: bool,
    /// Run the demo app through PgBouncer in transaction pooling mode (a pooler of the
    /// lab's own, stopped at the end) and record its waiting clients. Migrations, the
    /// monitor and EXPLAIN stay on the server's own address. Embedded cluster only.
    #[arg(long)]
    pub pooler: bool,
    /// PgBouncer's server connections for the app with --pooler (the app opens 16
    /// client connections).
    #[arg(long, value_name = "N", requires = "pooler", default_value_t = DEFAULT_LAB_POOL_SIZE)]
    pub pool_size: u32,
}

/// Runs the lab, prints the tables, writes the report.
pub(crate) async fn run(ctx: &Settings, args: Args) -> anyhow::Result<()> {
    let secs = |what: &str, v: f64| -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(v)
            .map_err(|_| anyhow::anyhow!("--{what} must be a number of seconds >= 0, got {v}"))
    };
    let (target, in_app) = if args.app_database {
        let target = ctx.target().await?;
        let in_app = InApp {
            migrations_dir: ctx.migrations_dir().to_path_buf(),
        };
        (target, Some(in_app))
    } else {
        (lab_target(ctx, &args.lab_database).await?, None)
    };
    let (topology, cluster_root) = lab_topology(ctx, &args).await?;
    let opts = LabOptions {
        rows: args.rows,
        scenarios: args.scenarios.clone(),
        work_dir: args.out.clone(),
        hold: args.hold.map(|h| secs("hold", h)).transpose()?,
        baseline: secs("baseline", args.baseline)?,
        blocker: secs("blocker", args.blocker)?,
        database_label: target.masked_url(),
        // The safe forms run with the resolved policy (pgcalm.toml [migrate], PGCALM_*).
        policy: ctx.policy.clone(),
        in_app,
        topology,
        ..LabOptions::default()
    };
    let progress = Progress::new(ctx.json());
    let sink = progress.clone();
    let cancel = CancellationToken::new();
    let signals = crate::signals::cancel_on_interrupt(cancel.clone());
    let result = run_lab(&target, &opts, Arc::new(move |e| sink.on_event(e)), cancel).await;
    signals.abort();
    progress.finish();
    if let Some(root) = cluster_root {
        pgcalm_lab::stop_lab_pooler(&root)?;
    }
    let results = result?;
    let files = write_report(&results, &args.out)?;
    if ctx.json() {
        crate::output::print_json(&results)?;
        return Ok(());
    }
    say!("{}", render_tables(&results, crate::output::stdout_width()));
    say!(
        "Report: {} ({} and {}; raw samples in {})",
        files.markdown.display(),
        files.html.display(),
        files.json.display(),
        args.out.join("samples").display()
    );
    Ok(())
}

/// The lab's database: on the embedded server (started if needed) or DATABASE_URL's.
async fn lab_target(ctx: &Settings, database: &str) -> anyhow::Result<Target> {
    if let Some(cluster) = ctx.embedded_cluster()? {
        cluster.start(None, &ClusterOptions::default())?;
    }
    let target = ctx.target_unchecked()?.with_dbname(database);
    target.ensure_database().await?;
    Ok(target)
}

/// The parts beside the embedded server `--replica` / `--pooler` ask for, and the
/// cluster root whose lab pooler to stop at the end (None: nothing to stop).
async fn lab_topology(
    ctx: &Settings,
    args: &Args,
) -> anyhow::Result<(LabTopology, Option<std::path::PathBuf>)> {
    if !args.replica && !args.pooler {
        return Ok((LabTopology::default(), None));
    }
    let Some(cluster) = ctx.embedded_cluster()? else {
        anyhow::bail!(
            "--replica and --pooler set up parts beside the embedded server, and this lab runs \
             against DATABASE_URL's server\n  fix: leave DATABASE_URL unset to use the embedded \
             server, or run the lab without them"
        );
    };
    cluster.start(None, &ClusterOptions::default())?;
    let pool_size = args.pooler.then_some(args.pool_size);
    let root = args.pooler.then(|| cluster.root().to_path_buf());
    let topology = LabTopology::embedded(&cluster, args.replica, pool_size).await?;
    Ok((topology, root))
}

/// The terminal's tables: the seed's Step 5 table measured (short cells: report.md has
/// the full one), EXPLAIN before/after, the pools paragraph, and one summary per other
/// scenario. Each table fits `width` (the terminal's; None: any width): printed as psql
/// prints it when it fits, else as records, one block per form (psql's `\x`).
pub(crate) fn render_tables(results: &LabResults, width: Option<usize>) -> String {
    let mut out = String::new();
    let wrap_to = width.unwrap_or(100).min(100);
    if let Some(step5) = step5_terminal_table(results) {
        let title = format!(
            "Step 5, measured: add an index on large_email.email ({} rows, PostgreSQL {})",
            indicatif::HumanCount(results.run.rows),
            results.run.postgres_version
        );
        out.push_str(&format!("\n{}\n\n", wrap(&title, wrap_to)));
        out.push_str(&fit(&step5, width, Records::Columns));
        out.push('\n');
        let mut note = String::from(
            "Latencies: baseline → during the migration. report.md has the full table.",
        );
        if has_few_requests_mark(&step5) {
            note.push(' ');
            note.push_str(&few_requests_note());
        }
        out.push_str(&format!("{}\n", wrap(&note, wrap_to)));
        if let Some(explain) = results.scenario(SEED_SCENARIO).and_then(explain_table) {
            out.push_str("\nEXPLAIN ANALYZE of the seed's lookup, before and after:\n\n");
            out.push_str(&fit(&explain, width, Records::Rows));
        }
        if let Some(note) = pool_topology_note(results) {
            out.push_str(&format!("\n{}\n", wrap(&note, wrap_to)));
        }
    }
    let others: Vec<_> = results
        .scenarios
        .iter()
        .filter(|s| s.name != SEED_SCENARIO)
        .collect();
    if !others.is_empty() {
        out.push_str(&format!(
            "\n{}\n\n{}\n\n",
            wrap(
                "All scenarios (risky on separate pools, the seed's also on shared pools; safe on one shared pool):",
                wrap_to
            ),
            wrap(&blocked_meaning(), wrap_to)
        ));
        out.push_str(&fit(&forms_table(results), width, Records::Rows));
    }
    out
}

/// Which way a table's records run when it is printed as records.
#[derive(Clone, Copy)]
enum Records {
    /// One record per row, named by its first cell.
    Rows,
    /// One record per column but the first (Step 5: one per form), fields named by the
    /// first column.
    Columns,
}

/// `t` as psql prints it when its lines fit `width`, else as psql's expanded records:
/// `-[ name ]---`, then `field | value` lines, values wrapped to the width.
fn fit(t: &Table, width: Option<usize>, records: Records) -> String {
    let strip = |c: &String| c.replace("**", "");
    let headers: Vec<String> = t.headers.iter().map(strip).collect();
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(strip).collect())
        .collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let table = crate::output::psql_table(None, &header_refs, &rows);
    let Some(width) = width else {
        return table;
    };
    if table.lines().all(|l| l.chars().count() <= width) {
        return table;
    }
    let blocks: Vec<(String, Vec<(String, String)>)> = match records {
        Records::Rows => rows
            .iter()
            .map(|r| {
                let fields = headers.iter().zip(r).skip(1);
                (
                    r[0].clone(),
                    fields.map(|(h, c)| (h.clone(), c.clone())).collect(),
                )
            })
            .collect(),
        Records::Columns => (1..headers.len())
            .map(|col| {
                let fields = rows.iter().map(|r| (r[0].clone(), r[col].clone()));
                (headers[col].clone(), fields.collect())
            })
            .collect(),
    };
    let key_width = blocks
        .iter()
        .flat_map(|(_, fields)| fields.iter().map(|(k, _)| k.chars().count()))
        .max()
        .unwrap_or(0);
    let value_width = width.saturating_sub(key_width + 3).max(20);
    // As psql: the record rule runs as wide as the widest line.
    let widest = blocks
        .iter()
        .flat_map(|(_, fields)| fields.iter().map(|(_, v)| v.chars().count()))
        .max()
        .map_or(0, |v| (key_width + 3 + v).min(width));
    let mut out = String::new();
    for (name, fields) in &blocks {
        let head = format!("-[ {name} ]");
        let rule = widest.saturating_sub(head.chars().count());
        out.push_str(&format!("{head}{}\n", "-".repeat(rule)));
        for (key, value) in fields {
            let options = textwrap::Options::new(value_width)
                .word_separator(textwrap::WordSeparator::AsciiSpace);
            for (i, line) in textwrap::wrap(value, options).iter().enumerate() {
                let key = if i == 0 { key.as_str() } else { "" };
                out.push_str(&format!("{key:<key_width$} | {line}\n").replace(" | \n", " |\n"));
            }
        }
    }
    out
}

/// A paragraph in lines of at most `width` columns, broken at spaces only.
fn wrap(text: &str, width: usize) -> String {
    let options = textwrap::Options::new(width)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .break_words(false);
    textwrap::fill(text, options)
}

/// Live progress: a spinner line on a terminal (scenario, form, step, index build phase
/// and %, probe counts), plain lines otherwise. Nothing with --format json.
#[derive(Clone)]
struct Progress {
    inner: Arc<Mutex<State>>,
    bar: Option<ProgressBar>,
    plain: bool,
}

#[derive(Default)]
struct State {
    run: String,
    step: String,
    build: String,
    waiters: usize,
    reads: (u64, u64),
    writes: (u64, u64),
    seed_total: u64,
}

impl Progress {
    fn new(json: bool) -> Self {
        let terminal = std::io::stderr().is_terminal() && !json;
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            inner: Arc::new(Mutex::new(State::default())),
            bar,
            plain: !terminal && !json,
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.plain => eprintln!("{text}"),
            None => {}
        }
    }

    fn on_event(&self, e: LabEvent) {
        let mut s = self.inner.lock().expect("progress lock");
        match e {
            LabEvent::Preparing(what) => {
                s.run = what.clone();
                s.step.clear();
                self.line(format!("lab: {what}"));
            }
            LabEvent::Seed(SeedEvent::LargeStarted { total, .. }) => s.seed_total = total,
            LabEvent::Seed(SeedEvent::LargeProgress { written, total, .. }) => {
                s.step = format!(
                    "{} of {} rows ({:.0}%)",
                    indicatif::HumanCount(written),
                    indicatif::HumanCount(total),
                    written as f64 * 100.0 / total.max(1) as f64
                );
            }
            LabEvent::Seed(SeedEvent::Analyzing) => s.step = "ANALYZE".into(),
            LabEvent::Seed(_) => {}
            LabEvent::FormStarted {
                scenario,
                form,
                topology,
                number,
                total,
            } => {
                s.run = format!(
                    "[{number}/{total}] {scenario} · {}",
                    form_label(form, topology)
                );
                s.reads = (0, 0);
                s.writes = (0, 0);
                s.build.clear();
                self.line(format!("lab: {}", s.run));
            }
            LabEvent::Step(step) => {
                s.step = step.as_str().to_string();
                if step != LabStep::Migrating {
                    s.build.clear();
                }
                if self.plain {
                    eprintln!("lab:   {}", step.as_str());
                }
            }
            LabEvent::Migration(event) => match *event {
                Event::StatementStarted { statement, attempt } => {
                    let retry = if attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    s.step = format!("migrating: {}{retry}", statement.summary);
                    if self.plain {
                        eprintln!("lab:   {}{retry}", statement.summary);
                    }
                }
                Event::LockTimeoutRetry {
                    retry, max_retries, ..
                } => {
                    self.line(format!(
                        "lab:   lock_timeout hit; retry {retry}/{max_retries} after a backoff"
                    ));
                }
                _ => {}
            },
            LabEvent::Snapshot {
                lock_waiters,
                index_build,
            } => {
                s.waiters = lock_waiters;
                s.build = match index_build {
                    Some((phase, Some(pct))) => format!(" · {phase} {pct:.0}%"),
                    Some((phase, None)) => format!(" · {phase}"),
                    None => String::new(),
                };
            }
            LabEvent::Probe { role, ok, .. } => {
                let counter = match role {
                    EndpointRole::Read => &mut s.reads,
                    EndpointRole::Write => &mut s.writes,
                    EndpointRole::Lookup => return,
                };
                if ok {
                    counter.0 += 1;
                } else {
                    counter.1 += 1;
                }
            }
            LabEvent::FormFinished(run) => {
                let v = &run.verdict;
                self.line(format!(
                    "lab:   done in {:.1} s: reads {}, writes {}, {} failed or timed out, slowest {:.0} ms",
                    run.migration.wall_ms / 1000.0,
                    level_cell(v.reads),
                    level_cell(v.writes),
                    v.safe_criteria.failed_or_timed_out,
                    v.safe_criteria.slowest_ms
                ));
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} · {}{} · reads ✓{} ✗{} · writes ✓{} ✗{} · lock waiters {}",
                s.run, s.step, s.build, s.reads.0, s.reads.1, s.writes.0, s.writes.1, s.waiters
            ));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real run's results.json (20,000 rows, --hold 3), samples left out.
    fn results() -> LabResults {
        serde_json::from_str(include_str!("../../tests/fixtures/lab_results.json"))
            .expect("the fixture reads")
    }

    fn assert_fits(text: &str, width: usize) {
        for line in text.lines() {
            assert!(line.chars().count() <= width, "wider than {width}: {line}");
        }
    }

    #[test]
    fn the_step5_table_fits_120_columns() {
        let text = render_tables(&results(), Some(120));
        assert_fits(&text, 120);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_step5_table_fits_80_columns() {
        let text = render_tables(&results(), Some(80));
        assert_fits(&text, 80);
        insta::assert_snapshot!(text);
    }
}
