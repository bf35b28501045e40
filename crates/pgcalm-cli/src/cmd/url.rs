//! `pgcalm url`: the connection URL with its password, for scripts
//! (`DATABASE_URL=$(pgcalm url)`); `status` shows it masked. `--replica` / `--pooler`:
//! the URL of the replica or through the pooler `pgcalm up` started.

use pgcalm_pg::Pooler;

use crate::settings::Settings;

/// Flags of `pgcalm url`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The replica's URL (read only; `pgcalm up --replica`).
    #[arg(long, conflicts_with = "pooler")]
    pub replica: bool,
    /// The URL through PgBouncer (`pgcalm up --pooler`).
    #[arg(long)]
    pub pooler: bool,
}

/// Prints the URL: the embedded cluster's (only for the user who can read its password
/// file) or `DATABASE_URL` as given; the replica's or the pooler's when asked.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    if !args.replica && !args.pooler {
        println!("{}", settings.url_with_password()?);
        return Ok(());
    }
    let Some(cluster) = settings.embedded_cluster()? else {
        anyhow::bail!(
            "DATABASE_URL names an external server; pgcalm knows the replica and pooler of \
             the embedded one only\n  fix: unset DATABASE_URL"
        );
    };
    let dbname = settings.target_unchecked()?.dbname().to_string();
    let url = match args.replica {
        true => cluster.replica().url(&dbname)?,
        false => Pooler::of(&cluster).url(&cluster, &dbname)?,
    };
    println!("{url}");
    Ok(())
}
