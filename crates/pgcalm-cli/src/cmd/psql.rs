//! `pgcalm psql [ARGS...]`: the seed's `docker compose exec db psql`.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::Context as _;

use crate::settings::Settings;

/// Flags of `pgcalm psql`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Arguments passed to psql as they are (e.g. `-c "\d large_email"`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Replaces this process with psql connected to the current database. The connection
/// goes through PG* environment variables, so no password appears on a command line.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let target = settings.target().await?;
    let psql = find_psql();
    let err = Command::new(&psql)
        .args(&args.args)
        .envs(target.libpq_env())
        .exec();
    Err(err).with_context(|| {
        format!(
            "running {psql}\n  fix: install the client with `apt-get install -y postgresql-client`"
        )
    })
}

fn find_psql() -> String {
    if let Ok(bins) = pgcalm_pg::PgBinaries::locate() {
        let p = bins.bin("psql");
        if p.is_file() {
            return p.display().to_string();
        }
    }
    "psql".into()
}
