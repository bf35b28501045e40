//! `pgcalm status`: where the database is, whether it runs, its version, the
//! migration state, and the connection URL (password masked).

use pgcalm_migrate::{MigrationStatus, Runner, State};
use serde::Serialize;

use crate::context::Context;

/// Flags of `pgcalm status`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// What `status` reports (`--format json` prints it as is).
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// `embedded` or `external`.
    pub server: &'static str,
    /// Cluster directory (embedded only).
    pub data_dir: Option<String>,
    /// Whether the server accepts connections.
    pub running: bool,
    /// Postmaster pid (embedded only).
    pub pid: Option<u32>,
    /// `SHOW server_version` when reachable.
    pub server_version: Option<String>,
    /// Connection URL with the password masked.
    pub url: Option<String>,
    /// Why the server is not reachable, when it is not.
    pub problem: Option<String>,
    /// Migration state per app (when the server is reachable and migrations exist).
    pub migrations: Vec<AppMigrations>,
}

/// Migration state of one app.
#[derive(Debug, Serialize)]
pub struct AppMigrations {
    /// App name.
    pub app: String,
    /// Applied migrations.
    pub applied: usize,
    /// Migrations on disk (or in the journal).
    pub total: usize,
    /// The last applied migration.
    pub current: Option<String>,
    /// Not applied yet, in order.
    pub pending: Vec<String>,
    /// Partially applied or failed migrations, with why.
    pub problems: Vec<String>,
}

/// Prints the status.
pub async fn run(ctx: &Context, _args: Args) -> anyhow::Result<()> {
    let report = collect(ctx).await;
    if ctx.json() {
        return crate::render::json(&report);
    }
    println!("Server:   {}", report.server);
    if let Some(dir) = &report.data_dir {
        println!("Data dir: {dir}");
    }
    let state = match (report.running, report.pid) {
        (true, Some(pid)) => format!("running (pid {pid})"),
        (true, None) => "reachable".to_string(),
        (false, _) => "not running".to_string(),
    };
    println!("State:    {state}");
    if let Some(v) = &report.server_version {
        println!("Version:  PostgreSQL {v}");
    }
    if let Some(url) = &report.url {
        println!("URL:      {url}");
    }
    if let Some(p) = &report.problem {
        println!("Problem:  {p}");
    }
    for m in &report.migrations {
        let next = match m.pending.first() {
            Some(n) => format!("; next: {n}"),
            None => String::new(),
        };
        println!(
            "Migrations: {} at {} ({}/{} applied{next})",
            m.app,
            m.current.as_deref().unwrap_or("zero"),
            m.applied,
            m.total
        );
        for p in &m.problems {
            println!("  ! {p}");
        }
    }
    Ok(())
}

async fn collect(ctx: &Context) -> StatusReport {
    let cluster = ctx.cluster();
    let mut report = StatusReport {
        server: if cluster.is_some() {
            "embedded"
        } else {
            "external"
        },
        data_dir: cluster.as_ref().map(|c| c.root().display().to_string()),
        running: false,
        pid: cluster.as_ref().and_then(|c| c.running_pid()),
        server_version: None,
        url: None,
        problem: None,
        migrations: Vec::new(),
    };
    let target = match ctx.target_unchecked() {
        Ok(t) => t,
        Err(e) => {
            report.problem = Some(e.to_string());
            return report;
        }
    };
    report.url = Some(target.masked_url());
    if cluster.is_some() && report.pid.is_none() {
        report.problem = Some("the embedded server is stopped; `pgcalm up` starts it".into());
        return report;
    }
    match target.connect().await {
        Ok(client) => {
            report.running = true;
            report.server_version = pgcalm_pg::catalog::server_version(&client).await.ok();
        }
        Err(e) => {
            report.problem = Some(e.to_string());
            return report;
        }
    }
    if ctx.migrations_dir().is_dir() {
        match Runner::new(target, ctx.migrations_dir()).status(None).await {
            Ok(statuses) => report.migrations = summarize(&statuses),
            Err(e) => report.problem = Some(format!("migration state unavailable: {e}")),
        }
    }
    report
}

/// Per app: how many are applied, the current one, what is pending, what is wrong.
fn summarize(statuses: &[MigrationStatus]) -> Vec<AppMigrations> {
    let mut apps: Vec<AppMigrations> = Vec::new();
    for s in statuses {
        if apps.last().is_none_or(|a| a.app != s.app) {
            apps.push(AppMigrations {
                app: s.app.clone(),
                applied: 0,
                total: 0,
                current: None,
                pending: Vec::new(),
                problems: Vec::new(),
            });
        }
        let app = apps.last_mut().expect("pushed above");
        app.total += 1;
        match s.state {
            State::Applied | State::Cancelled { applied: true, .. } => {
                app.applied += 1;
                app.current = Some(s.name.clone());
            }
            State::NotApplied => app.pending.push(s.name.clone()),
            State::Partial { .. } | State::Failed { .. } | State::Cancelled { .. } => {
                app.pending.push(s.name.clone());
                app.problems.push(format!(
                    "{} {}: {}",
                    s.marker(),
                    s.name,
                    s.explanation().unwrap_or_default()
                ));
            }
        }
    }
    apps
}
