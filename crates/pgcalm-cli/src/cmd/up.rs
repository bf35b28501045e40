//! `pgcalm up`: the seed's `docker compose up -d`.

use pgcalm_pg::{ClusterOptions, Origin, StartOutcome, Target};

use crate::context::Context;

/// Flags of `pgcalm up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Loopback port for the embedded server (remembered for later runs).
    #[arg(long, env = "PGCALM_PORT")]
    pub port: Option<u16>,
}

/// Starts (or checks) the server, creates the database, applies the start migrations.
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let target = match ctx.cluster() {
        Some(cluster) => {
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
            ctx.target_unchecked()?
        }
        None => {
            let target = ctx.target_unchecked()?;
            println!(
                "Using the server named by DATABASE_URL: {}",
                target.masked_url()
            );
            target
        }
    };
    ensure_database(&target).await?;
    println!("Connection URL: {}", target.masked_url());
    crate::cmd::migrate::apply_start_point(ctx, &target).await?;
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
