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

#[tokio::test(flavor = "multi_thread")]
async fn lab_prints_the_measured_step5_table_and_writes_the_report() {
    let db = TestDb::new().await;
    let out = tempfile::tempdir().unwrap();
    let stdout = ok(pgcalm()
        .env("DATABASE_URL", db.url())
        .args(["lab", "--rows", "3000", "--hold", "3.5", "--baseline", "1"])
        .args(["--lab-database", db.name()])
        .arg("--out")
        .arg(out.path()));
    assert!(stdout.contains("Step 5, measured"), "{stdout}");
    let row = |aspect: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(aspect))
            .unwrap_or_else(|| panic!("no {aspect} row in\n{stdout}"));
        line.split('|')
            .skip(1)
            .map(|c| c.trim().to_string())
            .collect()
    };
    // Columns: risky on separate pools, risky on one shared pool served like the seed's
    // app, risky on one shared pool served by pgcalm serve, safe.
    assert_eq!(
        row("Aspect")[..],
        [
            "Risky, separate pools",
            "Risky, shared pool (seed-like app)",
            "Risky, shared pool",
            "Safe, shared pool"
        ]
    );
    let writes = row("Blocks Writes?");
    for risky in &writes[..3] {
        assert!(risky.starts_with("✅ Yes, blocked"), "{writes:?}");
    }
    assert_eq!(writes[3], "❌ No");
    assert_eq!(
        row("Blocks Reads?")[0],
        "❌ No",
        "a SHARE lock lets reads through"
    );
    assert_eq!(row("Production Safe?")[3], "✅ Yes");
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
