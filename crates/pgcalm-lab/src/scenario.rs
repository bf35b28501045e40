//! The scenario catalogue: one folder per scenario under this crate's `scenarios/`
//! (`crates/pgcalm-lab/scenarios/`), embedded into the binary (so `pgcalm lab` works
//! outside the repo).
//!
//! A scenario folder is a pgcalm migrations directory with one app per form, so the
//! seed's manual way works on it too (`pgcalm migrate --migrations-dir
//! crates/pgcalm-lab/scenarios/add_index risky 0001`, then `... risky zero`):
//!
//! ```text
//! crates/pgcalm-lab/scenarios/add_index/
//!   setup.sql                  plain SQL run before each form (idempotent)
//!   teardown.sql               plain SQL run after each form's rollback (idempotent)
//!   risky/0001_add_index.sql   the risky form: a migration file (up and down)
//!   safe/0001_add_index.sql    the safe form (transaction:false where it needs it)
//! ```
//!
//! What a scenario demonstrates, what its risky form is expected to block and the
//! session the lab holds open during it are described here, beside the embedded files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::results::Form;

/// Which requests a risky form is expected to stop (the verdict tests assert these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    /// `GET /list_large/`.
    pub reads: bool,
    /// `POST /add_large/`.
    pub writes: bool,
}

/// A session the lab holds on its own connection while a form runs, started just before
/// the migration: what makes a short lock request dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// A slow report query reading large_email (holds ACCESS SHARE while it runs).
    SlowQuery,
    /// A transaction that read large_email and stays open, idle (a forgotten psql
    /// session): ACCESS SHARE until it ends.
    OpenTransaction,
}

impl Blocker {
    /// What the lab runs on the blocking connection, for `secs` seconds.
    pub fn sql(self, secs: f64) -> Vec<String> {
        match self {
            Blocker::SlowQuery => vec![format!(
                "SELECT count(*) FROM (SELECT id FROM large_email LIMIT 1) t, pg_sleep({secs:.3})"
            )],
            Blocker::OpenTransaction => vec![
                "BEGIN".into(),
                "SELECT id FROM large_email ORDER BY id LIMIT 1".into(),
            ],
        }
    }

    /// A few words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Blocker::SlowQuery => "a slow report query reading large_email",
            Blocker::OpenTransaction => "an open transaction that has read large_email",
        }
    }
}

/// One scenario of the catalogue.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Folder name (`add_index`); also the migration name (`0001_<name>`).
    pub name: &'static str,
    /// One line.
    pub title: &'static str,
    /// What it demonstrates.
    pub demonstrates: &'static str,
    /// The hazard of the risky form.
    pub hazard: &'static str,
    /// What the risky form stops.
    pub risky_blocks: Blocks,
    /// A session the lab holds during each form, if the scenario needs one.
    pub blocker: Option<Blocker>,
    /// A query to EXPLAIN ANALYZE before and after each form (the seed's lookup).
    pub explain: Option<&'static str>,
    /// After the safe form: a query counting rows that break the scenario's promise
    /// (e.g. a copied column out of step); 0 expected.
    pub check: Option<Check>,
    /// The pool topologies the risky form runs under (the seed's scenario runs it on
    /// separate pools, on one shared pool served like the seed's app, and on one shared
    /// pool served by pgcalm serve as it runs).
    pub risky_topologies: &'static [crate::results::PoolTopology],
    /// `setup.sql`.
    pub setup: &'static str,
    /// `teardown.sql`.
    pub teardown: &'static str,
    /// `risky/0001_<name>.sql`.
    pub risky: &'static str,
    /// `safe/0001_<name>.sql`.
    pub safe: &'static str,
}

/// A post-condition of the safe form, checked by query.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// What it checks, for the report.
    pub what: &'static str,
    /// Returns one bigint: rows that break it.
    pub sql: &'static str,
}

macro_rules! scenario_file {
    ($name:literal, $file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/",
            $name,
            "/",
            $file
        ))
    };
}

macro_rules! form_file {
    ($name:literal, $form:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/",
            $name,
            "/",
            $form,
            "/0001_",
            $name,
            ".sql"
        ))
    };
}

macro_rules! files {
    ($name:literal) => {
        (
            scenario_file!($name, "setup.sql"),
            scenario_file!($name, "teardown.sql"),
            form_file!($name, "risky"),
            form_file!($name, "safe"),
        )
    };
}

/// The seed's lookup query (demo_commands.md, "Performance Testing").
pub(crate) const SEED_LOOKUP: &str =
    "SELECT * FROM large_email WHERE email = 'user1000000@example.com'";

use crate::results::PoolTopology::{Separate, Shared, SharedSeedLike};

/// Folder name of the seed's scenario (an index on `large_email.email`).
pub(crate) const SEED: &str = "add_index";

/// Every scenario, in the order `--scenario all` runs them. The first is the default.
pub fn catalogue() -> Vec<Scenario> {
    let s = |name,
             title,
             demonstrates,
             hazard,
             risky_blocks,
             (setup, teardown, risky, safe): (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )| Scenario {
        name,
        title,
        demonstrates,
        hazard,
        risky_blocks,
        blocker: None,
        explain: None,
        check: None,
        risky_topologies: &[Separate],
        setup,
        teardown,
        risky,
        safe,
    };
    let both = Blocks {
        reads: true,
        writes: true,
    };
    let writes = Blocks {
        reads: false,
        writes: true,
    };
    vec![
        Scenario {
            explain: Some(SEED_LOOKUP),
            risky_topologies: &[Separate, SharedSeedLike, Shared],
            ..s(
                "add_index",
                "Add an index on large_email.email (the seed)",
                "The seed's Step 5: plain CREATE INDEX in the migration's transaction vs CREATE INDEX CONCURRENTLY.",
                "CREATE INDEX holds SHARE on large_email for the whole build: writes wait; reads wait too only when blocked writes use up the app's connections.",
                writes,
                files!("add_index"),
            )
        },
        Scenario {
            blocker: Some(Blocker::SlowQuery),
            ..s(
                "drop_index",
                "Drop an index while a slow query reads the table",
                "DROP INDEX vs DROP INDEX CONCURRENTLY behind a running report query.",
                "DROP INDEX waits for ACCESS EXCLUSIVE behind the slow query; every read and write queues behind it.",
                both,
                files!("drop_index"),
            )
        },
        s(
            "add_unique_constraint",
            "Add a unique constraint on large_email.email",
            "ADD CONSTRAINT UNIQUE vs CREATE UNIQUE INDEX CONCURRENTLY + ADD CONSTRAINT USING INDEX.",
            "The unique index is built under ACCESS EXCLUSIVE: reads and writes wait for the build.",
            both,
            files!("add_unique_constraint"),
        ),
        s(
            "add_foreign_key",
            "Add a foreign key from large_email to a new table",
            "ADD FOREIGN KEY vs NOT VALID + VALIDATE CONSTRAINT.",
            "SHARE ROW EXCLUSIVE on both tables while every row is checked: writes wait.",
            writes,
            files!("add_foreign_key"),
        ),
        s(
            "add_check_constraint",
            "Add a CHECK constraint on large_email.email",
            "ADD CHECK vs NOT VALID + VALIDATE CONSTRAINT.",
            "ACCESS EXCLUSIVE while every row is checked: reads and writes wait.",
            both,
            files!("add_check_constraint"),
        ),
        s(
            "set_not_null",
            "Make a column NOT NULL",
            "SET NOT NULL vs CHECK (c IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL, drop the check.",
            "ACCESS EXCLUSIVE while every row is checked: reads and writes wait.",
            both,
            files!("set_not_null"),
        ),
        s(
            "add_column_volatile_default",
            "Add a column with a volatile default",
            "ADD COLUMN ... DEFAULT gen_random_uuid() vs add, SET DEFAULT, batched backfill.",
            "The table is rewritten under ACCESS EXCLUSIVE: reads and writes wait for the rewrite.",
            both,
            files!("add_column_volatile_default"),
        ),
        s(
            "change_column_type",
            "Change a column's type (integer to bigint)",
            "ALTER COLUMN TYPE vs a new column kept in step by a trigger, batched backfill, swap.",
            "The table is rewritten under ACCESS EXCLUSIVE: reads and writes wait for the rewrite.",
            both,
            files!("change_column_type"),
        ),
        Scenario {
            check: Some(Check {
                what: "rows whose full_name differs from name (the probe's inserts included)",
                sql: "SELECT count(*) FROM large_email WHERE full_name IS DISTINCT FROM name",
            }),
            ..s(
                "rename_column",
                "Rename a column the app uses (name to full_name)",
                "RENAME COLUMN vs the expand half of expand/contract (new column, sync trigger, batched backfill).",
                "The rename is instant, but the running app asks for the old name: every read and write fails until the app is redeployed.",
                both,
                files!("rename_column"),
            )
        },
        s(
            "backfill",
            "Backfill a new column",
            "UPDATE of every row inside the ALTER TABLE's transaction vs committed batches.",
            "The ADD COLUMN's ACCESS EXCLUSIVE is held until the whole UPDATE commits: reads and writes wait.",
            both,
            files!("backfill"),
        ),
        Scenario {
            blocker: Some(Blocker::OpenTransaction),
            ..s(
                "lock_queue",
                "ALTER TABLE behind a long-running transaction",
                "The same ALTER TABLE without lock_timeout vs with lock_timeout (2s) and retries.",
                "The ACCESS EXCLUSIVE request queues behind the open transaction and every read and write queues behind it.",
                both,
                files!("lock_queue"),
            )
        },
    ]
}

/// The scenario named `name`, or the list of known names as the error.
pub(crate) fn find(name: &str) -> Result<Scenario, String> {
    let all = catalogue();
    let known = all.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    all.into_iter()
        .find(|s| s.name == name || s.name.replace('_', "-") == name)
        .ok_or(known)
}

impl Scenario {
    /// The migration file text of a form.
    pub fn form_sql(&self, form: Form) -> &'static str {
        match form {
            Form::Risky => self.risky,
            Form::Safe => self.safe,
        }
    }

    /// The migration name of both forms (`0001_add_index`).
    pub fn migration_name(&self) -> String {
        format!("0001_{}", self.name)
    }

    /// Writes the scenario as a migrations directory under `root/<name>/` (one app per
    /// form) and returns that directory. With `hold`, the risky form's transaction is
    /// kept open that long after its last statement (`SELECT pg_sleep(...)` appended to
    /// a transactional up section): it emulates a bigger table, whose long statement
    /// would hold its locks that long. The safe forms are written unchanged: their
    /// blocking steps are metadata-only, as short on a big table as on a small one.
    pub fn materialize(&self, root: &Path, hold: Option<Duration>) -> std::io::Result<PathBuf> {
        let dir = root.join(self.name);
        for form in [Form::Risky, Form::Safe] {
            let app = dir.join(form.as_str());
            std::fs::create_dir_all(&app)?;
            let mut text = self.form_sql(form).to_string();
            if form == Form::Risky
                && let Some(hold) = hold.filter(|h| !h.is_zero())
            {
                text = with_hold(&text, hold);
            }
            std::fs::write(app.join(format!("{}.sql", self.migration_name())), text)?;
        }
        Ok(dir)
    }
}

/// Appends `SELECT pg_sleep(hold)` to a transactional up section (before the down
/// directive); a `transaction:false` section is left alone (it holds no transaction).
fn with_hold(text: &str, hold: Duration) -> String {
    let mut out = String::new();
    let mut in_transactional_up = false;
    let sleep = format!(
        "-- pgcalm lab --hold: keep the transaction (and its locks) open, as a bigger table would.\nSELECT pg_sleep({:.3});\n\n",
        hold.as_secs_f64()
    );
    let mut inserted = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with("-- migrate:up") {
            in_transactional_up = !trimmed.contains("transaction:false");
        } else if trimmed.starts_with("-- migrate:down") && in_transactional_up && !inserted {
            out.push_str(&sleep);
            inserted = true;
            in_transactional_up = false;
        }
        out.push_str(line);
    }
    if in_transactional_up && !inserted {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&sleep);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_folder_is_in_the_catalogue() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut on_disk: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = catalogue().iter().map(|s| s.name.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn every_scenario_folder_is_a_migrations_dir_with_a_risky_and_a_safe_app() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let work = std::env::temp_dir().join(format!("pgcalm-scenarios-{}", std::process::id()));
        for s in catalogue() {
            let materialized = s.materialize(&work, Some(Duration::from_secs(2))).unwrap();
            for dir in [root.join(s.name), materialized] {
                let set = pgcalm_migrate::MigrationSet::load(&dir)
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                assert_eq!(
                    set.apps.keys().collect::<Vec<_>>(),
                    ["risky", "safe"],
                    "{}",
                    s.name
                );
                for files in set.apps.values() {
                    assert_eq!(files.len(), 1, "{}", s.name);
                    assert_eq!(files[0].name, s.migration_name());
                    assert!(files[0].down.is_some(), "{}: a down section", s.name);
                }
            }
        }
        let _ = std::fs::remove_dir_all(work);
    }

    #[test]
    fn hold_is_appended_to_a_transactional_up_section_only() {
        let risky = "-- migrate:up\nCREATE INDEX i ON t (c);\n\n-- migrate:down\nDROP INDEX i;\n";
        let held = with_hold(risky, Duration::from_millis(2500));
        assert!(
            held.contains("CREATE INDEX i ON t (c);\n\n-- pgcalm lab --hold: keep the transaction (and its locks) open, as a bigger table would.\nSELECT pg_sleep(2.500);\n\n-- migrate:down"),
            "{held}"
        );
        let no_txn = "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (c);\n";
        assert_eq!(with_hold(no_txn, Duration::from_secs(1)), no_txn);
        let up_only = "-- migrate:up\nALTER TABLE t ADD c int;";
        assert!(
            with_hold(up_only, Duration::from_secs(1)).ends_with("SELECT pg_sleep(1.000);\n\n")
        );
    }

    #[test]
    fn names_are_found_with_dashes_or_underscores() {
        assert_eq!(find("add-index").unwrap().name, "add_index");
        assert!(find("nope").unwrap_err().contains("lock_queue"));
    }
}
