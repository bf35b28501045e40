//! `pgcalm lab` through the real binary (DATABASE_URL = a testkit server, the lab in
//! the test's own database), and the seed's manual way: a scenario folder is a
//! migrations directory that `pgcalm migrate` applies and rolls back by hand.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok, pgcalm, stdout};
use pgcalm_testkit::TestDb;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pgcalm-lab/scenarios")
}

/// The cells after the first of the printed table row that starts with `aspect`.
fn table_row(stdout: &str, aspect: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(aspect))
        .unwrap_or_else(|| panic!("no {aspect} row in\n{stdout}"));
    line.split('|')
        .skip(1)
        .map(|c| c.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lab_prints_the_measured_step5_table_and_writes_the_report() {
    let db = TestDb::new().await;
    let out = tempfile::tempdir().unwrap();
    let stdout = ok(pgcalm()
        .env("DATABASE_URL", db.url())
        .env_remove("COLUMNS")
        .args(["lab", "--rows", "3000", "--hold", "3.5", "--baseline", "1"])
        .args(["--lab-database", db.name()])
        .arg("--out")
        .arg(out.path()));
    assert!(stdout.contains("Step 5, measured"), "{stdout}");
    let row = |aspect: &str| table_row(&stdout, aspect);
    // Columns: risky on separate pools, risky on one shared pool served like the seed's
    // app, risky on one shared pool served by pgcalm serve, safe. (Piped with no COLUMNS:
    // the terminal's short table, whole.)
    assert_eq!(
        row("Aspect")[..],
        [
            "Risky, separate pools",
            "Risky, seed-like pool",
            "Risky, shared pool",
            "Safe, shared pool"
        ]
    );
    let writes = row("Blocks writes?");
    for risky in &writes[..3] {
        assert!(risky.starts_with("Yes, blocked"), "{writes:?}");
    }
    assert_eq!(writes[3], "No");
    assert_eq!(
        row("Blocks reads?")[0],
        "No",
        "a SHARE lock lets reads through"
    );
    assert_eq!(row("Production safe?")[3], "Yes");
    assert!(
        stdout.contains("served like the seed's Django app on sync workers"),
        "the pools paragraph: {stdout}"
    );
    assert!(
        stdout.contains("Index Scan using large_email_email_idx"),
        "{stdout}"
    );
    for file in ["report.md", "report.html", "results.json"] {
        assert!(out.path().join(file).is_file(), "{file} written");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["run"]["rows"], 3000);
    assert_eq!(json["scenarios"][0]["forms"].as_array().unwrap().len(), 4);
    assert_eq!(
        json["scenarios"][0]["forms"][0]["verdict"]["writes"]["level"],
        "blocked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_scenario_is_refused_with_the_catalogue() {
    let db = TestDb::new().await;
    let err = fails(pgcalm().env("DATABASE_URL", db.url()).args([
        "lab",
        "--scenario",
        "add_idx",
        "--lab-database",
        db.name(),
    ]));
    assert!(err.contains("unknown scenario `add_idx`"), "{err}");
    assert!(
        err.contains("add_index") && err.contains("lock_queue"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_folder_is_applied_and_rolled_back_by_hand() {
    let db = TestDb::new().await;
    let repo_migrations = common::repo_migrations();
    let migrate = |dir: &Path, args: &[&str]| {
        let mut cmd = pgcalm();
        cmd.env("DATABASE_URL", db.url())
            .arg("--migrations-dir")
            .arg(dir)
            .args(args);
        cmd
    };
    ok(&mut migrate(
        &repo_migrations,
        &["migrate", "demoapp", "0001"],
    ));
    let add_index = scenarios_dir().join("add_index");
    for form in ["risky", "safe"] {
        let mut apply = migrate(&add_index, &["migrate", form, "0001"]);
        if form == "risky" {
            apply.arg("--allow-risky");
        }
        let out = apply.output().unwrap();
        assert!(
            out.status.success(),
            "{form}: {}{}",
            stdout(&out),
            common::stderr(&out)
        );
        assert_eq!(
            db.query_i64(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'large_email_email_idx'"
            )
            .await,
            1,
            "{form} applied"
        );
        let shown = ok(&mut migrate(&add_index, &["showmigrations", form]));
        assert!(shown.contains("[X] 0001_add_index"), "{shown}");
        let mut back = migrate(&add_index, &["migrate", form, "zero"]);
        if form == "risky" {
            back.arg("--allow-risky");
        }
        ok(&mut back);
        assert_eq!(
            db.query_i64(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'large_email_email_idx'"
            )
            .await,
            0,
            "{form} rolled back"
        );
    }
}

/// The seed walkthrough's Step 5 ("demonstrate the difference") as one command right
/// after its Step 3: in the app's own database, where demoapp 0002 built the index the
/// risky form builds too. The risky plain CREATE INDEX stops writes, the safe one does
/// not; afterwards the database is as Step 3 left it.
#[tokio::test(flavor = "multi_thread")]
async fn step5_runs_right_after_step3_in_the_apps_database() {
    let db = TestDb::new().await;
    let out = tempfile::tempdir().unwrap();
    let walkthrough = |args: &[&str]| {
        let mut cmd = pgcalm();
        cmd.env("DATABASE_URL", db.url())
            .env_remove("COLUMNS")
            .arg("--migrations-dir")
            .arg(common::repo_migrations())
            .args(args);
        cmd
    };
    // Steps 1-3: the tables, a seed, the CONCURRENTLY index.
    ok(&mut walkthrough(&["migrate", "demoapp", "0001"]));
    ok(&mut walkthrough(&["seed", "--large-count", "3000"]));
    ok(&mut walkthrough(&["migrate", "demoapp", "0002"]));
    let rows_before = db.query_i64("SELECT count(*) FROM large_email").await;

    // Step 5. --hold keeps the small table's risky build blocking past the probe's 3 s.
    let stdout = ok(
        walkthrough(&["lab", "--app-database", "--hold", "3.5", "--baseline", "1"])
            .arg("--out")
            .arg(out.path()),
    );
    let row = |aspect: &str| table_row(&stdout, aspect);
    assert!(stdout.contains("Step 5, measured"), "{stdout}");
    assert!(
        stdout.contains("(3,000 rows"),
        "the app's rows, as seeded: {stdout}"
    );
    let writes = row("Blocks writes?");
    for risky in &writes[..3] {
        assert!(risky.starts_with("Yes, blocked"), "{writes:?}\n{stdout}");
    }
    assert_eq!(writes[3], "No", "{stdout}");
    let answered = row("Writes answered");
    let count = |cell: &str| -> (u64, u64) {
        let (ok, of) = cell.split_once(" of ").unwrap();
        (ok.parse().unwrap(), of.parse().unwrap())
    };
    for risky in &answered[..3] {
        let (ok, of) = count(risky);
        assert!(ok < of, "the risky build stopped writes: {answered:?}");
    }
    let (ok_safe, of_safe) = count(&answered[3]);
    assert_eq!(
        ok_safe, of_safe,
        "the safe build stopped none: {answered:?}"
    );

    // Step 3's state is back: 0002 applied, its index valid, the probe's rows gone.
    let shown = ok(&mut walkthrough(&["showmigrations", "demoapp"]));
    assert!(
        shown.contains("[X] 0002_add_email_index_concurrently"),
        "{shown}"
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_index WHERE indexrelid = 'large_email_email_idx'::regclass AND indisvalid"
        )
        .await,
        1
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM large_email").await,
        rows_before
    );
}
