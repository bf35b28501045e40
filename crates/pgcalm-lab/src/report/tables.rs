//! The report's tables as data: the seed's Step 5 table with measured values, the
//! per-scenario risky-vs-safe summary, per-endpoint figures and EXPLAIN before/after.
//! Markdown, HTML and the terminal render the same [`Table`]s, so each figure is
//! worded in one place.

use crate::results::{
    BlockLevel, Blocking, EndpointRole, EndpointSummary, ExplainPair, Form, FormRun, LabResults,
    PoolTopology, ScenarioResult, WindowStats,
};

use super::format::{
    CriteriaMark, form_label, level_cell, ms, pool_waits, replica_lag, seconds, yes_no_blocked,
};
use super::svg::lock_wait_stretches;
use crate::verdict::{HUNG_MS, QUEUE_MARGIN_MS};

/// Folder name of the seed's scenario (add an index on `large_email.email`), the one
/// the Step 5 table describes.
pub const SEED_SCENARIO: &str = crate::scenario::SEED;

/// A table of plain-text cells: a header row and body rows of the same width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Body rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A GitHub-flavoured Markdown table (`|` in cells escaped, newlines flattened).
    pub fn to_markdown(&self) -> String {
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells.iter().map(|c| markdown_cell(c)).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = line(&self.headers);
        out.push_str(&format!("|{}\n", "---|".repeat(self.headers.len())));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

fn markdown_cell(cell: &str) -> String {
    cell.replace('|', "\\|").replace('\n', " ")
}

/// The seed's Step 5 table ("Side-by-Side Comparison") with what was measured: one
/// column per form and pool topology of the seed's scenario, None if it did not run.
pub fn step5_table(results: &LabResults) -> Option<Table> {
    let scenario = results.scenario(SEED_SCENARIO)?;
    Some(form_comparison_table(scenario))
}

/// What "blocks" means in the tables, in a sentence to print under them.
pub fn blocked_meaning() -> String {
    format!(
        "\"Blocked\": during the migration a request failed, timed out or took longer than the lock \
         timeout + 1 s; the time is the longest stretch of stalled requests (failed, timed out or \
         slower than {}). \"Queued\": requests were held by the migration's lock but answered \
         within that limit (the monitor saw them wait on it, or they were answered just as it was \
         released, over {} slower than their baseline p99); the time is the longest such request. \
         A queue of 0.3 s on this table is a longer one on a bigger table.",
        ms(HUNG_MS),
        ms(QUEUE_MARGIN_MS)
    )
}

/// Header of the safe-criteria column: what it checks.
pub const SAFE_CRITERIA_HEADER: &str = "Safe criteria (0 failed, slowest < lock_timeout + 1 s)";

/// A latency percentile read from fewer requests than this is marked
/// [`FEW_REQUESTS_MARK`]: with a lookup every 2 s, a 3 s baseline holds two and a short
/// build three, and the p50 of three requests is whichever came second.
pub const MIN_PERCENTILE_REQUESTS: u64 = 10;

/// The mark of a percentile read from too few requests.
pub const FEW_REQUESTS_MARK: char = '†';

/// The footnote of [`FEW_REQUESTS_MARK`].
pub fn few_requests_note() -> String {
    format!(
        "{FEW_REQUESTS_MARK} read from fewer than {MIN_PERCENTILE_REQUESTS} requests: too few \
         for a percentile to mean much (each endpoint's counts are in its table)."
    )
}

/// Whether a table has a cell marked [`FEW_REQUESTS_MARK`] (its footnote is due).
pub fn has_few_requests_mark(t: &Table) -> bool {
    t.rows
        .iter()
        .flatten()
        .any(|c| c.contains(FEW_REQUESTS_MARK))
}

/// What a risky form's numbers showed of its hazard, in words (`–` for a safe form):
/// `blocked reads and writes for 5.6 s (28 failed or timed out)`, `queued writes for 0.3 s
/// at 1,000,000 rows; the hold grows with the table`, `none seen at ...`.
pub fn hazard_seen(f: &FormRun, rows: Option<u64>) -> String {
    if f.form == Form::Safe {
        return "–".into();
    }
    let v = &f.verdict;
    let kinds = [("reads", v.reads), ("writes", v.writes)];
    let worst = v.reads.level.max(v.writes.level);
    let at_worst: Vec<&str> = kinds
        .iter()
        .filter(|(_, b)| b.level == worst)
        .map(|(k, _)| *k)
        .collect();
    let held = kinds
        .iter()
        .filter(|(_, b)| b.level == worst)
        .map(|(_, b)| b.held_s)
        .fold(0.0, f64::max);
    let at_rows = rows.map_or(String::new(), |n| format!(" at {} rows", thousands(n)));
    let held = seconds(held * 1000.0);
    match worst {
        BlockLevel::Blocked => {
            let t = totals(f);
            let errors = t.failed() - t.timed_out;
            let detail = if t.failed() == 0 {
                format!("slowest {}", ms(v.safe_criteria.slowest_ms))
            } else if errors > 0 && t.timed_out == 0 {
                format!("{errors} requests answered with errors")
            } else {
                format!("{} failed or timed out", t.failed())
            };
            format!("blocked {} for {held} ({detail})", at_worst.join(" and "))
        }
        BlockLevel::Queued => format!(
            "queued {} for {held}{at_rows}; the hold grows with the table",
            at_worst.join(" and ")
        ),
        BlockLevel::No => format!(
            "none seen{at_rows} (migration {}); the hold grows with the table",
            seconds(f.migration.wall_ms)
        ),
    }
}

/// Aspect-by-form comparison of one scenario (the Step 5 layout).
pub(super) fn form_comparison_table(scenario: &ScenarioResult) -> Table {
    let by_form = ByForm(scenario);
    let headers = by_form.headers(form_label);
    let row = |aspect: &str, cell: &dyn Fn(&FormRun) -> String| by_form.row(aspect, cell);
    let mut rows = vec![
        row("**Statement**", &|f| main_statement(f)),
        row("**Blocks Reads?**", &|f| yes_no_blocked(f.verdict.reads)),
        row("**Blocks Writes?**", &|f| yes_no_blocked(f.verdict.writes)),
        row("**Downtime** (longest stretch)", &|f| downtime(f)),
        row("**Migration Time**", &|f| migration_time(f)),
        row("**Requests failed** (during migration)", &|f| {
            failed_requests(f)
        }),
        row("**Reads answered** (during migration)", &|f| {
            answered(f, EndpointRole::Read)
        }),
        row("**Writes answered** (during migration)", &|f| {
            answered(f, EndpointRole::Write)
        }),
        row("**p99 latency** (baseline → migration)", &|f| {
            p99_change(f, false)
        }),
    ];
    if scenario
        .forms
        .iter()
        .any(|f| has_role(f, EndpointRole::Lookup))
    {
        rows.push(row("**Lookup p50** (reported apart)", &|f| {
            p50_change(f, EndpointRole::Lookup)
        }));
    }
    rows.extend(topology_rows(
        &by_form,
        "**Replica lag** (max)",
        "**Pooler: clients waiting for a server connection** (max)",
    ));
    rows.push(row("**Production Safe?**", &|f| production_safe(f)));
    Table { headers, rows }
}

/// The Step 5 table for a terminal: the same figures in short, plain cells (no emoji
/// or Markdown, so columns line up by characters), short column headers and one latency
/// per row, so it fits about 110 columns; [`step5_table`] (report.md) has every detail.
/// None if the seed's scenario did not run.
pub fn step5_terminal_table(results: &LabResults) -> Option<Table> {
    let scenario = results.scenario(SEED_SCENARIO)?;
    let by_form = ByForm(scenario);
    let headers = by_form.headers(short_form_label);
    let row = |aspect: &str, cell: &dyn Fn(&FormRun) -> String| by_form.row(aspect, cell);
    let yes_no = |b: Blocking| match b.level {
        BlockLevel::No => "No".to_string(),
        _ => format!("Yes, {}", level_cell(b)),
    };
    let latency = |f: &FormRun, role: EndpointRole, p50: bool| {
        let parts: Vec<String> = f
            .endpoints
            .iter()
            .filter(|e| e.role == role)
            .map(|e| {
                let pick = |w: &WindowStats| if p50 { w.p50_ms } else { w.p99_ms };
                format!(
                    "{} → {}",
                    percentile(pick(&e.baseline), e.baseline.requests),
                    percentile(pick(&e.migration), e.migration.requests)
                )
            })
            .collect();
        if parts.is_empty() {
            "not probed".into()
        } else {
            parts.join("; ")
        }
    };
    let mut rows = vec![
        row("Statement", &|f| statement_label(f)),
        row("Blocks reads?", &|f| yes_no(f.verdict.reads)),
        row("Blocks writes?", &|f| yes_no(f.verdict.writes)),
        row("Reads answered", &|f| answered(f, EndpointRole::Read)),
        row("Writes answered", &|f| answered(f, EndpointRole::Write)),
        row("Downtime", &|f| downtime(f).to_lowercase()),
        row("Migration time", &|f| migration_time(f)),
        row("Read p99", &|f| latency(f, EndpointRole::Read, false)),
        row("Write p99", &|f| latency(f, EndpointRole::Write, false)),
    ];
    if scenario
        .forms
        .iter()
        .any(|f| has_role(f, EndpointRole::Lookup))
    {
        rows.push(row("Lookup p50", &|f| {
            latency(f, EndpointRole::Lookup, true)
        }));
    }
    rows.extend(topology_rows(&by_form, "Replica lag", "Pool waits"));
    rows.push(row("Production safe?", &|f| {
        if production_safe(f).starts_with('✅') {
            "Yes".into()
        } else {
            "No".into()
        }
    }));
    Some(Table { headers, rows })
}

/// The replica's lag and the pooler's waiting clients, a row each when some form of the
/// scenario measured it (`pgcalm lab --replica --pooler`).
fn topology_rows(by_form: &ByForm<'_>, lag: &str, waits: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (aspect, cell) in [
        (lag, replica_lag as fn(&FormRun) -> Option<String>),
        (waits, pool_waits),
    ] {
        if by_form.0.forms.iter().any(|f| cell(f).is_some()) {
            rows.push(by_form.row(aspect, &|f| {
                cell(f).unwrap_or_else(|| "not measured".into())
            }));
        }
    }
    rows
}

/// An aspect-by-form table of one scenario: a column per form.
struct ByForm<'a>(&'a ScenarioResult);

impl ByForm<'_> {
    /// `Aspect`, then each form's label.
    fn headers(&self, label: fn(Form, PoolTopology) -> String) -> Vec<String> {
        let forms = self.0.forms.iter().map(|f| label(f.form, f.topology));
        std::iter::once("Aspect".to_string()).chain(forms).collect()
    }

    /// The aspect, then its cell for each form.
    fn row(&self, aspect: &str, cell: &dyn Fn(&FormRun) -> String) -> Vec<String> {
        std::iter::once(aspect.to_string())
            .chain(self.0.forms.iter().map(cell))
            .collect()
    }
}

/// `Risky, separate pools`, `Risky, seed-like pool`: [`form_label`] in at most 21
/// characters.
fn short_form_label(form: Form, topology: PoolTopology) -> String {
    match topology {
        PoolTopology::SharedSeedLike => match form {
            Form::Risky => "Risky, seed-like pool".into(),
            Form::Safe => "Safe, seed-like pool".into(),
        },
        _ => form_label(form, topology),
    }
}

/// The lock table's name of the form's main statement: `CREATE INDEX CONCURRENTLY`.
fn statement_label(f: &FormRun) -> String {
    f.migration
        .statements
        .iter()
        .map(|s| pgcalm_lint::sql_statement_locks(&s.sql, pgcalm_lint::PgVersion::DEFAULT))
        .find(|l| !l.label.is_empty() && !l.transaction_control && !l.label.starts_with("SET"))
        .map_or_else(|| f.migration.migration.clone(), |l| l.label)
}

/// One row per form of a scenario: the verdict and the figures it rests on.
pub fn scenario_summary_table(scenario: &ScenarioResult) -> Table {
    let headers = [
        "Form",
        "Migration time",
        "Reads held",
        "Writes held",
        "Requests failed",
        "Slowest request",
        "Lock waiters seen",
        SAFE_CRITERIA_HEADER,
        "Hazard seen (risky form)",
    ];
    let rows = scenario
        .forms
        .iter()
        .map(|f| {
            vec![
                form_label(f.form, f.topology),
                migration_time(f),
                yes_no_blocked(f.verdict.reads),
                yes_no_blocked(f.verdict.writes),
                failed_requests(f),
                ms(f.verdict.safe_criteria.slowest_ms),
                lock_waiters(f),
                safe_criteria(f),
                hazard_seen(f, None),
            ]
        })
        .collect();
    Table {
        headers: headers.map(String::from).to_vec(),
        rows,
    }
}

/// One row per form of every scenario, in plain words (no emoji or Markdown: the
/// terminal's table, whose columns line up by characters): the verdict and the figures
/// it rests on, with the risky forms' hazard at `rows` rows.
pub fn forms_table(results: &LabResults) -> Table {
    let headers = [
        "Scenario",
        "Form",
        "Migration",
        "Reads",
        "Writes",
        "Failed",
        "Slowest",
        SAFE_CRITERIA_HEADER,
        "Hazard seen (risky form)",
    ];
    let rows = results
        .scenarios
        .iter()
        .flat_map(|s| s.forms.iter().map(move |f| (s, f)))
        .map(|(s, f)| {
            let c = f.verdict.safe_criteria;
            vec![
                s.name.clone(),
                form_label(f.form, f.topology),
                migration_time(f),
                level_cell(f.verdict.reads),
                level_cell(f.verdict.writes),
                c.failed_or_timed_out.to_string(),
                ms(c.slowest_ms),
                CriteriaMark::of(f).word().to_string(),
                hazard_seen(f, Some(results.run.rows)),
            ]
        })
        .collect();
    Table {
        headers: headers.map(String::from).to_vec(),
        rows,
    }
}

/// Per endpoint of every form of a scenario: counts and latency, baseline vs migration.
pub(super) fn endpoint_table(scenario: &ScenarioResult) -> Table {
    let headers = [
        "Form",
        "Endpoint",
        "Requests",
        "OK",
        "Timed out",
        "Errors",
        "p50",
        "p90",
        "p99",
        "max",
        "Longest outage",
    ];
    let mut rows = Vec::new();
    for f in &scenario.forms {
        for e in &f.endpoints {
            let m = &e.migration;
            // Percentiles carry the few-requests mark; the slowest is just the slowest.
            let change = |pick: fn(&WindowStats) -> Option<f64>| {
                format!(
                    "{} → {}",
                    percentile(pick(&e.baseline), e.baseline.requests),
                    percentile(pick(m), m.requests)
                )
            };
            let max = format!("{} → {}", opt_ms(e.baseline.max_ms), opt_ms(m.max_ms));
            rows.push(vec![
                form_label(f.form, f.topology),
                endpoint_label(e),
                m.requests.to_string(),
                m.ok.to_string(),
                m.timed_out.to_string(),
                errors_by_kind(m),
                change(|w| w.p50_ms),
                change(|w| w.p90_ms),
                change(|w| w.p99_ms),
                max,
                e.longest_outage
                    .map_or("none".into(), |o| seconds(o.end_ms - o.start_ms)),
            ]);
        }
    }
    Table {
        headers: headers.map(String::from).to_vec(),
        rows,
    }
}

/// EXPLAIN ANALYZE before and after, one row per form that recorded one.
pub fn explain_table(scenario: &ScenarioResult) -> Option<Table> {
    let rows: Vec<Vec<String>> = scenario
        .forms
        .iter()
        .filter_map(|f| f.explain.as_ref().map(|x| (f, x)))
        .map(|(f, x): (&FormRun, &ExplainPair)| {
            vec![
                form_label(f.form, f.topology),
                x.query.clone(),
                format!("{} ({})", x.before.node, ms(x.before.execution_ms)),
                format!("{} ({})", x.after.node, ms(x.after.execution_ms)),
            ]
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let headers = ["Form", "Query", "Before", "After"];
    Some(Table {
        headers: headers.map(String::from).to_vec(),
        rows,
    })
}

/// The endpoint's name with its role, `list_large (read)`.
pub(super) fn endpoint_label(e: &EndpointSummary) -> String {
    let role = match e.role {
        EndpointRole::Read => "read",
        EndpointRole::Write => "write",
        EndpointRole::Lookup => "lookup",
    };
    format!("{} ({role})", e.endpoint)
}

/// Migration-window counts summed over the endpoints that are judged (reads and writes;
/// lookups are reported apart).
pub(super) fn totals(f: &FormRun) -> WindowStats {
    let mut sum = WindowStats::default();
    for e in f
        .endpoints
        .iter()
        .filter(|e| e.role != EndpointRole::Lookup)
    {
        sum.requests += e.migration.requests;
        sum.ok += e.migration.ok;
        sum.timed_out += e.migration.timed_out;
        for (kind, n) in &e.migration.errors {
            *sum.errors.entry(*kind).or_default() += n;
        }
    }
    sum
}

fn has_role(f: &FormRun, role: EndpointRole) -> bool {
    f.endpoints.iter().any(|e| e.role == role)
}

/// The first statement that is not transaction control, shortened to fit a cell.
fn main_statement(f: &FormRun) -> String {
    let sql = f
        .migration
        .statements
        .iter()
        .map(|s| s.sql.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|s| {
            let upper = s.to_ascii_uppercase();
            !["BEGIN", "COMMIT", "SET ", "START TRANSACTION"]
                .iter()
                .any(|p| upper.starts_with(p))
        });
    match sql {
        Some(s) if s.chars().count() > 70 => {
            format!("`{}…`", s.chars().take(69).collect::<String>())
        }
        Some(s) => format!("`{s}`"),
        None => f.migration.migration.clone(),
    }
}

/// Sessions seen waiting for a lock, and for how long in all: `2 sessions over 5.8 s`.
fn lock_waiters(f: &FormRun) -> String {
    let mut pids: Vec<i32> = f.lock_waits.iter().map(|w| w.waiter_pid).collect();
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        return "none".into();
    }
    let total_ms: f64 = lock_wait_stretches(&f.lock_waits)
        .iter()
        .map(|s| s.end_ms - s.start_ms)
        .sum();
    let sessions = if pids.len() == 1 {
        "session"
    } else {
        "sessions"
    };
    format!("{} {sessions} over {}", pids.len(), seconds(total_ms))
}

fn downtime(f: &FormRun) -> String {
    let (r, w) = (f.verdict.reads, f.verdict.writes);
    let longest = [r, w]
        .iter()
        .filter(|b| b.blocked)
        .map(|b| b.longest_stretch_s)
        .fold(0.0, f64::max);
    if r.blocked || w.blocked {
        seconds(longest * 1000.0)
    } else {
        "None".into()
    }
}

fn migration_time(f: &FormRun) -> String {
    let time = seconds(f.migration.wall_ms);
    match (&f.migration.error, f.migration.retries) {
        (Some(_), _) => format!("{time} (failed)"),
        (None, 0) => time,
        (None, n) => format!("{time} ({n} {})", if n == 1 { "retry" } else { "retries" }),
    }
}

fn failed_requests(f: &FormRun) -> String {
    let t = totals(f);
    if t.failed() == 0 {
        return format!("0 of {}", t.requests);
    }
    format!(
        "{} of {} ({} timed out, {} errors)",
        t.failed(),
        t.requests,
        t.timed_out,
        t.failed() - t.timed_out
    )
}

fn p99_change(f: &FormRun, lookups: bool) -> String {
    let parts: Vec<String> = f
        .endpoints
        .iter()
        .filter(|e| (e.role == EndpointRole::Lookup) == lookups)
        .map(|e| {
            format!(
                "{} {} → {}",
                e.endpoint,
                percentile(e.baseline.p99_ms, e.baseline.requests),
                percentile(e.migration.p99_ms, e.migration.requests)
            )
        })
        .collect();
    parts.join("; ")
}

fn p50_change(f: &FormRun, role: EndpointRole) -> String {
    let parts: Vec<String> = f
        .endpoints
        .iter()
        .filter(|e| e.role == role)
        .map(|e| {
            format!(
                "{} → {}",
                percentile(e.baseline.p50_ms, e.baseline.requests),
                percentile(e.migration.p50_ms, e.migration.requests)
            )
        })
        .collect();
    if parts.is_empty() {
        "not probed".into()
    } else {
        parts.join("; ")
    }
}

/// Safe for production: the safe criteria pass and neither reads nor writes were
/// blocked or queued (a short build can pass the criteria while writes queue behind its
/// lock; on a bigger table the same statement blocks for longer). The lock queue's safe
/// form queues requests for up to lock_timeout by design and is judged by the criteria.
fn production_safe(f: &FormRun) -> String {
    let v = &f.verdict;
    let mut why = Vec::new();
    for (kind, b) in [("reads", v.reads), ("writes", v.writes)] {
        if b.level == BlockLevel::Blocked
            || (b.level == BlockLevel::Queued && f.form == Form::Risky)
        {
            why.push(format!("{kind} {}", b.level.as_str()));
        }
    }
    if v.safe_criteria.failed_or_timed_out > 0 {
        why.push(format!(
            "{} requests failed",
            v.safe_criteria.failed_or_timed_out
        ));
    } else if !v.safe_criteria.passed {
        why.push(format!("a request took {}", ms(v.safe_criteria.slowest_ms)));
    }
    if why.is_empty() {
        "✅ Yes".into()
    } else {
        format!("❌ No ({})", why.join(", "))
    }
}

fn safe_criteria(f: &FormRun) -> String {
    let c = f.verdict.safe_criteria;
    format!(
        "{}: {} failed, slowest {} (limit {})",
        CriteriaMark::of(f).marked(),
        c.failed_or_timed_out,
        ms(c.slowest_ms),
        ms(c.limit_ms)
    )
}

fn errors_by_kind(w: &WindowStats) -> String {
    if w.errors.is_empty() {
        return "0".into();
    }
    w.errors
        .iter()
        .map(|(k, n)| format!("{n} {}", k.key()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), ms)
}

/// A percentile of a window of `requests`, marked when they are too few to read one from.
fn percentile(v: Option<f64>, requests: u64) -> String {
    match v {
        Some(v) if requests < MIN_PERCENTILE_REQUESTS => format!("{}{FEW_REQUESTS_MARK}", ms(v)),
        v => opt_ms(v),
    }
}

/// Requests of `role` answered during the migration: `0 of 30`.
fn answered(f: &FormRun, role: EndpointRole) -> String {
    let (ok, requests) = f
        .endpoints
        .iter()
        .filter(|e| e.role == role)
        .fold((0, 0), |(ok, n), e| {
            (ok + e.migration.ok, n + e.migration.requests)
        });
    if requests == 0 {
        "not probed".into()
    } else {
        format!("{ok} of {requests}")
    }
}

/// One row per scenario: what it risks and whether the numbers showed it.
pub(super) fn overview_table(results: &LabResults) -> Table {
    let headers = [
        "Scenario",
        "Hazard expected (risky form)",
        "Risky: reads",
        "Risky: writes",
        "Hazard seen (risky form)",
        "Safe form",
    ];
    let rows = results
        .scenarios
        .iter()
        .map(|sc| {
            let risky: Vec<&FormRun> = sc.forms.iter().filter(|f| f.form == Form::Risky).collect();
            let worst = |pick: fn(&FormRun) -> Blocking| {
                risky
                    .iter()
                    .map(|f| pick(f))
                    .max_by(|a, b| a.level.cmp(&b.level).then(a.held_s.total_cmp(&b.held_s)))
            };
            let worst_form = risky.iter().max_by(|a, b| {
                let key = |f: &FormRun| f.verdict.reads.level.max(f.verdict.writes.level);
                key(a).cmp(&key(b))
            });
            let safe: Vec<&FormRun> = sc.forms.iter().filter(|f| f.form == Form::Safe).collect();
            let safe_cell = if safe.is_empty() {
                "not run".to_string()
            } else if safe.iter().all(|f| f.verdict.safe_criteria.passed) {
                "✅ passes".to_string()
            } else {
                "❌ fails the safe criteria".to_string()
            };
            vec![
                format!("{} ({})", sc.title, sc.name),
                sc.hazard.clone(),
                worst(|f| f.verdict.reads).map_or("not run".into(), yes_no_blocked),
                worst(|f| f.verdict.writes).map_or("not run".into(), yes_no_blocked),
                worst_form.map_or("not run".into(), |f| hazard_seen(f, Some(results.run.rows))),
                safe_cell,
            ]
        })
        .collect();
    Table {
        headers: headers.map(String::from).to_vec(),
        rows,
    }
}

/// What ran where: versions, size, machine, options.
pub(super) fn run_table(results: &LabResults) -> Table {
    let run = &results.run;
    let o = &run.options;
    let targets: Vec<String> = o
        .probe_targets
        .iter()
        .map(|t| {
            format!(
                "{} `{} {}` every {} (timeout {})",
                t.name,
                t.method,
                t.path,
                ms(t.interval_ms as f64),
                ms(t.timeout_ms as f64)
            )
        })
        .collect();
    let layouts: Vec<String> = o
        .pool_layouts
        .iter()
        .map(|l| {
            let pools: Vec<String> = l
                .pools
                .iter()
                .map(|p| format!("{} ({} conn.: {})", p.name, p.size, p.endpoints.join(", ")))
                .collect();
            format!("{}: {}", l.topology.as_str(), pools.join(" + "))
        })
        .collect();
    let rows = [
        ("pgcalm", run.pgcalm_version.clone()),
        ("PostgreSQL", run.postgres_version.clone()),
        ("Rows in large_email", thousands(run.rows)),
        ("Machine", format!("{} cores", run.machine_cores)),
        ("Started", run.started.utc.clone()),
        ("Database", o.database.clone()),
        ("Safe forms' lock_timeout", ms(o.lock_timeout_ms as f64)),
        ("Baseline probe", ms(o.baseline_ms as f64)),
        ("Probe targets", targets.join("; ")),
        ("Connection pools", layouts.join("; ")),
    ];
    let topology = o.topology.as_ref().map(|t| {
        let pooler = t.pooler_pool_size.map_or(
            "the app connected to the server directly".to_string(),
            |n| format!("the app through PgBouncer, transaction pooling, {n} server connections"),
        );
        let replica = if t.replica {
            "a streaming replica attached (lag sampled every 250 ms)"
        } else {
            "no replica"
        };
        ("Topology", format!("{pooler}; {replica}"))
    });
    Table {
        headers: vec!["Run".into(), "".into()],
        rows: rows
            .into_iter()
            .chain(topology)
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
    }
}

/// `1000000` as `1,000,000`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
