//! `pgcalm down [--volumes]`: the seed's `docker compose down [-v]`, for the server and
//! the replica and pooler `pgcalm up` started beside it.

use pgcalm_pg::Pooler;

use crate::output;
use crate::settings::Settings;

/// Flags of `pgcalm down`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Also delete the cluster directory: data, password file, log, remembered port,
    /// the replica and the pooler (only a directory pgcalm created: it holds a
    /// PGCALM_CLUSTER file).
    #[arg(long, short = 'v')]
    pub volumes: bool,
}

/// Stops the embedded server (and deletes its data with --volumes).
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let Some(cluster) = settings.cluster() else {
        anyhow::bail!(
            "DATABASE_URL names an external server; pgcalm only stops the embedded one\n  \
             fix: unset DATABASE_URL to manage the embedded cluster"
        );
    };
    if args.volumes {
        // `delete` refuses a directory that is not pgcalm's before it stops anything.
        let running = [
            ("PgBouncer", Pooler::of(&cluster).running_pid()),
            ("the replica", cluster.replica().running_pid()),
            ("PostgreSQL", cluster.running_pid()),
        ];
        match cluster.delete()? {
            Some((path, bytes)) => {
                for (what, pid) in running {
                    if let Some(pid) = pid {
                        println!("Stopped {what} (pid {pid})");
                    }
                }
                println!(
                    "Deleted {} ({}: data directory, password file, server log, remembered \
                     port, replica and pooler)",
                    path.display(),
                    output::size(bytes as i64)
                );
            }
            None => println!(
                "Nothing to delete: {} does not exist",
                cluster.root().display()
            ),
        }
        return Ok(());
    }
    let stopped = cluster.stop_all()?;
    if let Some(pid) = stopped.pooler {
        println!("Stopped PgBouncer (pid {pid})");
    }
    if let Some(pid) = stopped.replica {
        println!("Stopped the replica (pid {pid})");
    }
    match stopped.primary {
        Some(pid) => println!(
            "Stopped PostgreSQL (pid {pid}); data kept in {}",
            cluster.data_dir().display()
        ),
        None => println!("PostgreSQL in {} is not running", cluster.root().display()),
    }
    Ok(())
}
