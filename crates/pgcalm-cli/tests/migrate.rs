//! The migration commands through the real `pgcalm` binary (DATABASE_URL = a testkit
//! database): the seed's Steps 1, 3 and 6 word for word, a real `kill -9` of the runner
//! in the middle of a no-transaction migration and the resume, the runner lock, plans,
//! sqlmigrate, JSON, and malformed files.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use assert_cmd::Command;
use common::app_dir;
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
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("pgcalm"))
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
    kill_9(child);
    // The server drops the session (at the latest when the orphaned statement ends).
    until(
        &c,
        NO_RUNNER_SESSION,
        Duration::from_secs(20),
        "the runner's backend went away",
    )
    .await;
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
         -- transaction:false: each statement commits on its own (with pgcalm's journal entry, in a transaction of its own where PostgreSQL allows one)\n\
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
async fn sqlmigrate_shows_each_statement_of_a_no_transaction_section_in_its_own_transaction() {
    let db = TestDb::new().await;
    let dir = app_dir(&[(
        "0001_mixed.sql",
        "-- migrate:up transaction:false\n\
         -- pgcalm:ignore unbatched-backfill small\n\
         UPDATE t SET c = c + 1;\n\
         CREATE INDEX CONCURRENTLY t_c ON t (c);\n",
    )]);
    assert_eq!(
        ok(&db, dir.path(), &["sqlmigrate", "app", "0001"]),
        "-- app.0001_mixed (up) from migrations/app/0001_mixed.sql:1\n\
         -- transaction:false: each statement commits on its own (with pgcalm's journal entry, in a transaction of its own where PostgreSQL allows one)\n\
         BEGIN;\n\
         SET LOCAL lock_timeout = '2000ms';\n\
         SET LOCAL statement_timeout = DEFAULT;\n\
         -- line 3: ROW EXCLUSIVE on t (blocks no reads or writes); safe\n\
         UPDATE t SET c = c + 1;\n\
         COMMIT;\n\
         SET lock_timeout = '2000ms';\n\
         SET statement_timeout = 0;\n\
         -- line 4: SHARE UPDATE EXCLUSIVE on t (blocks no reads or writes); safe\n\
         CREATE INDEX CONCURRENTLY t_c ON t (c);\n"
    );
}

#[tokio::test]
async fn sqlmigrate_shows_an_expired_ignore_as_risky_like_migrate() {
    // `-- pgcalm:ignore RULE until DATE` expires in sqlmigrate's verdicts too: after the
    // date the statement is risky again, as `migrate` and `lint` say.
    let db = TestDb::new().await;
    let dir = app_dir(&[(
        "0001_index.sql",
        "-- migrate:up\n\
         -- pgcalm:ignore require-concurrent-index-creation until 2020-01-01 tiny then\n\
         CREATE INDEX t_c ON t (c);\n",
    )]);
    let out = ok(&db, dir.path(), &["sqlmigrate", "app", "0001"]);
    assert!(
        out.contains("-- line 3: SHARE on t (blocks writes); risky:"),
        "{out}"
    );
    assert!(out.contains("expired-ignore"), "{out}");
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
            "app\n [!] 0001_unique  (apply failed at statement 1 of 1 (line 2): ERROR: could not create unique index \"u_v_key\"; 0 of 1 statements done; INVALID index u_v_key on u left behind: the next run drops it concurrently and rebuilds it; rerun resumes at statement 1)\n"
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

// ---------------------------------------------------------------------------------------
// Interruptions: Ctrl-C / SIGTERM, kill -9, resume without applying a statement twice,
// and showmigrations telling an orphaned statement from one not started.

/// `pgcalm ARGS` started in the background with its output captured.
fn spawn(db: &TestDb, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    StdCommand::new(assert_cmd::cargo::cargo_bin("pgcalm"))
        .current_dir(dir)
        .env("DATABASE_URL", db.url())
        .env_remove("PGCALM_LOCK_TIMEOUT")
        .envs(env.iter().copied())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn send_signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

/// Starts `pgcalm ARGS` and returns once its statement waits for a lock (at most 20s),
/// with a connection of the test's own.
async fn spawn_until_it_waits(
    db: &TestDb,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, tokio_postgres::Client) {
    let child = spawn(db, dir, args, env);
    let c = db.client().await;
    until(
        &c,
        RUNNER_WAITS_FOR_A_LOCK,
        Duration::from_secs(20),
        "the runner's statement waits for a lock",
    )
    .await;
    (child, c)
}

fn kill_9(mut child: std::process::Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The child's exit and output, waited for off the test's runtime.
async fn finish(child: std::process::Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Polls `sql` (one boolean) until it is true, at most `limit`; returns how long it took.
async fn until(c: &tokio_postgres::Client, sql: &str, limit: Duration, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let yes: bool = c.query_one(sql, &[]).await.unwrap().get(0);
        if yes {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: still not the case after {limit:?} ({sql})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True once no session of a runner (`pgcalm migrate ...`) is left in this database (the
/// tests of this binary share one server).
const NO_RUNNER_SESSION: &str = "SELECT count(*) = 0 FROM pg_stat_activity
     WHERE datname = current_database() AND application_name LIKE 'pgcalm migrate%'";

/// True while a runner's session waits for a lock in this database.
const RUNNER_WAITS_FOR_A_LOCK: &str = "SELECT count(*) > 0 FROM pg_stat_activity
     WHERE datname = current_database() AND application_name LIKE 'pgcalm migrate%'
       AND wait_event_type = 'Lock'";

/// The bound of the behaviour under test: how soon after Ctrl-C or kill -9 the runner's
/// statement must be gone from the server (generous; it takes milliseconds to ~1s).
const GONE_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn sigint_during_a_risky_build_cancels_it_releases_every_lock_and_says_how_to_resume() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000);")
        .await;
    let dir = app_dir(&[
        (
            "0001_log.sql",
            "-- migrate:up\nCREATE TABLE ran (id int);\n",
        ),
        // The build holds SHARE on t (writes wait) while the last statement waits for a
        // gate the test holds: a long risky migration, interrupted half-way.
        (
            "0002_build.sql",
            "-- migrate:up\nCREATE INDEX t_v ON t (v);\nINSERT INTO ran VALUES (1);\nSELECT pg_advisory_xact_lock(4242);\n",
        ),
    ]);
    let (gate, _) = db.session("SELECT pg_advisory_lock(4242)").await;
    let args = ["migrate", "--allow-risky", "--lock-timeout", "60s"];
    let (child, c) = spawn_until_it_waits(&db, dir.path(), &args, &[]).await;
    send_signal(&child, libc::SIGINT);
    let took = until(
        &c,
        NO_RUNNER_SESSION,
        GONE_WITHIN,
        "the runner's sessions ended after Ctrl-C",
    )
    .await;
    // Writes go through: the build's SHARE lock went with the rollback.
    c.batch_execute("SET lock_timeout = '1s'; INSERT INTO t VALUES (0)")
        .await
        .unwrap_or_else(|e| panic!("writes still blocked {took:?} after Ctrl-C: {e}"));
    let out = finish(child).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(
        stdout.ends_with("  Applying app.0002_build... CANCELLED\n"),
        "{stdout}"
    );
    assert!(
        stderr.starts_with(
            "cancelled (SIGINT): migrations/app/0002_build.sql:4: statement 3 of 3 of app.0002_build \
             (SELECT pg_advisory_xact_lock(4242)) was cancelled on the server; its transaction rolled \
             back: nothing of app.0002_build was applied\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("  still applied: app.0001_log (applied by this run)\n"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "  the migration lock is released; resume with: pgcalm migrate --allow-risky --lock-timeout 60s\n"
        ),
        "{stderr}"
    );
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [X] 0001_log\n [ ] 0002_build  (last run cancelled at statement 3 of 3 (line 4); \
         rolled back, nothing applied)\n"
    );
    gate.batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let rerun = ok(&db, dir.path(), &args);
    assert!(
        stable(&rerun).ends_with("  Applying app.0002_build... OK (<time>)\n"),
        "{rerun}"
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM ran").await,
        1,
        "ran exactly once"
    );
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [X] 0001_log\n [X] 0002_build\n"
    );
}

#[tokio::test]
async fn sigterm_during_a_concurrent_build_leaves_an_invalid_index_the_next_run_repairs() {
    let db = TestDb::new().await;
    db.execute(
        "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000);
         CREATE TABLE elsewhere (x int);",
    )
    .await;
    // An old snapshot: the build waits for it (a lock wait on its virtual xid), holding an
    // INVALID index in the catalog, like a long build on a big table.
    let (old_snapshot, _) = db
        .session("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM elsewhere;")
        .await;
    let dir = app_dir(&[(
        "0001_index.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n",
    )]);
    let args = ["migrate", "--concurrent-lock-timeout", "60s"];
    let (child, c) = spawn_until_it_waits(&db, dir.path(), &args, &[]).await;
    send_signal(&child, libc::SIGTERM);
    until(
        &c,
        NO_RUNNER_SESSION,
        GONE_WITHIN,
        "the runner's sessions ended after SIGTERM",
    )
    .await;
    let out = finish(child).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stdout}{stderr}");
    assert!(
        stderr.starts_with(
            "cancelled (SIGTERM): migrations/app/0001_index.sql:2: statement 1 of 1 of app.0001_index \
             (CREATE INDEX CONCURRENTLY t_v ON t (v)) was cancelled on the server; 0 of 1 statements \
             of app.0001_index are done\n  \
             the cancelled build left an INVALID index t_v on t; the next run drops it concurrently and rebuilds it\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("resume with: pgcalm migrate --concurrent-lock-timeout 60s\n"),
        "{stderr}"
    );
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [-] 0001_index  (cancelled at statement 1 of 1 (line 2); 0 of 1 statements done; \
         INVALID index t_v on t left behind: the next run drops it concurrently and rebuilds it; \
         `pgcalm migrate` resumes at statement 1)\n\
         [-] partially applied or running, [!] last run failed\n"
    );
    old_snapshot.batch_execute("COMMIT").await.unwrap();
    let rerun = ok(&db, dir.path(), &args);
    assert!(
        rerun.contains(
            "    found INVALID index t_v on t (left by the cancelled build of the last run)"
        ),
        "{rerun}"
    );
    let valid: bool = c
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [X] 0001_index\n"
    );
}

#[tokio::test]
async fn kill_9_during_a_lock_wait_the_server_drops_the_orphaned_statement_within_seconds() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .await;
    // A reader idle in its transaction: the ALTER queues behind it, and every later
    // reader of t would queue behind the ALTER.
    let (reader, _) = db.session("BEGIN; SELECT count(*) FROM t;").await;
    let dir = app_dir(&[(
        "0001_column.sql",
        "-- migrate:up\nALTER TABLE t ADD COLUMN c int;\n",
    )]);
    let (child, c) =
        spawn_until_it_waits(&db, dir.path(), &["migrate", "--lock-timeout", "60s"], &[]).await;
    kill_9(child);
    until(
        &c,
        NO_RUNNER_SESSION,
        GONE_WITHIN,
        "the server dropped the killed runner's sessions",
    )
    .await;
    // Readers are not queued behind an orphaned ACCESS EXCLUSIVE request.
    c.batch_execute("SET lock_timeout = '1s'; SELECT count(*) FROM t")
        .await
        .unwrap();
    reader.batch_execute("COMMIT").await.unwrap();
    assert!(ok(&db, dir.path(), &["showmigrations"]).contains("[ ] 0001_column"));
    ok(&db, dir.path(), &["migrate"]);
    assert!(ok(&db, dir.path(), &["showmigrations"]).contains("[X] 0001_column"));
}

#[tokio::test]
async fn kill_9_mid_update_of_a_no_transaction_section_never_applies_it_twice() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE counter (id int, c int); INSERT INTO counter VALUES (1, 0);")
        .await;
    // A row lock the UPDATE waits for: the runner is killed while its UPDATE is in flight.
    let (row_lock, _) = db.session("BEGIN; SELECT * FROM counter FOR UPDATE;").await;
    let dir = app_dir(&[(
        "0001_bump.sql",
        "-- migrate:up transaction:false\n\
         -- pgcalm:ignore unbatched-backfill one row\n\
         UPDATE counter SET c = c + 1;\n\
         CREATE TABLE after_bump (id int);\n",
    )]);
    // The server is not told to watch for the dead client here (as behind a pooler, or
    // before PostgreSQL 14): the orphaned UPDATE runs to its end.
    let no_check = [("PGCALM_CLIENT_CONNECTION_CHECK_INTERVAL", "0")];
    let (child, c) = spawn_until_it_waits(
        &db,
        dir.path(),
        &["migrate", "--lock-timeout", "60s"],
        &no_check,
    )
    .await;
    kill_9(child);
    row_lock.batch_execute("COMMIT").await.unwrap();
    until(
        &c,
        NO_RUNNER_SESSION,
        Duration::from_secs(20),
        "the orphaned UPDATE ended",
    )
    .await;
    ok(&db, dir.path(), &["migrate"]);
    assert_eq!(
        db.query_i64("SELECT c::bigint FROM counter").await,
        1,
        "the UPDATE must count once: the orphan's work is either journaled or rolled back"
    );
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [X] 0001_bump\n"
    );
}

#[tokio::test]
async fn showmigrations_tells_a_statement_still_running_in_an_orphaned_session_from_one_not_started()
 {
    let db = TestDb::new().await;
    let dir = app_dir(&[(
        "0001_gate.sql",
        "-- migrate:up transaction:false\nCREATE TABLE a (id int);\nSELECT pg_advisory_xact_lock(77);\n",
    )]);
    let (gate, _) = db.session("SELECT pg_advisory_lock(77)").await;
    let no_check = [("PGCALM_CLIENT_CONNECTION_CHECK_INTERVAL", "0")];
    let (child, c) = spawn_until_it_waits(
        &db,
        dir.path(),
        &["migrate", "--lock-timeout", "60s"],
        &no_check,
    )
    .await;
    let pid: i32 = c
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                AND application_name LIKE 'pgcalm migrate%' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    kill_9(child);
    // The dead runner's idle sessions close as soon as the server reads their EOF; only
    // the statement's session, busy waiting for its lock, outlives it.
    until(
        &c,
        "SELECT count(*) = 1 FROM pg_stat_activity
          WHERE datname = current_database() AND application_name LIKE 'pgcalm migrate%'",
        Duration::from_secs(10),
        "the dead runner's idle sessions closed",
    )
    .await;
    let shown = ok(&db, dir.path(), &["showmigrations"]);
    assert!(
        shown.starts_with(&format!(
            "app\n [-] 0001_gate  (partially applied: 1 of 2 statements done; statement 2 (line 3) is \
             still running in server session pid {pid}, whose runner is gone; `pgcalm migrate` waits \
             for it, or stop it with SELECT pg_cancel_backend({pid}))\n"
        )),
        "{shown}"
    );
    gate.batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    until(
        &c,
        NO_RUNNER_SESSION,
        Duration::from_secs(20),
        "the orphan ended",
    )
    .await;
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [-] 0001_gate  (partially applied: 1 of 2 statements done; the runner stopped before \
         finishing; `pgcalm migrate` resumes at statement 2)\n\
         [-] partially applied or running, [!] last run failed\n"
    );
    ok(&db, dir.path(), &["migrate"]);
    assert_eq!(
        ok(&db, dir.path(), &["showmigrations"]),
        "app\n [X] 0001_gate\n"
    );
}

#[tokio::test]
async fn a_statement_left_in_doubt_stops_the_resume_until_assume_done_or_rerun() {
    let db = TestDb::new().await;
    db.execute("CREATE TABLE k (v int)").await;
    let dir = app_dir(&[(
        "0001_idx.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY ON k (v);\n",
    )]);
    ok(&db, dir.path(), &["migrate"]);
    // The journal a runner killed during the unnamed build leaves: statement 1 in flight.
    let killed = "UPDATE pgcalm.migrations SET state = 'running_up', in_flight = 0;
                  DELETE FROM pgcalm.migration_statements;";
    db.execute(killed).await;
    let err = fails(&db, dir.path(), &["migrate"]);
    assert!(
        err.starts_with(
            "error: migrations/app/0001_idx.sql:2: statement 1 of app.0001_idx (CREATE INDEX \
             CONCURRENTLY ON k (v)) was running outside a transaction when the last runner stopped"
        ) && err.contains("rerun with --assume-done if it completed, or with --rerun"),
        "{err}"
    );
    let out = ok(&db, dir.path(), &["migrate", "--assume-done"]);
    assert!(
        out.contains("    statement 1 (migrations/app/0001_idx.sql:2) is already done: --assume-done: recorded as done without running it\n"),
        "{out}"
    );
    db.execute(killed).await;
    let out = ok(&db, dir.path(), &["migrate", "--rerun"]);
    assert!(
        out.contains("    statement 1 (migrations/app/0001_idx.sql:2) was in flight when the last runner stopped: --rerun: running it again\n"),
        "{out}"
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_indexes WHERE tablename = 'k'")
            .await,
        2,
        "--rerun built it again"
    );
}

/// `sqlmigrate` prints one migration's SQL: its errors suggest nothing it cannot do
/// (`zero`, creating an app or a directory are `migrate`'s and a project's business).
#[test]
fn sqlmigrate_errors_suggest_only_what_applies_to_it() {
    let dir = seed_dir();
    let err = |cwd: &Path, args: &[&str]| {
        let out = Command::cargo_bin("pgcalm")
            .unwrap()
            .current_dir(cwd)
            .env_remove("DATABASE_URL")
            .env_remove("PGCALM_MIGRATIONS_DIR")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    insta::assert_snapshot!(err(dir.path(), &["sqlmigrate", "demoapp", "0009"]), @"
    error: app `demoapp` has no migration matching `0009`; its migrations: 0001_initial, 0002_add_email_index_concurrently
      fix: give a number or name prefix of one of them, e.g. `pgcalm sqlmigrate demoapp 0001`
    ");
    insta::assert_snapshot!(err(dir.path(), &["sqlmigrate", "demoapp", "zero"]), @"
    error: `zero` is not a migration: sqlmigrate prints the SQL of one migration of `demoapp` (0001_initial, 0002_add_email_index_concurrently)
      fix: give one of them (--backwards for its down section); `pgcalm migrate demoapp zero --plan` shows what unapplying them all runs
    ");
    insta::assert_snapshot!(err(dir.path(), &["sqlmigrate", "demoap", "0001"]), @"
    error: no app named `demoap` in migrations; apps: demoapp
      fix: give one of those apps (`pgcalm showmigrations` lists each app's migrations)
    ");
    // No migrations here: point at them (creating an empty directory prints nothing).
    let empty = tempfile::tempdir().unwrap();
    let text = err(empty.path(), &["sqlmigrate", "demoapp", "0001"]);
    assert!(
        text.contains("--migrations-dir") && !text.contains("create it"),
        "{text}"
    );
}
