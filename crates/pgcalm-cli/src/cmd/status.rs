//! `pgcalm status`: where the database is, whether it runs, its version, the
//! migration state, and the connection URL (password masked).

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
        Err(e) => report.problem = Some(e.to_string()),
    }
    report
}
