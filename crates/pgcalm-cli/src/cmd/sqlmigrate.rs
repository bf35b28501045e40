//! `pgcalm sqlmigrate APP NAME [--backwards]`: the SQL a migration sends, exactly as the
//! runner sends it: the transaction around it (or none), the timeouts set before each
//! statement, and the file line of every statement with the lock it takes (the lock
//! table), what that blocks, and its verdict (lint). Needs no database.

use pgcalm_lint::LintOptions;
use pgcalm_migrate::{Direction, MigrationSet, Policy, statement_verdicts};

use crate::cmd::migrate::with_verdict;
use crate::settings::{PolicyArgs, Settings};

/// Flags of `pgcalm sqlmigrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
pub async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let set = MigrationSet::load(settings.migrations_dir())?;
    let file = set.resolve(&args.app, &args.name)?;
    // The set was only scanned: the file shown is parsed (a syntax error stops here).
    file.check()?;
    let direction = if args.backwards {
        Direction::Down
    } else {
        Direction::Up
    };
    let policy = &settings.policy;
    let Some(section) = file.section(direction) else {
        anyhow::bail!(
            "{} has no `-- migrate:down` section, so {} cannot be unapplied\n  fix: add a `-- migrate:down` section with the SQL that reverts it",
            file.path.display(),
            file.id()
        );
    };
    if settings.json() {
        return crate::render::json(&serde_json::json!({
            "app": file.app,
            "name": file.name,
            "path": file.path,
            "direction": direction,
            "transaction": section.transaction,
            "statements": section.statements.iter()
                .zip(statement_verdicts(file, direction, 0, &LintOptions::default()))
                .map(|(s, v)| with_verdict(serde_json::json!({
                "line": s.line, "sql": s.sql, "settings": policy.settings_for(s.kind()),
            }), &v)).collect::<Vec<_>>(),
        }));
    }
    print!("{}", render(file, direction, policy));
    Ok(())
}

/// The SQL text.
pub fn render(
    file: &pgcalm_migrate::MigrationFile,
    direction: Direction,
    policy: &Policy,
) -> String {
    let section = file.section(direction).expect("checked by the caller");
    let mut out = format!(
        "-- {} ({direction}) from {}:{}\n",
        file.id(),
        file.path.display(),
        section.line
    );
    if section.transaction {
        out.push_str("BEGIN;\n");
    } else {
        out.push_str(
            "-- transaction:false: each statement commits on its own (with pgcalm's journal \
             entry, in a transaction of its own where PostgreSQL allows one)\n",
        );
    }
    let mut current: Vec<pgcalm_migrate::Setting> = Vec::new();
    let verdicts = statement_verdicts(file, direction, 0, &LintOptions::default());
    for (s, v) in section.statements.iter().zip(&verdicts) {
        let settings = policy.settings_for(s.kind());
        // transaction:false: a statement PostgreSQL allows in a transaction runs in one of
        // its own, which also records it in pgcalm's journal (done and journaled commit
        // together); only the others (CONCURRENTLY, VACUUM...) run alone.
        let own_transaction =
            !section.transaction && !s.kind().needs_no_transaction && !s.kind().commits_itself;
        if own_transaction {
            out.push_str("BEGIN;\n");
            for x in &settings {
                out.push_str(&format!("SET LOCAL {} = {};\n", x.name, x.value.sql()));
            }
        } else if settings != current {
            for x in &settings {
                let local = if section.transaction { "LOCAL " } else { "" };
                out.push_str(&format!("SET {local}{} = {};\n", x.name, x.value.sql()));
            }
            current = settings;
        }
        out.push_str(&format!(
            "-- line {}: {}; {}\n{};\n",
            s.line,
            v.lock_summary(),
            v.verdict(),
            s.sql
        ));
        if own_transaction {
            out.push_str("COMMIT;\n");
        }
    }
    if section.transaction {
        out.push_str("COMMIT;\n");
    }
    out
}
