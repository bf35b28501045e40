//! `pgcalm down [--volumes]`: the seed's `docker compose down [-v]`.

use crate::context::Context;
use crate::render;

/// Flags of `pgcalm down`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also delete the cluster directory: data, password file, log, remembered port
    /// (only a directory pgcalm created: it holds a PGCALM_CLUSTER file).
    #[arg(long, short = 'v')]
    pub volumes: bool,
}

/// Stops the embedded server (and deletes its data with --volumes).
pub async fn run(ctx: &Context, args: Args) -> anyhow::Result<()> {
    let Some(cluster) = ctx.cluster() else {
        anyhow::bail!(
            "DATABASE_URL names an external server; pgcalm only stops the embedded one\n  \
             fix: unset DATABASE_URL to manage the embedded cluster"
        );
    };
    let pid = cluster.running_pid();
    if args.volumes {
        match cluster.delete()? {
            Some((path, bytes)) => {
                if let Some(pid) = pid {
                    println!("Stopped PostgreSQL (pid {pid})");
                }
                println!(
                    "Deleted {} ({}: data directory, password file, server log, remembered port)",
                    path.display(),
                    render::size(bytes as i64)
                );
            }
            None => println!(
                "Nothing to delete: {} does not exist",
                cluster.root().display()
            ),
        }
    } else if cluster.stop()? {
        println!(
            "Stopped PostgreSQL (pid {}); data kept in {}",
            pid.unwrap_or_default(),
            cluster.data_dir().display()
        );
    } else {
        println!("PostgreSQL in {} is not running", cluster.root().display());
    }
    Ok(())
}
