//! `pgcalm showmigrations [APP]`: the seed's `manage.py showmigrations demoapp`, plus
//! partially applied (`[-]`) and failed (`[!]`) migrations with the reason.

use pgcalm_migrate::{MigrationStatus, Runner};
use serde::Serialize;

use crate::settings::Settings;

/// Flags of `pgcalm showmigrations`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only this app.
    pub app: Option<String>,
}

#[derive(Serialize)]
struct AppJson<'a> {
    app: &'a str,
    migrations: Vec<&'a MigrationStatus>,
}

/// Prints each app and its migrations with `[X]` / `[ ]` / `[-]` / `[!]`.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let target = settings.target().await?;
    let runner = Runner::new(target, settings.migrations_dir());
    let statuses = runner.status(args.app.as_deref()).await?;
    let set = runner.load()?;
    let apps: Vec<&str> = match &args.app {
        Some(a) => vec![a.as_str()],
        None => set.apps.keys().map(String::as_str).collect(),
    };
    if settings.json() {
        let doc: Vec<AppJson> = apps
            .iter()
            .map(|app| AppJson {
                app,
                migrations: statuses.iter().filter(|s| s.app == *app).collect(),
            })
            .collect();
        return crate::output::print_json(&serde_json::json!({ "apps": doc }));
    }
    print!("{}", render(&apps, &statuses));
    Ok(())
}

/// The text form, Django's layout.
pub(crate) fn render(apps: &[&str], statuses: &[MigrationStatus]) -> String {
    let mut out = String::new();
    let mut legend = false;
    for app in apps {
        out.push_str(app);
        out.push('\n');
        let mine: Vec<&MigrationStatus> = statuses.iter().filter(|s| s.app == *app).collect();
        if mine.is_empty() {
            out.push_str(" (no migrations)\n");
        }
        for s in mine {
            out.push_str(&format!(" {} {}", s.marker(), s.name));
            if let Some(why) = s.explanation() {
                out.push_str(&format!("  ({why})"));
            }
            out.push('\n');
            legend |= matches!(s.marker(), "[-]" | "[!]");
        }
    }
    if legend {
        out.push_str("[-] partially applied or running, [!] last run failed\n");
    }
    out
}
