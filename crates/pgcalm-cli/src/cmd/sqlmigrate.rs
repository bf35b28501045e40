//! `pgcalm sqlmigrate APP NAME [--backwards]`: the SQL a migration sends, exactly as the
//! runner sends it: the transaction around it (or none), the timeouts set before each
//! statement, and the file line of every statement with the lock it takes (the lock
//! table), what that blocks, and its verdict (lint). Needs no database.

use pgcalm_migrate::{Direction, MigrateError, MigrationSet};

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
    let set = MigrationSet::load(settings.migrations_dir()).map_err(only_what_applies)?;
    let file = set
        .resolve(&args.app, &args.name)
        .map_err(only_what_applies)?;
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
    // The project's lint settings and today's date (an ignore may have expired), as
    // `migrate` and `lint` judge the statements.
    let lint = settings.lint_options()?;
    if settings.json() {
        return crate::output::print_json(&sql_json(file, direction, &settings.policy, &lint));
    }
    print!("{}", sql_text(file, direction, &settings.policy, &lint));
    Ok(())
}

/// The runner's lookup errors, with the fixes that apply to printing one migration:
/// `zero`, creating an app or an empty migrations directory do not.
fn only_what_applies(e: MigrateError) -> anyhow::Error {
    match e {
        MigrateError::UnknownTarget { app, target, known } if target == "zero" => anyhow::anyhow!(
            "`zero` is not a migration: sqlmigrate prints the SQL of one migration of `{app}` \
             ({known})\n  fix: give one of them (--backwards for its down section); \
             `pgcalm migrate {app} zero --plan` shows what unapplying them all runs"
        ),
        MigrateError::UnknownTarget { app, target, known } => {
            let first = known.split(", ").next().unwrap_or_default();
            let number = first.split('_').next().unwrap_or(first);
            anyhow::anyhow!(
                "app `{app}` has no migration matching `{target}`; its migrations: {known}\n  \
                 fix: give a number or name prefix of one of them, e.g. `pgcalm sqlmigrate {app} {number}`"
            )
        }
        MigrateError::UnknownApp { app, dir, known } => anyhow::anyhow!(
            "no app named `{app}` in {}; apps: {known}\n  fix: give one of those apps \
             (`pgcalm showmigrations` lists each app's migrations)",
            dir.display()
        ),
        MigrateError::NoMigrationsDir { dir, cause } => anyhow::anyhow!(
            "cannot read migrations directory {}: {cause}\n  fix: point pgcalm at the \
             directory holding `<app>/<NNNN>_<name>.sql` with --migrations-dir (or \
             PGCALM_MIGRATIONS_DIR)",
            dir.display()
        ),
        e => e.into(),
    }
}
