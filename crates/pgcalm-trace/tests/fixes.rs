//! Every fix lint offers on the lint corpus (tests/fixtures/lint/, linted with its
//! `schema.sql` as `pgcalm lint --schema` does) runs on PostgreSQL where its file runs:
//! the file with that one statement replaced by the fix is traced on a fresh database
//! holding `schema.sql` (plain SQL as written, a pgcalm migration as the runner runs it),
//! and no statement of the fix fails. pgcalm-lint's own corpus test checks, without a
//! server, that the fixes raise nothing they fix; this one checks that they run.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use pgcalm_lint::{LintOptions, PgVersion, Schema};
use pgcalm_testkit::TestDb;
use pgcalm_trace::{Script, TraceOptions, trace};

#[derive(serde::Deserialize)]
struct Expected {
    case: Vec<Case>,
}

#[derive(serde::Deserialize, Clone)]
struct Case {
    file: String,
    pg_version: Option<u32>,
    /// PostgreSQL refuses a statement of the file as written: the run stops there.
    trace_note: Option<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lint")
}

/// One fix to try: the file, the text with the fix in place, and where the fix is.
struct Trial {
    file: String,
    rule: pgcalm_lint::RuleId,
    line: usize,
    text: String,
    fix: std::ops::Range<usize>,
}

// `with_fix`: the same replacement pgcalm-lint's fix check makes.
#[path = "../../pgcalm-lint/src/rules/fix_check.rs"]
#[allow(dead_code)]
mod fix_check;

fn trials() -> Vec<Trial> {
    let text = std::fs::read_to_string(corpus().join("expected.toml")).unwrap();
    let expected: Expected = toml::from_str(&text).unwrap();
    let schema_sql = std::fs::read_to_string(corpus().join("schema.sql")).unwrap();
    let schema = Arc::new(Schema::from_sql(&schema_sql).unwrap());
    let mut out = Vec::new();
    for case in expected.case.iter().filter(|c| c.trace_note.is_none()) {
        let options = LintOptions {
            pg_version: PgVersion(case.pg_version.unwrap_or(15)),
            schema: Some(schema.clone()),
            ..LintOptions::default()
        };
        let path = corpus().join(&case.file);
        let source = std::fs::read_to_string(&path).unwrap();
        let linted = pgcalm_migrate::lint_source(&path, &source, &options)
            .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        for f in &linted.result.findings {
            let Some(fix) = &f.fix_sql else { continue };
            let (text, fix_range) = fix_check::with_fix(&source, f.span.range(), fix);
            out.push(Trial {
                file: case.file.clone(),
                rule: f.rule,
                line: f.span.line,
                text,
                fix: fix_range,
            });
        }
    }
    out
}

/// Traces one trial; the error of a fix statement, if one failed.
async fn run(trial: &Trial, dir: &Path) -> Option<String> {
    let name = Path::new(&trial.file).file_name().unwrap();
    let sub = dir.join(format!("{}-{}-{}", trial.line, trial.rule, trial.fix.start));
    std::fs::create_dir_all(&sub).unwrap();
    let path = sub.join(name);
    std::fs::write(&path, &trial.text).unwrap();
    let script = Script::load(&path, &[corpus().join("schema.sql")])
        .unwrap_or_else(|e| panic!("{}:{} {}: {e}", trial.file, trial.line, trial.rule));
    let db = TestDb::new().await;
    let traced = trace(
        db.target(),
        &script,
        &TraceOptions {
            seed_rows: 0,
            ..TraceOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}:{} {}: {e}", trial.file, trial.line, trial.rule));
    let in_fix: Vec<_> = traced
        .statements
        .iter()
        .filter(|s| trial.fix.contains(&s.span.start))
        .collect();
    if in_fix.is_empty() {
        // The run stopped before the fix (or the fix ran nothing): say where.
        let stop = traced.statements.iter().find_map(|s| s.error.clone());
        return Some(format!("the fix never ran ({})", stop.unwrap_or_default()));
    }
    in_fix
        .iter()
        .find_map(|s| s.error.as_ref().map(|e| format!("`{}`: {e}", s.sql)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fix_of_the_corpus_runs_on_postgresql_where_its_file_runs() {
    let trials = trials();
    assert!(trials.len() >= 40, "only {} fixes", trials.len());
    let dir = std::env::temp_dir().join(format!("pgcalm-fixes-{}", std::process::id()));
    let failures: Vec<String> = futures_util::stream::iter(trials.iter().map(|t| {
        let dir = dir.clone();
        async move {
            run(t, &dir)
                .await
                .map(|e| format!("{}:{} {}: {e}", t.file, t.line, t.rule))
        }
    }))
    .buffer_unordered(4)
    .filter_map(|r| async move { r })
    .collect()
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} fixes fail on PostgreSQL:\n{}",
        failures.len(),
        trials.len(),
        failures.join("\n")
    );
}

/// formbricks 20240421093432_adds_website_survey_type: `changing-column-type`'s fix, with
/// its backfill uncommented and run batch by batch until it updates nothing, converts
/// every row the way the statement's USING does (an enum to another goes through text:
/// PostgreSQL has no cast between two enums), on a table whose key is TEXT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_change_fix_backfills_through_its_using_expression() {
    let db = TestDb::new().await;
    db.execute(
        r#"CREATE TYPE "SurveyType" AS ENUM ('link', 'web', 'email');
           CREATE TYPE "SurveyType_new" AS ENUM ('link', 'web', 'website', 'app');
           CREATE TABLE "Survey" (id text PRIMARY KEY, "type" "SurveyType");
           INSERT INTO "Survey"
           SELECT 'clx' || g, (ARRAY['link', 'web', NULL])[1 + g % 3]::"SurveyType"
           FROM generate_series(1, 25000) g;"#,
    )
    .await;
    let sql = r#"ALTER TABLE "Survey" ALTER COLUMN "type" TYPE "SurveyType_new" USING ("type"::text::"SurveyType_new");"#;
    let fix = fix_of(sql, pgcalm_lint::RuleId::ChangingColumnType);
    let now = uncommented(&fix);
    db.execute(&now).await;
    let batch = commented_update(&fix);
    // 25000 rows, a third of them NULL (nothing to copy): two batches of 10000 at most.
    assert_eq!(run_batches(&db, &batch).await, 2, "{batch}");
    let wrong = db
        .query_i64(
            r#"SELECT count(*) FROM "Survey"
               WHERE type_new IS DISTINCT FROM "type"::text::"SurveyType_new""#,
        )
        .await;
    assert_eq!(wrong, 0, "{batch}");
}

/// A fix's SQL to run now (its lines that are not comments).
fn uncommented(fix: &str) -> String {
    fix.lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first backfill batch a fix gives as a comment (`-- UPDATE ...`), to run later.
fn commented_update(fix: &str) -> String {
    fix.lines()
        .find_map(|l| l.strip_prefix("-- UPDATE "))
        .map(|rest| format!("UPDATE {rest}"))
        .unwrap_or_else(|| panic!("no backfill in\n{fix}"))
}

/// Runs `batch` until it changes no row; the number of batches that changed some.
async fn run_batches(db: &TestDb, batch: &str) -> usize {
    let client = db.client().await;
    let mut batches = 0;
    loop {
        let n = client.execute(batch, &[]).await.unwrap_or_else(|e| {
            let db = e.as_db_error().map(|d| d.message().to_string());
            panic!("{batch}: {}", db.unwrap_or_else(|| e.to_string()))
        });
        if n == 0 {
            return batches;
        }
        batches += 1;
        assert!(batches <= 10, "{batch} does not come to an end");
    }
}

/// The fix of `rule` for `sql`, linted with no schema (the key's type unknown).
fn fix_of(sql: &str, rule: pgcalm_lint::RuleId) -> String {
    pgcalm_lint::lint_sql(
        sql,
        pgcalm_lint::UnitKind::PlainSql,
        &LintOptions::default(),
    )
    .unwrap()
    .findings
    .iter()
    .find(|f| f.rule == rule)
    .and_then(|f| f.fix_sql.clone())
    .unwrap_or_else(|| panic!("a {rule:?} fix for {sql}"))
}

/// A table keyed by TEXT (a uuid, a cuid): 25000 rows, a third with status NULL.
const TEXT_KEYED: &str = r#"CREATE TABLE "Account" (id text PRIMARY KEY, status text);
INSERT INTO "Account"
SELECT 'clx' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'old' END
FROM generate_series(1, 25000) g;"#;

#[tokio::test]
async fn an_unbatched_backfill_fix_runs_on_a_text_key() {
    let db = TestDb::new().await;
    db.execute(TEXT_KEYED).await;
    let fix = fix_of(
        r#"UPDATE "Account" SET status = 'active' WHERE status IS NULL;"#,
        pgcalm_lint::RuleId::UnbatchedBackfill,
    );
    let batch = uncommented(&fix);
    // 8333 NULL rows: one batch of 10000.
    assert_eq!(run_batches(&db, &batch).await, 1, "{batch}");
    let left = db
        .query_i64(r#"SELECT count(*) FROM "Account" WHERE status IS NULL"#)
        .await;
    assert_eq!(left, 0, "{batch}");
    // A DELETE batches the same way, and ends when nothing is left to delete.
    let fix = fix_of(
        r#"DELETE FROM "Account" WHERE status <> 'active';"#,
        pgcalm_lint::RuleId::UnbatchedBackfill,
    );
    let batch = uncommented(&fix);
    assert_eq!(run_batches(&db, &batch).await, 2, "{batch}");
    let left = db.query_i64(r#"SELECT count(*) FROM "Account""#).await;
    assert_eq!(left, 8333, "{batch}");
}

#[tokio::test]
async fn a_volatile_default_fix_backfills_on_a_text_key() {
    let db = TestDb::new().await;
    db.execute(TEXT_KEYED).await;
    let fix = fix_of(
        r#"ALTER TABLE "Account" ADD COLUMN token uuid DEFAULT gen_random_uuid();"#,
        pgcalm_lint::RuleId::AddingFieldWithVolatileDefault,
    );
    let now = uncommented(&fix);
    db.execute(&now).await;
    let batch = commented_update(&fix);
    assert_eq!(run_batches(&db, &batch).await, 3, "{batch}");
    let left = db
        .query_i64(r#"SELECT count(*) FROM "Account" WHERE token IS NULL"#)
        .await;
    assert_eq!(left, 0, "{batch}");
}
