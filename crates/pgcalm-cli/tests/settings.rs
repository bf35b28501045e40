//! pgcalm.toml through the real binary: read once, before any command runs, so a typo
//! (`[lnt]`, an unknown key, a bad duration) is an error naming file:line:column and
//! what is valid, whatever the command; and the resolved policy (flags > environment >
//! pgcalm.toml > defaults) reaches every command that runs migration statements, trace
//! included.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::path::Path;
use std::process::Output;

use pgcalm_testkit::TestDb;

/// A directory with the seed's migrations, `x.sql` (clean plain SQL) and `toml` as
/// pgcalm.toml.
fn project(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("migrations/demoapp");
    std::fs::create_dir_all(&app).unwrap();
    for name in ["0001_initial.sql", "0002_add_email_index_concurrently.sql"] {
        std::fs::copy(
            common::repo_migrations().join("demoapp").join(name),
            app.join(name),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("x.sql"), "SELECT 1;\n").unwrap();
    std::fs::write(dir.path().join("pgcalm.toml"), toml).unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    common::pgcalm_in(dir)
        .env_remove("PGCALM_LOCK_TIMEOUT")
        .env_remove("PGCALM_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

/// Runs a command that reads no section itself and expects the configuration error:
/// exit 2 (a usage error, like a bad flag), nothing on stdout.
fn config_error(toml: &str) -> String {
    let dir = project(toml);
    let out = run(dir.path(), &["lint", "x.sql"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        common::stdout(&out),
        common::stderr(&out)
    );
    assert_eq!(common::stdout(&out), "");
    common::stderr(&out)
}

#[test]
fn a_misspelt_section_is_an_error_naming_the_line_and_the_sections() {
    let err =
        config_error("# pgcalm configuration\n\n[lnt]\ndisable = [\"missing-lock-timeout\"]\n");
    insta::assert_snapshot!(err, @"
    error: pgcalm.toml:3:2: unknown section [lnt]
      the sections are: [database], [migrations], [migrate], [lint], [up]
      fix: did you mean [lint]?
    ");
}

#[test]
fn an_unknown_key_in_migrate_lists_the_valid_keys() {
    let err = config_error("[migrate]\nlock_timeout = \"2s\"\nlock_timout = \"5s\"\n");
    insta::assert_snapshot!(err, @"
    error: pgcalm.toml:3:1: unknown key `lock_timout` in [migrate]
      the keys of [migrate] are: lock_timeout, concurrent_lock_timeout, statement_timeout, max_retries, retry_initial, retry_max, wait, client_connection_check_interval, allow_risky, cancel_idle_blockers, max_replica_lag, direct_url
      fix: did you mean `lock_timeout`?
    ");
}

#[test]
fn a_bad_duration_is_an_error_naming_the_line() {
    let err = config_error("[migrate]\n\nretry_max = \"30 parsecs\"\n");
    insta::assert_snapshot!(err, @"error: pgcalm.toml:3:13: [migrate] retry_max: unknown unit `parsecs` in `30 parsecs` (use ms, s, min or h)");
}

#[test]
fn a_start_point_that_is_no_pair_is_an_error_naming_the_line() {
    let err = config_error("[up]\nmigrate_to = [\"demoapp:0001\", \"demoapp\"]\n");
    insta::assert_snapshot!(err, @"
    error: pgcalm.toml:2:31: [up] migrate_to: `demoapp` is not an `app:migration` pair
      fix: write it like `demoapp:0001`
    ");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let dir = project("");
    let out = common::pgcalm_in(dir.path())
        .env("PGCALM_LOCK_TIMEOUT", "fast")
        .args(["lint", "x.sql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(common::stderr(&out), @"error: PGCALM_LOCK_TIMEOUT: `fast` is not a duration (examples: 2s, 500ms, 5min)");
}

#[test]
fn flags_beat_the_environment_which_beats_pgcalm_toml() {
    let dir = project("[migrate]\nlock_timeout = \"7s\"\n");
    let sql = |extra: &[&str], env: Option<&str>| {
        let mut cmd = common::pgcalm_in(dir.path());
        cmd.env_remove("PGCALM_LOCK_TIMEOUT");
        if let Some(v) = env {
            cmd.env("PGCALM_LOCK_TIMEOUT", v);
        }
        common::ok(cmd.args(["sqlmigrate", "demoapp", "0001"]).args(extra))
    };
    assert!(sql(&[], None).contains("SET LOCAL lock_timeout = '7000ms';"));
    assert!(sql(&[], Some("9s")).contains("SET LOCAL lock_timeout = '9000ms';"));
    assert!(
        sql(&["--lock-timeout", "11s"], Some("9s")).contains("SET LOCAL lock_timeout = '11000ms';")
    );
    // JSON keeps the SQL literal the runner sends.
    let json: serde_json::Value = serde_json::from_str(&sql(&["--format", "json"], None)).unwrap();
    assert_eq!(
        json["statements"][0]["settings"],
        serde_json::json!([
            {"name": "lock_timeout", "value": "'7000ms'"},
            {"name": "statement_timeout", "value": "DEFAULT"},
        ])
    );
}

/// The `lock_timeout` the traced statement of the seed's 0002 ran with.
async fn traced_lock_timeout(dir: &Path, env: Option<&str>) -> serde_json::Value {
    let db = TestDb::new().await;
    let mut cmd = common::pgcalm_in(dir);
    cmd.env_remove("PGCALM_LOCK_TIMEOUT");
    if let Some(v) = env {
        cmd.env("PGCALM_LOCK_TIMEOUT", v);
    }
    let out = cmd
        .env("DATABASE_URL", db.url())
        .args([
            "--format",
            "json",
            "trace",
            "migrations/demoapp/0002_add_email_index_concurrently.sql",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let statement = &json["traces"][0]["statements"][0];
    assert_eq!(statement["line"], 4, "{statement}");
    statement["lock_timeout"].clone()
}

#[tokio::test]
async fn pgcalm_toml_lock_timeout_reaches_trace() {
    let dir = project("[migrate]\nlock_timeout = \"7s\"\n");
    assert_eq!(traced_lock_timeout(dir.path(), None).await, "7s");
    // trace has no policy flags; their environment variables still count.
    assert_eq!(traced_lock_timeout(dir.path(), Some("9s")).await, "9s");
}
