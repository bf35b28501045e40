//! `pgcalm init`: starts a project in the current directory (or `-C DIR`): a
//! pgcalm.toml with every setting commented out at its default, and `migrations/`.
//! Never overwrites: an existing pgcalm.toml stops it before anything is written.

use std::io::Write as _;

use anyhow::Context as _;

use crate::settings::{CONFIG_FILE, Settings, starter_config};

/// Flags of `pgcalm init`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Writes pgcalm.toml (refusing to replace one) and creates `migrations/` if missing.
pub(crate) async fn run(settings: &Settings, _args: Args) -> anyhow::Result<()> {
    let dir = settings.cwd();
    let config = dir.join(CONFIG_FILE);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&config)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} already exists: this is a pgcalm project already (nothing was written)\n  \
             fix: edit it, or run `pgcalm init` in another directory",
            config.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", config.display())),
    };
    file.write_all(starter_config().as_bytes())
        .with_context(|| format!("writing {}", config.display()))?;
    let migrations = dir.join("migrations");
    let created = !migrations.is_dir();
    std::fs::create_dir_all(&migrations)
        .with_context(|| format!("creating {}", migrations.display()))?;
    println!(
        "Created {CONFIG_FILE} (every setting, commented out at its default) in {}",
        dir.display()
    );
    match created {
        true => {
            println!("Created migrations/ (one folder per app: migrations/<app>/<NNNN>_<name>.sql)")
        }
        false => println!("Kept migrations/, which exists"),
    }
    if let Some(outer) = settings.project().filter(|p| p.root() != dir) {
        println!(
            "Note: this directory is inside the project at {}; from here down, this one is used",
            outer.root().display()
        );
    }
    println!(
        "Next: write migrations/<app>/0001_<name>.sql (a `-- migrate:up` and a `-- migrate:down` \
         section), then `pgcalm up` starts PostgreSQL in .pgcalm/ and `pgcalm migrate` applies them"
    );
    Ok(())
}
