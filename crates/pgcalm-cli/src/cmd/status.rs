//! `pgcalm status`: where the database is, whether it runs, its version, the
//! migration state, and the connection URL (password masked unless asked); the replica
//! and the pooler when `pgcalm up` set them up, and the demo app `serve --detach`
//! started. Exits 0 only
//! when pgcalm can use the server: 3 when the embedded server is not running (or not
//! created), 1 when it cannot be used (connection refused, authentication failed, ...).

use pgcalm_demo::ServeRecord;
use pgcalm_migrate::{MigrationStatus, Runner, State};
use pgcalm_pg::catalog::SlotInfo;
use pgcalm_pg::replica::REPLICATION_SLOT;
use pgcalm_pg::{
    Cluster, ConnectFailure, PgError, Pooler, PoolerStatus, ReplicaState, ReplicaStatus, Topology,
};
use serde::Serialize;

use crate::output::{self, Exit};
use crate::settings::Settings;

/// Flags of `pgcalm status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Show the password in the URL (the embedded cluster's only to the user who can
    /// read its password file). `pgcalm url` prints the URL alone, for scripts.
    #[arg(long)]
    pub show_password: bool,
}

/// Whether pgcalm can use the server, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ServerState {
    /// The embedded server accepted pgcalm's connection.
    Running,
    /// The `DATABASE_URL` server accepted pgcalm's connection.
    Reachable,
    /// The embedded cluster does not exist yet.
    NotCreated,
    /// The embedded cluster exists but its server is stopped.
    NotRunning,
    /// Nothing listens at the address.
    ConnectionRefused,
    /// The server refused the user or password.
    AuthenticationFailed,
    /// The embedded cluster's password file cannot be read by this user.
    PasswordUnreadable,
    /// Any other failure to connect.
    Unreachable,
}

impl ServerState {
    fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Reachable => "reachable",
            Self::NotCreated => "not created",
            Self::NotRunning => "not running",
            Self::ConnectionRefused => "connection refused",
            Self::AuthenticationFailed => "authentication failed",
            Self::PasswordUnreadable => "password file unreadable",
            Self::Unreachable => "unreachable",
        }
    }

    /// 0 usable; 3 not running, as `pg_ctl status` and LSB init scripts say it; 1 else.
    fn exit_code(self) -> u8 {
        match self {
            Self::Running | Self::Reachable => 0,
            Self::NotCreated | Self::NotRunning => 3,
            _ => 1,
        }
    }

    fn of(error: &anyhow::Error) -> Self {
        match error.downcast_ref::<PgError>() {
            Some(PgError::PasswordFile { .. }) => Self::PasswordUnreadable,
            Some(e) => match e.connect_failure() {
                Some(ConnectFailure::Refused) => Self::ConnectionRefused,
                Some(ConnectFailure::AuthFailed) => Self::AuthenticationFailed,
                _ => Self::Unreachable,
            },
            None => Self::Unreachable,
        }
    }
}

/// What `status` reports (`--format json` prints it as is).
#[derive(Debug, Serialize)]
pub(crate) struct StatusReport {
    /// `embedded` or `external`.
    pub server: &'static str,
    /// Cluster directory (embedded only).
    pub data_dir: Option<String>,
    /// Why the cluster directory is outside the project, when it is.
    pub data_dir_note: Option<String>,
    /// Whether pgcalm can use the server, and if not, why.
    pub state: ServerState,
    /// Whether the server accepts connections.
    pub running: bool,
    /// Postmaster pid (embedded only).
    pub pid: Option<u32>,
    /// `SHOW server_version` when reachable.
    pub server_version: Option<String>,
    /// Connection URL, the password masked unless `--show-password`.
    pub url: Option<String>,
    /// The `sslmode` in effect.
    pub sslmode: Option<String>,
    /// The session's TLS protocol (`TLSv1.3`) when encrypted (from `pg_stat_ssl`).
    pub tls: Option<String>,
    /// Why the server is not reachable, when it is not.
    pub problem: Option<String>,
    /// Migration state per app (when the server is reachable and migrations exist).
    pub migrations: Vec<AppMigrations>,
    /// The replica `pgcalm up --replica` set up (embedded only).
    pub replica: Option<WithUrl<ReplicaStatus>>,
    /// The pooler `pgcalm up --pooler` set up (embedded only).
    pub pooler: Option<WithUrl<PoolerStatus>>,
    /// Replication slots no standby uses (each keeps WAL on the server's disk).
    pub inactive_slots: Vec<SlotInfo>,
    /// The demo app running in the background (`serve --detach`, `up --serve`), or the
    /// one that last did.
    pub app: Option<AppStatus>,
}

/// The background demo app, from its record in `.pgcalm/serve/`.
#[derive(Debug, Serialize)]
pub(crate) struct AppStatus {
    /// Its process id.
    pub pid: u32,
    /// Where it answers.
    pub url: String,
    /// Whether that process still runs.
    pub alive: bool,
    /// Its log file.
    pub log: String,
}

/// A part's status and its connection URL (password masked unless `--show-password`).
#[derive(Debug, Serialize)]
pub(crate) struct WithUrl<T> {
    /// The status.
    #[serde(flatten)]
    pub status: T,
    /// Its connection URL.
    pub url: Option<String>,
}

/// Migration state of one app.
#[derive(Debug, Serialize)]
pub(crate) struct AppMigrations {
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

/// Prints the status; fails (exit 3 or 1, see the module doc) when the server cannot
/// be used.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let report = collect(settings, args.show_password).await;
    let code = report.state.exit_code();
    if settings.json() {
        crate::output::print_json(&report)?;
    } else {
        print_text(&report);
    }
    match code {
        0 => Ok(()),
        code => Err(Exit(code).into()),
    }
}

fn print_text(report: &StatusReport) {
    println!("Server:   {}", report.server);
    if let Some(dir) = &report.data_dir {
        println!("Data dir: {dir}");
    }
    if let Some(note) = &report.data_dir_note {
        println!("          ({note})");
    }
    let state = match (report.state, report.pid) {
        (ServerState::Running, Some(pid)) => format!("running (pid {pid})"),
        (state, _) => state.label().to_string(),
    };
    println!("State:    {state}");
    if let Some(v) = &report.server_version {
        println!("Version:  PostgreSQL {v}");
    }
    if let Some(url) = &report.url {
        println!("URL:      {url}");
    }
    if report.running {
        let mode = report.sslmode.as_deref().unwrap_or("prefer");
        match &report.tls {
            Some(version) => println!("TLS:      {version} (sslmode={mode})"),
            None => println!("TLS:      not encrypted (sslmode={mode})"),
        }
    }
    if let Some(p) = &report.problem {
        println!("Problem:  {p}");
    }
    print_topology(report);
    if let Some(app) = &report.app {
        let state = match app.alive {
            true => format!("running (pid {}) on {}", app.pid, app.url),
            false => format!(
                "not running (pid {} is gone; it was on {})",
                app.pid, app.url
            ),
        };
        println!("App:      {state}; log: {}", app.log);
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
}

/// The replica, the pooler and idle slots, two lines each at most.
fn print_topology(report: &StatusReport) {
    const INDENT: &str = "          ";
    if let Some(WithUrl { status: r, url }) = &report.replica {
        let state = match r.pid {
            Some(pid) => format!("{} (pid {pid})", r.state.label()),
            None => r.state.label().to_string(),
        };
        let port = r
            .port
            .map(|p| format!(" on 127.0.0.1:{p}"))
            .unwrap_or_default();
        let role = r
            .role
            .as_deref()
            .map(|r| format!(", {r}"))
            .unwrap_or_default();
        let lag = match (r.lag_bytes, r.lag_seconds) {
            (Some(bytes), Some(secs)) => format!(", lag {} / {secs:.1} s", output::size(bytes)),
            (Some(bytes), None) => format!(", lag {}", output::size(bytes)),
            _ => String::new(),
        };
        println!("Replica:  {state}{port}{role}{lag}, slot {}", r.slot);
        if let Some(url) = url {
            println!("{INDENT}URL: {url}");
        }
        if let Some(p) = &r.problem {
            println!("{INDENT}{p}");
        }
    }
    if let Some(WithUrl { status: p, url }) = &report.pooler {
        let state = match p.pid {
            Some(pid) => format!("running (pid {pid})"),
            None => "not running".to_string(),
        };
        let port = p
            .port
            .map(|p| format!(" on 127.0.0.1:{p}"))
            .unwrap_or_default();
        let mut what = Vec::new();
        what.extend(p.version.clone());
        what.extend(p.pool_mode.as_ref().map(|m| format!("pool_mode {m}")));
        what.extend(p.pool_size.map(|s| format!("pool size {s}")));
        let what = match what.is_empty() {
            true => String::new(),
            false => format!(": {}", what.join(", ")),
        };
        println!("Pooler:   {state}{port}{what}");
        if p.pid.is_some() && p.problem.is_none() {
            println!(
                "{INDENT}clients {} active, {} waiting; servers {} active, {} idle",
                p.total(|x| x.clients_active),
                p.total(|x| x.clients_waiting),
                p.total(|x| x.servers_active),
                p.total(|x| x.servers_idle + x.servers_used)
            );
        }
        if let Some(url) = url {
            println!("{INDENT}URL: {url}");
        }
        if let Some(problem) = &p.problem {
            println!("{INDENT}{problem}");
        }
    }
    for slot in &report.inactive_slots {
        let kept = slot
            .retained_bytes
            .map(|b| format!(" and keeps {} of WAL", output::size(b)))
            .unwrap_or_default();
        let replica_exists = report
            .replica
            .as_ref()
            .is_some_and(|r| r.status.state != ReplicaState::NotCreated);
        let whose = match (slot.name == REPLICATION_SLOT, replica_exists) {
            (true, true) => "the replica's, while it is not streaming".to_string(),
            (true, false) => "left by a deleted replica; `pgcalm up` drops it".to_string(),
            (false, _) => format!(
                "not pgcalm's: SELECT pg_drop_replication_slot('{}') drops it if nothing needs it",
                slot.name
            ),
        };
        println!("Slot:     {} is inactive{kept} ({whose})", slot.name);
    }
}

/// The replica's and the pooler's status, with their URLs.
async fn collect_topology(
    cluster: &Cluster,
    dbname: &str,
    show_password: bool,
    report: &mut StatusReport,
) {
    let topology = Topology::collect(cluster).await;
    let url = |target: Result<pgcalm_pg::Target, PgError>, with: Result<String, PgError>| {
        let target = target.ok()?;
        Some(match show_password {
            true => with.unwrap_or_else(|_| target.masked_url()),
            false => target.masked_url(),
        })
    };
    let replica = cluster.replica();
    report.replica = topology.replica.map(|status| WithUrl {
        url: url(replica.target(dbname), replica.url(dbname)),
        status,
    });
    let pooler = Pooler::of(cluster);
    report.pooler = topology.pooler.map(|status| WithUrl {
        url: url(pooler.target(cluster, dbname), pooler.url(cluster, dbname)),
        status,
    });
    report.inactive_slots = topology.inactive_slots;
}

async fn collect(settings: &Settings, show_password: bool) -> StatusReport {
    let cluster = settings.cluster();
    let mut report = StatusReport {
        server: if cluster.is_some() {
            "embedded"
        } else {
            "external"
        },
        data_dir: cluster.as_ref().map(|c| c.root().display().to_string()),
        data_dir_note: settings.outside_note(),
        state: ServerState::Unreachable,
        running: false,
        pid: cluster.as_ref().and_then(|c| c.running_pid()),
        server_version: None,
        url: None,
        sslmode: None,
        tls: None,
        problem: None,
        migrations: Vec::new(),
        replica: None,
        pooler: None,
        inactive_slots: Vec::new(),
        app: settings.project().and_then(|p| {
            let record = ServeRecord::read(&p.serve_dir())?;
            Some(AppStatus {
                pid: record.pid,
                alive: record.is_alive(),
                log: crate::background::shown(&record.log, settings.cwd())
                    .display()
                    .to_string(),
                url: record.url,
            })
        }),
    };
    if cluster.as_ref().is_some_and(|c| c.port().is_none()) {
        report.state = ServerState::NotCreated;
        report.problem = Some(match settings.embedded_cluster() {
            Err(no_project) => no_project.to_string(),
            Ok(_) => "the embedded server has not been created; `pgcalm up` creates it".into(),
        });
        return report;
    }
    let target = match settings.target_unchecked() {
        Ok(t) => t,
        Err(e) => {
            report.state = ServerState::of(&e);
            report.problem = Some(e.to_string());
            return report;
        }
    };
    // The password was just read for the target: showing it cannot fail on access.
    report.url = Some(match show_password {
        true => settings
            .url_with_password()
            .unwrap_or_else(|_| target.masked_url()),
        false => target.masked_url(),
    });
    report.sslmode = Some(target.ssl_mode().to_string());
    if let Some(cluster) = &cluster {
        collect_topology(cluster, target.dbname(), show_password, &mut report).await;
    }
    if cluster.is_some() && report.pid.is_none() {
        report.state = ServerState::NotRunning;
        report.problem = Some("the embedded server is stopped; `pgcalm up` starts it".into());
        return report;
    }
    match target.connect().await {
        Ok(client) => {
            report.running = true;
            report.state = match cluster {
                Some(_) => ServerState::Running,
                None => ServerState::Reachable,
            };
            report.server_version = pgcalm_pg::catalog::server_version(&client).await.ok();
            report.tls = pgcalm_pg::catalog::session_tls(&client)
                .await
                .ok()
                .flatten();
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            report.state = ServerState::of(&e);
            report.problem = Some(e.to_string());
            return report;
        }
    }
    if settings.migrations_dir().is_dir() {
        match Runner::new(target, settings.migrations_dir())
            .status(None)
            .await
        {
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
