//! `pgcalm down [--volumes]`: the seed's `docker compose down [-v]`, for the demo app
//! running in the background, the server, and the replica and pooler `pgcalm up` started
//! beside it.

use pgcalm_demo::{delete_background_dir, stop_background};
use pgcalm_pg::{Ownership, Pooler};

use crate::background::STOP_GRACE;
use crate::output;
use crate::settings::Settings;

/// Flags of `pgcalm down`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Also delete the cluster directory: data, password file, log, remembered port,
    /// the replica and the pooler (only a directory pgcalm created: it holds a
    /// PGCALM_CLUSTER file), and the demo app's log.
    #[arg(long, short = 'v')]
    pub volumes: bool,
}

/// Stops the demo app and the embedded server (and deletes their data with --volumes).
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    // The app first, as `docker compose down` stops the web app before the database.
    let serve_dir = settings.project().map(|p| p.serve_dir());
    if let Some(dir) = &serve_dir
        && let Some(stopped) = stop_background(dir, STOP_GRACE)?
    {
        let how = match stopped.killed {
            true => " (killed: it did not finish its requests in time)",
            false => "",
        };
        println!("Stopped the demo app (pid {}){how}", stopped.pid);
    }
    let mut app_deleted = false;
    if args.volumes
        && let Some(dir) = &serve_dir
        && let Some(bytes) = delete_background_dir(dir)?
    {
        app_deleted = true;
        println!(
            "Deleted the demo app's log and record in {} ({})",
            dir.display(),
            output::size(bytes as i64)
        );
    }
    let Some(cluster) = settings.embedded_cluster()? else {
        anyhow::bail!(
            "DATABASE_URL names an external server; pgcalm only stops the embedded one\n  \
             fix: unset DATABASE_URL to manage the embedded cluster"
        );
    };
    if args.volumes {
        // `delete` refuses a directory that is not pgcalm's before it stops anything.
        let running = [
            ("PgBouncer", Pooler::of(&cluster).running_pid()),
            (
                "the lab's PgBouncer",
                Pooler::lab_of(&cluster).running_pid(),
            ),
            ("the replica", cluster.replica().running_pid()),
            ("PostgreSQL", cluster.running_pid()),
        ];
        // `delete` refuses a directory that is not pgcalm's; an empty one holds nothing.
        let deleted = match cluster.ownership() {
            Ownership::Vacant => None,
            _ => cluster.delete()?,
        };
        match deleted {
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
                "Nothing to delete: {} {}",
                cluster.root().display(),
                match cluster.root().exists() {
                    true => "holds no cluster",
                    false => "does not exist",
                }
            ),
        }
        let pointer = settings.forget_outside_cluster()?;
        if let Some(pointer) = &pointer {
            println!("Deleted {}, which named it", pointer.display());
        }
        // The project's .pgcalm/ when it only held what was just deleted.
        if (pointer.is_some() || app_deleted)
            && let Some(project) = settings.project()
        {
            let _ = std::fs::remove_dir(project.state_dir());
        }
        return Ok(());
    }
    let stopped = cluster.stop_all()?;
    if let Some(pid) = stopped.pooler {
        println!("Stopped PgBouncer (pid {pid})");
    }
    if let Some(pid) = stopped.lab_pooler {
        println!("Stopped the lab's PgBouncer (pid {pid}), which a lab run left behind");
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
