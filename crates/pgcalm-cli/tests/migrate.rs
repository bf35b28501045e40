//! The migration commands through the real `pgcalm` binary (DATABASE_URL = a testkit
//! database): the seed's Steps 1, 3 and 6 word for word, a real `kill -9` of the runner
//! in the middle of a no-transaction migration and the resume, the runner lock, plans,
//! sqlmigrate, JSON, and malformed files.

use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use pgcalm_testkit::TestDb;

/// A working directory with the repo's migrations and pgcalm.toml (the seed setup).
fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::create_dir_all(dir.path().join("migrations/demoapp")).unwrap();
    for entry in std::fs::read_dir(repo.join("migrations/demoapp")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(
            &p,
            dir.path()
                .join("migrations/demoapp")
                .join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    std::fs::copy(repo.join("pgcalm.toml"), dir.path().join("pgcalm.toml")).unwrap();
    dir
}

/// A working directory with one app, `app`, holding these files.
fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("migrations/app")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("migrations/app").join(name), sql).unwrap();
    }
    dir
}

fn pgcalm(db: &TestDb, dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("pgcalm")
        .unwrap()
        .current_dir(dir)
        .env("DATABASE_URL", db.url())
        .env_remove("PGCALM_LOCK_TIMEOUT")
        .args(args)
        .output()
        .unwrap()
}

/// Runs and expects success; returns stdout.
fn ok(db: &TestDb, dir: &Path, args: &[&str]) -> String {
    let out = pgcalm(db, dir, args);
    assert!(
        out.status.success(),
        "pgcalm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and expects failure; returns stderr.
fn fails(db: &TestDb, dir: &Path, args: &[&str]) -> String {
    let out = pgcalm(db, dir, args);
    assert!(
        !out.status.success(),
        "pgcalm {args:?} should fail:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Timings vary; everything else must not.
fn stable(text: &str) -> String {
    let re = |s: &str| s.to_string();
    let mut out = String::new();
    for line in text.lines() {
        let mut l = re(line);
        if let Some(i) = l.find(" OK (") {
            l.truncate(i);
            l.push_str(" OK (<time>)");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn seed_steps_1_3_and_6_word_for_word() {
    let db = TestDb::new().await;
    let dir = seed_dir();
    let up = ok(&db, dir.path(), &["up"]);
    assert!(
        stable(&up).contains(
            "Operations to perform:\n  Target specific migration: 0001_initial, from demoapp\nRunning migrations:\n  Applying demoapp.0001_initial... OK (<time>)\n"
        ),
        "{up}"
    );
    db.execute(
            "INSERT INTO small_email (name, email) SELECT 'User ' || i, 'user' || i || '@example.com' FROM generate_series(1, 10) i;
             INSERT INTO large_email (name, email) SELECT 'User ' || i, 'user' || i || '@example.com' FROM generate_series(1, 20000) i;",
        ).await;

    // Step 1.
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations", "demoapp"]),
        "demoapp\n [X] 0001_initial\n [ ] 0002_add_email_index_concurrently\n"
    );
    // Step 2.
    assert_eq!(
        stable(&ok(&db, dir.path(), &["migrate", "demoapp", "0002"])),
        "Operations to perform:\n  Target specific migration: 0002_add_email_index_concurrently, from demoapp\n\
         Running migrations:\n  Applying demoapp.0002_add_email_index_concurrently... OK (<time>)\n"
    );
    // Step 3.
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations", "demoapp"]),
        "demoapp\n [X] 0001_initial\n [X] 0002_add_email_index_concurrently\n"
    );
    let inspect = ok(&db, dir.path(), &["inspect", "large_email"]);
    assert!(
        inspect.contains("\"large_email_email_idx\" btree (email)"),
        "{inspect}"
    );
    // Step 6: back, then forward again.
    assert_eq!(
        stable(&ok(&db, dir.path(), &["migrate", "demoapp", "0001"])),
        "Operations to perform:\n  Target specific migration: 0001_initial, from demoapp\n\
         Running migrations:\n  Unapplying demoapp.0002_add_email_index_concurrently... OK (<time>)\n"
    );
    let inspect = ok(&db, dir.path(), &["inspect", "large_email"]);
    assert!(!inspect.contains("large_email_email_idx"), "{inspect}");
    assert_eq!(
        stable(&ok(&db, dir.path(), &["migrate", "demoapp", "0002"])),
        "Operations to perform:\n  Target specific migration: 0002_add_email_index_concurrently, from demoapp\n\
         Running migrations:\n  Applying demoapp.0002_add_email_index_concurrently... OK (<time>)\n"
    );
    // Nothing left to do.
    assert_eq!(
        ok(&db, dir.path(), &["migrate"]),
        "Operations to perform:\n  Apply all migrations: demoapp\nRunning migrations:\n  No migrations to apply.\n"
    );
}

#[tokio::test]
async fn kill_9_mid_no_transaction_migration_then_resume() {
    let db = TestDb::new().await;
    let dir = app_dir(&[(
        "0001_resume.sql",
        "-- migrate:up transaction:false\n\
         CREATE TABLE resume_log (step int);\n\
         INSERT INTO resume_log VALUES (2);\n\
         SELECT pg_sleep(1);\n\
         INSERT INTO resume_log VALUES (4);\n",
    )]);
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("pgcalm"))
        .current_dir(dir.path())
        .env("DATABASE_URL", db.url())
        .arg("migrate")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the runner never reached statement 3"
        );
        let exists: bool = c
            .query_one(
                "SELECT to_regclass('pgcalm.migration_statements') IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let done: Option<i64> = if exists {
            Some(
                c.query_one("SELECT count(*) FROM pgcalm.migration_statements", &[])
                    .await
                    .unwrap()
                    .get(0),
            )
        } else {
            None
        };
        if done == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The server finishes the orphaned statement and then drops the session.
    loop {
        assert!(
            Instant::now() < deadline,
            "the runner's backend never went away"
        );
        let left: i64 = c
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgcalm migrate%'", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [-] 0001_resume  (partially applied: 2 of 4 statements done; the runner stopped before finishing; \
         `pgcalm migrate` resumes at statement 3)\n[-] partially applied or running, [!] last run failed\n"
    );
    let rerun = ok(&db, dir.path(), &["migrate"]);
    assert_eq!(
        stable(&rerun),
        "Operations to perform:\n  Apply all migrations: app\nRunning migrations:\n\
         \x20 Resuming app.0001_resume at statement 3 of 4: statements 1-2 were completed by an interrupted run\n\
         \x20 Applying app.0001_resume... OK (<time>)\n"
    );
    let steps: Vec<i32> = c
        .query("SELECT step FROM resume_log ORDER BY step", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(steps, [2, 4], "completed statements must not run twice");
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations", "app"]),
        "app\n [X] 0001_resume\n"
    );
}

#[tokio::test]
async fn second_runner_gives_up_after_wait_naming_the_first() {
    let db = TestDb::new().await;
    let dir = app_dir(&[("0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int);\n")]);
    let (_holder, pid) = db
        .session(&format!(
            "SELECT pg_advisory_lock({})",
            pgcalm_migrate::RUNNER_LOCK_KEY
        ))
        .await;
    let err = fails(&db, dir.path(), &["migrate", "--wait", "300ms"]);
    assert!(
        err.contains(&format!(
            "error: another pgcalm migrate holds the migration lock (pid {pid}"
        )),
        "{err}"
    );
    assert!(err.contains("gave up after 0.3s"), "{err}");
}

#[tokio::test]
async fn plan_sqlmigrate_and_json() {
    let db = TestDb::new().await;
    let dir = seed_dir();
    ok(&db, dir.path(), &["up"]);
    assert_eq!(
        ok(&db, dir.path(), &["migrate", "--plan"]),
        "Planned operations:\n\
         demoapp.0002_add_email_index_concurrently (apply, transaction:false, statement by statement)\n\
         \x20   migrations/demoapp/0002_add_email_index_concurrently.sql:4  CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email)  [lock_timeout 2s, statement_timeout 0]\n\
         \x20     lock: SHARE UPDATE EXCLUSIVE on large_email (blocks no reads or writes); safe\n"
    );
    // --plan runs nothing.
    assert!(ok(&db, dir.path(), &["showmigrations"]).contains("[ ] 0002"));
    let plan: serde_json::Value = serde_json::from_str(&ok(
        &db,
        dir.path(),
        &["--format", "json", "migrate", "demoapp", "zero", "--plan"],
    ))
    .unwrap();
    assert_eq!(plan["operation"]["operation"], "unapply_all");
    assert_eq!(plan["steps"][0]["name"], "0001_initial");
    assert_eq!(plan["steps"][0]["direction"], "down");
    assert_eq!(
        plan["steps"][0]["statements"][0]["sql"],
        "DROP TABLE large_email"
    );
    assert_eq!(plan["steps"][0]["statements"][0]["line"], 16);
    assert_eq!(
        plan["steps"][0]["statements"][0]["locks"][0]["mode"],
        "ACCESS EXCLUSIVE"
    );

    // --format json on a real run: one event per line.
    let events: Vec<serde_json::Value> = ok(
        &db,
        dir.path(),
        &["--format", "json", "migrate", "demoapp", "0002"],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(events[0]["event"], "planned");
    assert_eq!(
        events[0]["steps"][0]["name"],
        "0002_add_email_index_concurrently"
    );
    assert_eq!(events[1]["event"], "migration_started");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "migration_finished");
    assert_eq!(last["direction"], "up");
    ok(&db, dir.path(), &["migrate", "demoapp", "0001"]);

    let status: serde_json::Value = serde_json::from_str(&ok(
        &db,
        dir.path(),
        &["--format", "json", "showmigrations", "demoapp"],
    ))
    .unwrap();
    let migrations = &status["apps"][0]["migrations"];
    assert_eq!(migrations[0]["state"], "applied");
    assert_eq!(migrations[1]["state"], "not_applied");

    assert_eq!(
        ok(
            &db,
            dir.path(),
            &["sqlmigrate", "demoapp", "0002", "--lock-timeout", "5s"]
        ),
        "-- demoapp.0002_add_email_index_concurrently (up) from migrations/demoapp/0002_add_email_index_concurrently.sql:3\n\
         -- transaction:false: each statement runs and commits on its own\n\
         SET lock_timeout = '5000ms';\n\
         SET statement_timeout = 0;\n\
         -- line 4: SHARE UPDATE EXCLUSIVE on large_email (blocks no reads or writes); safe\n\
         CREATE INDEX CONCURRENTLY large_email_email_idx ON large_email (email);\n"
    );
    assert_eq!(
        ok(
            &db,
            dir.path(),
            &["sqlmigrate", "demoapp", "0001", "--backwards"]
        ),
        "-- demoapp.0001_initial (down) from migrations/demoapp/0001_initial.sql:15\n\
         BEGIN;\n\
         SET LOCAL lock_timeout = '2000ms';\n\
         SET LOCAL statement_timeout = DEFAULT;\n\
         -- line 16: ACCESS EXCLUSIVE on large_email (blocks reads and writes); safe\n\
         DROP TABLE large_email;\n\
         -- line 17: ACCESS EXCLUSIVE on small_email (blocks reads and writes); safe\n\
         DROP TABLE small_email;\nCOMMIT;\n"
    );
}

#[tokio::test]
async fn malformed_and_changed_files_are_errors_with_path_and_line() {
    let db = TestDb::new().await;
    let dir = app_dir(&[("0001_bad.sql", "-- migrate:up\nCREATE TABEL t (id int);\n")]);
    let err = fails(&db, dir.path(), &["migrate"]);
    assert_eq!(
        err,
        "error: migrations/app/0001_bad.sql:2:8: SQL syntax error: syntax error at or near \"TABEL\"\n  \
         CREATE TABEL t (id int);\n         ^\n  \
         fix: correct the statement; pgcalm checks every file with PostgreSQL's own parser before running anything\n"
    );
    std::fs::write(
        dir.path().join("migrations/app/0001_bad.sql"),
        "-- migrate:up\nCREATE TABLE t (id int);\n",
    )
    .unwrap();
    ok(&db, dir.path(), &["migrate"]);
    std::fs::write(
        dir.path().join("migrations/app/0001_bad.sql"),
        "-- migrate:up\nCREATE TABLE t (id bigint);\n",
    )
    .unwrap();
    let err = fails(&db, dir.path(), &["migrate"]);
    assert!(
        err.starts_with("error: migrations/app/0001_bad.sql was changed after it was applied"),
        "{err}"
    );
    let shown = ok(&db, dir.path(), &["showmigrations"]);
    assert_eq!(
        shown,
        "app\n [X] 0001_bad  (file changed since it was applied)\n"
    );
}

#[tokio::test]
async fn failed_statement_shows_file_line_and_the_state_left() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE u (v int); INSERT INTO u VALUES (1), (1);")
        .await;
    let dir = app_dir(&[(
        "0001_unique.sql",
        "-- migrate:up transaction:false\nCREATE UNIQUE INDEX CONCURRENTLY u_v_key ON u (v);\n",
    )]);
    let out = pgcalm(&db, dir.path(), &["migrate"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.ends_with("  Applying app.0001_unique... FAILED\n"),
        "{stdout}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(
            "error: migrations/app/0001_unique.sql:2: statement 1 of 1 of app.0001_unique failed: ERROR: could not create unique index \"u_v_key\"\n  DETAIL: Key (v)=(1) is duplicated.\n  statement: CREATE UNIQUE INDEX CONCURRENTLY u_v_key ON u (v)\n  SQLSTATE 23505\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "INVALID index u_v_key on u; the next run drops it concurrently and rebuilds it"
        ),
        "{err}"
    );
    let shown = ok(&db, dir.path(), &["showmigrations"]);
    assert!(
        shown.starts_with(
            "app\n [!] 0001_unique  (apply failed at statement 1 of 1 (line 2): ERROR: could not create unique index \"u_v_key\"; 0 of 1 statements done; rerun resumes at statement 1)\n"
        ),
        "{shown}"
    );
    db.execute("DELETE FROM u WHERE ctid = (SELECT max(ctid) FROM u)")
        .await;
    let rerun = ok(&db, dir.path(), &["migrate"]);
    assert!(
        rerun.contains("    found INVALID index u_v_key on u (left by the failed build of the last run: ERROR: could not create unique index \"u_v_key\"); statement 1 (migrations/app/0001_unique.sql:2) rebuilds it: dropping it concurrently first\n"),
        "{rerun}"
    );
    assert!(
        stable(&rerun).ends_with("  Applying app.0001_unique... OK (<time>)\n"),
        "{rerun}"
    );
}

#[tokio::test]
async fn notices_are_printed_with_statement_file_and_line() {
    let db = TestDb::new().await;
    let dir = app_dir(&[(
        "0001_notice.sql",
        "-- migrate:up\nSELECT 1;\nDROP TABLE IF EXISTS nope; -- pgcalm:ignore dropping-table it never existed: this raises the NOTICE\n",
    )]);
    assert_eq!(
        stable(&ok(&db, dir.path(), &["migrate"])),
        "Operations to perform:\n  Apply all migrations: app\nRunning migrations:\n  Applying app.0001_notice...\n\
         \x20   NOTICE from statement 2 (migrations/app/0001_notice.sql:3: DROP TABLE IF EXISTS nope): table \"nope\" does not exist, skipping\n\
         \x20 Applying app.0001_notice... OK (<time>)\n"
    );
}

#[tokio::test]
async fn a_risky_migration_is_refused_with_the_findings_unless_allowed() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE big (id int, email text)").await;
    let dir = app_dir(&[(
        "0001_index.sql",
        "-- migrate:up\nCREATE INDEX big_email ON big (email);\n",
    )]);
    let plan = ok(&db, dir.path(), &["migrate", "--plan"]);
    assert!(
        plan.contains(
            "      lock: SHARE on big (blocks writes); risky: require-concurrent-index-creation\n"
        ),
        "{plan}"
    );
    let err = fails(&db, dir.path(), &["migrate"]);
    assert!(
        err.starts_with("error: refusing to run app.0001_index: lint found 1 risky statement (nothing ran)\n  migrations/app/0001_index.sql:2: error [require-concurrent-index-creation]: "),
        "{err}"
    );
    assert!(
        err.contains("CREATE INDEX CONCURRENTLY big_email ON big (email)"),
        "{err}"
    );
    assert!(ok(&db, dir.path(), &["showmigrations"]).contains("[ ] 0001_index"));
    ok(&db, dir.path(), &["migrate", "--allow-risky"]);
    assert!(ok(&db, dir.path(), &["showmigrations"]).contains("[X] 0001_index"));
    // The same from pgcalm.toml.
    std::fs::write(
        dir.path().join("migrations/app/0002_index.sql"),
        "-- migrate:up\nCREATE INDEX big_id ON big (id);\n",
    )
    .unwrap();
    fails(&db, dir.path(), &["migrate"]);
    std::fs::write(
        dir.path().join("pgcalm.toml"),
        "[migrate]\nallow_risky = true\n",
    )
    .unwrap();
    ok(&db, dir.path(), &["migrate"]);
    assert!(ok(&db, dir.path(), &["showmigrations"]).contains("[X] 0002_index"));
}
