//! `pgcalm sqlmigrate APP NAME [--backwards]`: the SQL a migration sends, exactly as the
//! runner sends it: the transaction around it (or none), the timeouts set before each
//! statement, and the file line of every statement with the lock it takes (the lock
//! table), what that blocks, and its verdict (lint). Needs no database.

use pgcalm_migrate::{Direction, MigrationSet};

use crate::output::migration::{sql_json, sql_text};
use crate::settings::{PolicyArgs, Settings};

/// Flags of `pgcalm sqlmigrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// App.
    pub app: String,
    /// Migration (a prefix of its name is enough).
    pub name: String,
    /// Print the down section (what unapplying runs).
    #[arg(long)]
    pub backwards: bool,
    // Read into the settings' policy in `main`.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Prints the SQL.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let set = MigrationSet::load(settings.migrations_dir())?;
    let file = set.resolve(&args.app, &args.name)?;
    // The set was only scanned: the file shown is parsed (a syntax error stops here).
    file.check()?;
    let direction = if args.backwards {
        Direction::Down
    } else {
        Direction::Up
    };
    if file.section(direction).is_none() {
        anyhow::bail!(
            "{} has no `-- migrate:down` section, so {} cannot be unapplied\n  fix: add a `-- migrate:down` section with the SQL that reverts it",
            file.path.display(),
            file.id()
        );
    }
    if settings.json() {
        return crate::output::json(&sql_json(file, direction, &settings.policy));
    }
    print!("{}", sql_text(file, direction, &settings.policy));
    Ok(())
}
