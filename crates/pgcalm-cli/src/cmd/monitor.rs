//! `pgcalm monitor`: the seed's `watch psql` on pg_stat_activity, grown up. Sessions,
//! lock waits and who blocks them, index builds and other progress, redrawn in place on
//! a terminal; one JSON object per sample otherwise (or with --format json), or plain
//! text samples when piped with --format text.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use pgcalm_migrate::parse_duration;
use pgcalm_pg::catalog::{DatabaseMonitor, DatabaseSnapshot};

use crate::output;
use crate::settings::Settings;

/// Flags of `pgcalm monitor`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Time between two samples (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Stop after this many samples.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// Samples until --count, --duration or Ctrl-C.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    if args.interval.is_zero() {
        anyhow::bail!("--interval must be longer than 0 (e.g. 1s)");
    }
    let target = settings
        .target()
        .await?
        .with_application_name("pgcalm monitor");
    let client = target.connect().await?;
    let monitor = DatabaseMonitor::prepare(&client).await?;
    // On a terminal the screen is redrawn in place; piped, one JSON object per sample
    // (for recording), or plain text samples when --format text says so.
    let terminal = std::io::stdout().is_terminal();
    let screen = !settings.json() && terminal;
    let text = !settings.json() && !terminal && settings.format_given;
    let title = format!("pgcalm monitor: {}", target.masked_url());
    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut ticks = tokio::time::interval(args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupted = crate::signals::interrupted();
    tokio::pin!(interrupted);
    if screen {
        print_raw("\x1b[?25l\x1b[2J");
    }
    let mut taken = 0u64;
    let result = loop {
        tokio::select! {
            _ = &mut interrupted => break Ok(()),
            _ = ticks.tick() => {}
        }
        let snap = match monitor.snapshot(&client).await {
            Ok(s) => s,
            Err(e) => break Err(e.into()),
        };
        if screen {
            let text = format!(
                "{title}  {} (queries {:.1} ms, every {} ms; Ctrl-C quits)\n\n{}",
                output::clock(snap.taken_at_ms),
                snap.query_ms,
                args.interval.as_millis(),
                screen_body(&snap)
            );
            print_raw(&redraw(&text, terminal_width()));
        } else if text {
            say!(
                "{title}  {} (queries {:.1} ms)\n\n{}",
                output::clock(snap.taken_at_ms),
                snap.query_ms,
                screen_body(&snap)
            );
        } else {
            say!("{}", serde_json::to_string(&snap)?);
        }
        taken += 1;
        if args.count.is_some_and(|c| taken >= c)
            || deadline.is_some_and(|d| Instant::now() + args.interval > d)
        {
            break Ok(());
        }
    };
    if screen {
        print_raw("\x1b[?25h");
    }
    result
}

fn print_raw(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Text that overwrites the previous screen: cursor home, every line cut to the width
/// and cleared to its end, then the rest of the screen cleared.
fn redraw(text: &str, width: usize) -> String {
    let mut out = String::from("\x1b[H");
    for line in text.lines() {
        let cut: String = line.chars().take(width).collect();
        let _ = write!(out, "{cut}\x1b[K\r\n");
    }
    out.push_str("\x1b[J");
    out
}

/// Columns of the terminal on stdout (80 when unknown).
fn terminal_width() -> usize {
    output::stdout_width().unwrap_or(80)
}

/// Seconds as `0.4s`, `12s`, `3m07s`.
fn age(secs: Option<f64>) -> String {
    match secs {
        None => String::new(),
        Some(s) if s < 10.0 => format!("{s:.1}s"),
        Some(s) if s < 60.0 => format!("{s:.0}s"),
        Some(s) => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
    }
}

fn trim(text: Option<&str>, max: usize) -> String {
    let text = text.unwrap_or_default();
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    } else {
        text.to_string()
    }
}

fn percent(done: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{:.0}% ({done}/{total})",
            done as f64 * 100.0 / total as f64
        )
    } else {
        String::new()
    }
}

/// The screen under the title line: one table per section, `none` when empty.
fn screen_body(s: &DatabaseSnapshot) -> String {
    let mut out = String::new();
    let mut section = |name: &str, headers: &[&str], rows: Vec<Vec<String>>| {
        if rows.is_empty() {
            let _ = writeln!(out, "{name}: none\n");
        } else {
            let _ = writeln!(
                out,
                "{}",
                output::psql_table(Some(&format!("{name} ({})", rows.len())), headers, &rows)
            );
        }
    };
    section(
        "Index builds",
        &[
            "pid", "command", "table", "index", "phase", "progress", "lockers",
        ],
        s.index_builds
            .iter()
            .map(|b| {
                let progress = b
                    .counter()
                    .map(|(done, total, unit)| format!("{} {unit}", percent(done, total)))
                    .unwrap_or_default();
                let lockers = if b.lockers_total > 0 {
                    format!(
                        "{}/{} done, waiting for pid {}",
                        b.lockers_done, b.lockers_total, b.current_locker_pid
                    )
                } else {
                    String::new()
                };
                vec![
                    b.pid.to_string(),
                    b.command.clone(),
                    b.table.clone().unwrap_or_default(),
                    b.index.clone().unwrap_or_default(),
                    b.phase.clone(),
                    progress,
                    lockers,
                ]
            })
            .collect(),
    );
    section(
        "Lock waits",
        &["pid", "wants", "on", "blocked by", "waiting", "query"],
        s.lock_waits
            .iter()
            .map(|w| {
                let blockers: Vec<String> = w.blocked_by.iter().map(i32::to_string).collect();
                vec![
                    w.pid.to_string(),
                    w.mode.clone(),
                    w.relation.clone().unwrap_or_else(|| w.locktype.clone()),
                    blockers.join(", "),
                    age(w.waiting_secs),
                    trim(w.query.as_deref(), 50),
                ]
            })
            .collect(),
    );
    section(
        "Maintenance",
        &["pid", "command", "table", "phase", "progress"],
        s.maintenance
            .iter()
            .map(|m| {
                vec![
                    m.pid.to_string(),
                    m.command.clone(),
                    m.table.clone().unwrap_or_default(),
                    m.phase.clone(),
                    percent(m.blocks_done, m.blocks_total),
                ]
            })
            .collect(),
    );
    section(
        "Sessions",
        &[
            "pid",
            "application",
            "state",
            "waiting on",
            "for",
            "xact",
            "query",
        ],
        s.sessions
            .iter()
            .map(|a| {
                // An idle connection (a pool's spare) always "waits" for its client's
                // next query (Client: ClientRead): that is no wait worth showing.
                let wait = match (&a.wait_event_type, &a.wait_event) {
                    _ if a.state.as_deref() == Some("idle") => String::new(),
                    (Some(t), Some(e)) => format!("{t}: {e}"),
                    _ => String::new(),
                };
                vec![
                    a.pid.to_string(),
                    trim(Some(&a.application_name), 20),
                    a.state.clone().unwrap_or_default(),
                    wait,
                    age(a.state_secs),
                    age(a.xact_secs),
                    trim(a.query.as_deref(), 60),
                ]
            })
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use pgcalm_pg::catalog::{IndexBuildProgress, LockWait, SessionActivity};

    use super::*;

    #[test]
    fn renders_a_screen() {
        let snap = DatabaseSnapshot {
            taken_at_ms: 0,
            query_ms: 0.7,
            sessions: vec![SessionActivity {
                pid: 41,
                application_name: "pgcalm".into(),
                user: Some("postgres".into()),
                state: Some("idle in transaction".into()),
                wait_event_type: Some("Client".into()),
                wait_event: Some("ClientRead".into()),
                state_secs: Some(75.2),
                xact_secs: Some(75.3),
                query: Some("SELECT * FROM large_email".into()),
            }],
            lock_waits: vec![LockWait {
                pid: 42,
                application_name: String::new(),
                locktype: "relation".into(),
                mode: "AccessExclusiveLock".into(),
                relation: Some("large_email".into()),
                blocked_by: vec![41],
                waiting_secs: Some(1.25),
                query: Some("ALTER TABLE large_email ADD c int".into()),
            }],
            index_builds: vec![IndexBuildProgress {
                pid: 43,
                table: Some("large_email".into()),
                index: Some("large_email_email_idx".into()),
                command: "CREATE INDEX CONCURRENTLY".into(),
                phase: "building index: scanning table".into(),
                lockers_total: 0,
                lockers_done: 0,
                current_locker_pid: 0,
                blocks_total: 1000,
                blocks_done: 250,
                tuples_total: 0,
                tuples_done: 0,
            }],
            maintenance: vec![],
        };
        insta::assert_snapshot!(screen_body(&snap), @r#"
                                                                     Index builds (1)
         pid |          command          |    table    |         index         |             phase              |       progress        | lockers
        -----+---------------------------+-------------+-----------------------+--------------------------------+-----------------------+---------
         43  | CREATE INDEX CONCURRENTLY | large_email | large_email_email_idx | building index: scanning table | 25% (250/1000) blocks |

                                                   Lock waits (1)
         pid |        wants        |     on      | blocked by | waiting |               query
        -----+---------------------+-------------+------------+---------+-----------------------------------
         42  | AccessExclusiveLock | large_email | 41         | 1.2s    | ALTER TABLE large_email ADD c int

        Maintenance: none

                                                       Sessions (1)
         pid | application |        state        |     waiting on     |  for  | xact  |           query
        -----+-------------+---------------------+--------------------+-------+-------+---------------------------
         41  | pgcalm      | idle in transaction | Client: ClientRead | 1m15s | 1m15s | SELECT * FROM large_email
        "#);
        assert!(redraw("a\nbcdef", 3).contains("bcd\x1b[K"));
    }
}
