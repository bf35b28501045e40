//! `pgcalm up`: the seed's `docker compose up -d`, and with `--replica` / `--pooler`
//! the production topology beside it (remembered for the next `pgcalm up`), with
//! `--serve` the demo app in the background. Outside any project it refuses (creating
//! a second, empty cluster where the user happens to be helps no one) and says how to
//! start one.

use pgcalm_migrate::{Runner, migrate_to_start_point};
use pgcalm_pg::replica::{REPLICATION_ROLE, REPLICATION_SLOT};
use pgcalm_pg::{
    Cluster, ClusterOptions, Origin, Parts, Pooler, PoolerOptions, PoolerStart, ReplicaOptions,
    ReplicaRemoval, ReplicaStart, StartOutcome, Target,
};

use crate::background;
use crate::migrate_events::run_printed;
use crate::output;
use crate::settings::{Outside, Settings};

/// Flags of `pgcalm up`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Loopback port for the embedded server (remembered for later runs).
    #[arg(long, env = "PGCALM_PORT")]
    pub port: Option<u16>,
    /// Also run a streaming replica of the server (pg_basebackup, a replication slot,
    /// its own loopback port); remembered: a later `pgcalm up` starts it again.
    #[arg(long, conflicts_with = "no_replica")]
    pub replica: bool,
    /// Stop and delete the replica, with its slot, role and pg_hba.conf rule.
    #[arg(long)]
    pub no_replica: bool,
    /// Also run PgBouncer in front of the server, in transaction pooling mode
    /// (Debian package pgbouncer); remembered like --replica.
    #[arg(long, conflicts_with = "no_pooler")]
    pub pooler: bool,
    /// Stop PgBouncer and delete its directory.
    #[arg(long)]
    pub no_pooler: bool,
    /// PgBouncer's default_pool_size: server connections per database and user
    /// (remembered) [default: 20]
    #[arg(long, env = "PGCALM_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_size: Option<u32>,
    /// Also start the demo app in the background, as `pgcalm serve --detach` does
    /// (`pgcalm down` stops it).
    #[arg(long)]
    pub serve: bool,
}

impl Args {
    /// What the flags change: `Some(true)` adds a part, `Some(false)` removes it.
    fn choice(yes: bool, no: bool) -> Option<bool> {
        (yes || no).then_some(yes)
    }

    fn names_a_part(&self) -> bool {
        self.replica || self.no_replica || self.pooler || self.no_pooler || self.pool_size.is_some()
    }
}

/// Starts (or checks) the server, creates the database, applies the start migrations.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    if args.serve {
        // Before anything starts: the app's pid and log go in the project.
        settings.require_project()?;
    }
    let target = match settings.placement()? {
        Some(placement) => {
            let cluster = placement.cluster;
            if let Some(outside) = &placement.outside {
                print_outside(&cluster, outside);
            }
            let parts = cluster.parts().with(
                Args::choice(args.replica, args.no_replica),
                Args::choice(args.pooler, args.no_pooler),
                args.pool_size,
            );
            if parts.pooler {
                // Before anything starts: a missing pgbouncer names its package.
                pgcalm_pg::binaries::locate_pgbouncer()?;
            }
            let bins = cluster.binaries()?;
            match cluster.start(args.port, &ClusterOptions::default())? {
                StartOutcome::AlreadyRunning { pid, port } => {
                    println!(
                        "PostgreSQL {} is already running in {} on 127.0.0.1:{port} (pid {pid})",
                        bins.version,
                        cluster.root().display()
                    );
                    if let Some(asked) = args.port.filter(|p| *p != port) {
                        anyhow::bail!(
                            "--port {asked} differs from the running server's port {port}\n  fix: `pgcalm down` first, then `pgcalm up --port {asked}`"
                        );
                    }
                }
                StartOutcome::Started {
                    pid,
                    port,
                    created,
                    recovered,
                } => {
                    if created {
                        println!(
                            "Created a PostgreSQL {} cluster in {} (binaries: {})",
                            bins.version,
                            cluster.root().display(),
                            bins.bindir.display()
                        );
                    }
                    if let Some(r) = recovered {
                        let stale = r
                            .stale_pid
                            .map(|p| format!("stale postmaster.pid (pid {p} was not running)"))
                            .unwrap_or_else(|| "leftovers".into());
                        let orphans = if r.orphans_killed.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " and stopped {} orphaned backend(s) {:?}",
                                r.orphans_killed.len(),
                                r.orphans_killed
                            )
                        };
                        println!(
                            "Recovered from an unclean shutdown: removed {stale}{orphans}; PostgreSQL replays its WAL on start, no committed data is lost"
                        );
                    }
                    println!(
                        "Started PostgreSQL {} on 127.0.0.1:{port} (pid {pid}); log: {}",
                        bins.version,
                        cluster.log_path().display()
                    );
                }
            }
            if cluster.replace_trust_auth().await? {
                println!(
                    "Secured the cluster an older pgcalm created: trust authentication replaced by scram-sha-256, password in {} (mode 0600; `pgcalm url` prints the URL)",
                    cluster.password_path().display()
                );
            }
            start_parts(&cluster, &parts).await?;
            settings.target_unchecked()?
        }
        None => {
            if args.names_a_part() {
                anyhow::bail!(
                    "--replica, --pooler and --pool-size set up parts beside the embedded \
                     server; DATABASE_URL names an external one\n  fix: unset DATABASE_URL, or \
                     run your own replica and pooler and give pgcalm their URLs"
                );
            }
            let target = settings.target_unchecked()?;
            println!(
                "Using the server named by DATABASE_URL: {}",
                target.masked_url()
            );
            target
        }
    };
    ensure_database(&target).await?;
    println!("Connection URL: {}", target.masked_url());
    if let Some(cluster) = settings.cluster() {
        let parts = cluster.parts();
        if parts.replica {
            let url = cluster.replica().target(target.dbname())?.masked_url();
            println!("Replica URL:    {url} (read only; `pgcalm url --replica`)");
        }
        if parts.pooler {
            let url = Pooler::of(&cluster)
                .target(&cluster, target.dbname())?
                .masked_url();
            println!("Pooler URL:     {url} (transaction pooling; `pgcalm url --pooler`)");
        }
    }
    apply_start_point(settings, target).await?;
    if args.serve {
        let detached = background::start(settings, Vec::new())?;
        println!("{}", background::describe(&detached, settings.cwd()));
    }
    Ok(())
}

/// Where the cluster is, when the `postgres` user cannot enter the project.
fn print_outside(cluster: &Cluster, outside: &Outside) {
    let why = format!(
        "the `postgres` user the server runs as cannot enter {}",
        outside.project.display()
    );
    match outside.new {
        true => println!(
            "Keeping the data in {} (owned by postgres, mode 0700): {why}; {} points there",
            cluster.root().display(),
            outside.pointer.display()
        ),
        false => println!(
            "The data is in {} ({} points there: {why})",
            cluster.root().display(),
            outside.pointer.display()
        ),
    }
}

/// The last step: apply the migrations up to the start point named in pgcalm.toml
/// (`[up] migrate_to = ["demoapp:0001"]`), forward only.
async fn apply_start_point(settings: &Settings, target: Target) -> anyhow::Result<()> {
    if settings.start_points.is_empty() {
        return Ok(());
    }
    let runner =
        Runner::new(target, settings.migrations_dir()).with_policy(settings.policy.clone());
    let points = &settings.start_points;
    run_printed(runner, settings.json(), |runner| async move {
        migrate_to_start_point(&runner, points).await
    })
    .await?;
    Ok(())
}

async fn ensure_database(target: &Target) -> anyhow::Result<()> {
    let created = target.ensure_database().await?;
    let client = target.connect().await?;
    let version = pgcalm_pg::catalog::server_version(&client).await?;
    let what = if created { "created" } else { "exists" };
    let server = match target.origin() {
        Origin::Embedded => "embedded",
        Origin::External => "external",
    };
    println!(
        "Database {} {what} (PostgreSQL {version}, {server})",
        target.dbname()
    );
    Ok(())
}

/// Starts or removes the replica and the pooler as `parts` says, remembering each once
/// it is done.
async fn start_parts(cluster: &Cluster, parts: &Parts) -> anyhow::Result<()> {
    if parts.replica {
        match cluster.start_replica(&ReplicaOptions::default()).await? {
            ReplicaStart::AlreadyRunning { pid, port } => {
                println!("The replica is already running on 127.0.0.1:{port} (pid {pid})");
            }
            ReplicaStart::Started { pid, port, created } => {
                let replica = cluster.replica();
                if let Some(created) = created {
                    if let Some(slot) = created.dropped_slot {
                        println!(
                            "Dropped replication slot {} left by a deleted replica{}",
                            slot.name,
                            kept_wal(slot.retained_bytes)
                        );
                    }
                    println!(
                        "Created a streaming replica in {} (pg_basebackup, {}; slot \
                         {REPLICATION_SLOT}, role {REPLICATION_ROLE}, its password in {})",
                        replica.root().display(),
                        output::size(created.backup_bytes as i64),
                        replica.passfile_path().display()
                    );
                }
                println!(
                    "Started the replica on 127.0.0.1:{port} (pid {pid}), streaming from the \
                     primary; log: {}",
                    replica.log_path().display()
                );
            }
        }
    } else {
        print_replica_removal(&cluster.remove_replica().await?);
    }
    cluster.remember_parts(&cluster.parts().with(Some(parts.replica), None, None))?;

    let pooler = Pooler::of(cluster);
    if parts.pooler {
        let opts = PoolerOptions {
            pool_size: parts.pool_size,
        };
        let settings = format!(
            "pool_mode transaction, default_pool_size {}",
            opts.pool_size
        );
        match pooler.start(cluster, &opts).await? {
            PoolerStart::AlreadyRunning {
                pid,
                port,
                reloaded,
            } => {
                let reloaded = if reloaded {
                    format!("; reloaded its configuration ({settings})")
                } else {
                    String::new()
                };
                println!("PgBouncer is already running on 127.0.0.1:{port} (pid {pid}){reloaded}");
            }
            PoolerStart::Started { pid, port } => println!(
                "Started PgBouncer on 127.0.0.1:{port} (pid {pid}): {settings}; log: {}",
                pooler.log_path().display()
            ),
        }
    } else if let Some((path, bytes)) = pooler.delete()? {
        println!(
            "Removed PgBouncer: stopped it, deleted {} ({})",
            path.display(),
            output::size(bytes as i64)
        );
    }
    cluster.remember_parts(&cluster.parts().with(
        None,
        Some(parts.pooler),
        Some(parts.pool_size),
    ))?;
    Ok(())
}

fn print_replica_removal(removal: &ReplicaRemoval) {
    if removal.is_empty() {
        return;
    }
    if let Some(pid) = removal.stopped_pid {
        println!("Stopped the replica (pid {pid})");
    }
    if let Some((path, bytes)) = &removal.deleted {
        println!(
            "Deleted the replica {} ({})",
            path.display(),
            output::size(*bytes as i64)
        );
    }
    match (&removal.dropped_slot, &removal.deleted) {
        (Some(slot), Some(_)) => println!("Dropped the replica's replication slot {}", slot.name),
        (Some(slot), None) => println!(
            "Dropped replication slot {} left by a deleted replica{}",
            slot.name,
            kept_wal(slot.retained_bytes)
        ),
        (None, _) => {}
    }
    let mut also = Vec::new();
    if removal.dropped_role {
        also.push(format!("role {REPLICATION_ROLE}"));
    }
    if removal.removed_hba_rule {
        also.push("its pg_hba.conf replication rule".to_string());
    }
    if !also.is_empty() {
        println!("Removed the replica's {}", also.join(" and "));
    }
}

fn kept_wal(bytes: Option<i64>) -> String {
    match bytes {
        Some(bytes) => format!(" (it kept {} of WAL)", output::size(bytes)),
        None => String::new(),
    }
}
