//! The lint corpus (`tests/fixtures/lint`, conventions in its README): lint reports
//! exactly the expected rules on every risky statement and nothing on any other
//! statement. A failure lists every miss and every false alarm, with file and line.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use pgcalm_lint::{Finding, LintOptions, PgVersion, Schema, SourceStatement, split};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    file: String,
    #[serde(default)]
    pg_version: Option<u32>,
    // Read by the trace comparison, not here.
    #[serde(default)]
    #[allow(dead_code)]
    trace_note: Option<String>,
    statement: Vec<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    sql: String,
    verdict: Verdict,
    #[serde(default)]
    rules: Vec<String>,
    // squawk's equivalent: read by bench/lint_vs_squawk.sh.
    #[serde(default)]
    #[allow(dead_code)]
    squawk: Vec<String>,
    #[serde(default)]
    hazard: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    trace_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Risky,
    Safe,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lint")
}

fn manifest() -> Manifest {
    let path = corpus().join("expected.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The production tables every case migrates (`schema.sql`).
fn existing_schema() -> Schema {
    let sql = std::fs::read_to_string(corpus().join("schema.sql")).unwrap();
    Schema::from_sql(&sql).unwrap_or_else(|e| panic!("schema.sql: {e:?}"))
}

/// A linted corpus file: its statements and the findings lint reported.
struct Linted {
    source: String,
    statements: Vec<SourceStatement>,
    findings: Vec<Finding>,
}

impl Linted {
    /// The rules reported on a statement.
    fn rules_on(&self, stmt: &SourceStatement) -> BTreeSet<String> {
        self.findings
            .iter()
            .filter(|f| f.span.start == stmt.span.start)
            .map(|f| f.rule.to_string())
            .collect()
    }

    /// Rules reported more than once on a statement (a rewrite or a scan is one per
    /// statement, however many columns it names).
    fn repeated_on(&self, stmt: &SourceStatement) -> Vec<&'static str> {
        let rules: Vec<&'static str> = self
            .findings
            .iter()
            .filter(|f| f.span.start == stmt.span.start)
            .map(|f| f.rule.name())
            .collect();
        let mut repeated: Vec<&'static str> = rules
            .iter()
            .copied()
            .filter(|r| rules.iter().filter(|x| *x == r).count() > 1)
            .collect();
        repeated.dedup();
        repeated
    }
}

/// Lints one corpus file the way `pgcalm lint` does (`lint_source`: a migration file
/// section by section, plain SQL as one unit). Statements are split from the whole text:
/// section markers are comments, so spans match the sections' own.
fn lint_file(rel: &str, options: &LintOptions) -> Linted {
    let path = corpus().join(rel);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let statements = split(&source, 0..source.len()).unwrap_or_else(|e| panic!("{rel}: {e:?}"));
    let findings = pgcalm_migrate::lint_source(&path, &source, options)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .result
        .findings;
    Linted {
        source,
        statements,
        findings,
    }
}

fn rule_list(rules: &BTreeSet<String>) -> String {
    if rules.is_empty() {
        "nothing".into()
    } else {
        rules.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[test]
fn lint_catches_every_risky_statement_and_flags_no_safe_one() {
    let manifest = manifest();
    let schema = Arc::new(existing_schema());
    let mut problems = Vec::new();
    let (mut risky, mut safe) = (0, 0);
    for case in &manifest.case {
        let options = case_options(case, &schema);
        let linted = lint_file(&case.file, &options);
        let mut under_test = BTreeSet::new();
        for expected in &case.statement {
            let hits: Vec<&SourceStatement> = linted
                .statements
                .iter()
                .filter(|s| s.sql(&linted.source).contains(&expected.sql))
                .collect();
            let [stmt] = hits[..] else {
                problems.push(format!(
                    "{}: expected.toml's snippet `{}` matches {} statements (needs exactly one)",
                    case.file,
                    expected.sql,
                    hits.len()
                ));
                continue;
            };
            under_test.insert(stmt.span.start);
            let at = format!("{}:{}", case.file, stmt.span.line);
            let want: BTreeSet<String> = expected.rules.iter().cloned().collect();
            let got = linted.rules_on(stmt);
            match expected.verdict {
                Verdict::Risky => risky += 1,
                Verdict::Safe => safe += 1,
            }
            if (expected.verdict == Verdict::Risky) == want.is_empty() {
                problems.push(format!(
                    "{at}: expected.toml says {:?} with rules [{}]: risky needs rules, safe has none",
                    expected.verdict,
                    rule_list(&want)
                ));
            }
            let missed: BTreeSet<String> = want.difference(&got).cloned().collect();
            let extra: BTreeSet<String> = got.difference(&want).cloned().collect();
            if !missed.is_empty() {
                problems.push(format!(
                    "MISS {at}: `{}` should get {} (got {})",
                    expected.sql,
                    rule_list(&missed),
                    rule_list(&got)
                ));
            }
            if !extra.is_empty() {
                problems.push(format!(
                    "FALSE ALARM {at}: `{}` ({:?}) got {}",
                    expected.sql,
                    expected.verdict,
                    rule_list(&extra)
                ));
            }
        }
        for stmt in &linted.statements {
            for rule in linted.repeated_on(stmt) {
                problems.push(format!(
                    "DUPLICATE {}:{}: {rule} reported more than once on one statement",
                    case.file, stmt.span.line
                ));
            }
        }
        // Everything else in the file (SET, BEGIN, COMMIT) must be quiet.
        for stmt in linted
            .statements
            .iter()
            .filter(|s| !under_test.contains(&s.span.start))
        {
            let got = linted.rules_on(stmt);
            if !got.is_empty() {
                let first = stmt.sql(&linted.source).lines().next().unwrap_or_default();
                problems.push(format!(
                    "FALSE ALARM {}:{}: `{first}` (not under test) got {}",
                    case.file,
                    stmt.span.line,
                    rule_list(&got)
                ));
            }
        }
    }
    let mut report = String::new();
    for p in &problems {
        let _ = writeln!(report, "  {p}");
    }
    assert!(
        problems.is_empty(),
        "lint corpus: {} problems over {risky} risky and {safe} safe statements:\n{report}",
        problems.len()
    );
    assert!(
        risky >= 50 && safe >= 50,
        "the corpus shrank: {risky} risky, {safe} safe"
    );
}

/// The options a case is linted with (`pgcalm lint --schema tests/fixtures/lint/schema.sql
/// [--pg-version N]`).
fn case_options(case: &Case, schema: &Arc<Schema>) -> LintOptions {
    LintOptions {
        pg_version: case.pg_version.map(PgVersion).unwrap_or(PgVersion::DEFAULT),
        schema: Some(schema.clone()),
        ..LintOptions::default()
    }
}

#[path = "../src/rules/fix_check.rs"]
mod fix_check;

/// Every fix lint offers on the corpus, put in place of its statement and linted again
/// the way the file runs (its transaction mode, version and schema): it parses, raises
/// nothing it fixes, no `concurrently-in-transaction` and no rule the statement did not
/// have, and keeps the quoting of the names it shares with the statement.
#[test]
fn every_fix_is_right_where_its_file_runs() {
    let manifest = manifest();
    let schema = Arc::new(existing_schema());
    let (mut fixes, mut problems) = (0, Vec::new());
    for case in &manifest.case {
        let options = case_options(case, &schema);
        let linted = lint_file(&case.file, &options);
        let path = corpus().join(&case.file);
        for f in &linted.findings {
            let Some(fix) = &f.fix_sql else { continue };
            fixes += 1;
            let original: Vec<&str> = linted
                .findings
                .iter()
                .filter(|g| g.span.start == f.span.start)
                .map(|g| g.rule.name())
                .collect();
            let relint = |text: &str| -> Vec<(String, usize)> {
                pgcalm_migrate::lint_source(&path, text, &options)
                    .unwrap_or_else(|e| {
                        panic!("{} with the fix of {}: {e}\n{text}", case.file, f.rule)
                    })
                    .result
                    .findings
                    .iter()
                    .map(|g| (g.rule.to_string(), g.span.start))
                    .collect()
            };
            for p in fix_check::fix_problems(
                &linted.source,
                f.span.range(),
                f.rule.name(),
                fix,
                &original,
                relint,
            ) {
                problems.push(format!(
                    "{}:{} {}: {p}\n    {}",
                    case.file,
                    f.span.line,
                    f.rule,
                    fix.replace('\n', "\n    ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {fixes} fixes are wrong where their file runs:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(fixes >= 40, "the corpus has only {fixes} fixes");
}

#[test]
fn every_corpus_file_is_in_the_manifest_and_every_hazard_has_a_case() {
    let manifest = manifest();
    let listed: BTreeSet<&str> = manifest.case.iter().map(|c| c.file.as_str()).collect();
    let mut on_disk = BTreeSet::new();
    for dir in ["risky", "safe"] {
        for entry in std::fs::read_dir(corpus().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".sql") {
                on_disk.insert(format!("{dir}/{name}"));
            }
        }
    }
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(
        on_disk.difference(&listed).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "fixtures missing from expected.toml"
    );
    assert_eq!(
        listed.difference(&on_disk).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "expected.toml names files that do not exist"
    );
    for case in &manifest.case {
        let dir_says_risky = case.file.starts_with("risky/");
        let has_risky = case.statement.iter().any(|s| s.verdict == Verdict::Risky);
        assert_eq!(
            dir_says_risky, has_risky,
            "{}: risky/ files need a risky statement, safe/ files none",
            case.file
        );
    }
    // Rows of risky_ops.md's master table, plus the lock_timeout hazard.
    let hazards: BTreeSet<&str> = manifest
        .case
        .iter()
        .flat_map(|c| &c.statement)
        .filter(|s| s.verdict == Verdict::Risky)
        .filter_map(|s| s.hazard.as_deref())
        .collect();
    let rows: Vec<String> = (1..=15)
        .map(|n| n.to_string())
        .chain(["lock-timeout".to_string()])
        .collect();
    for row in &rows {
        assert!(
            hazards.contains(row.as_str()),
            "no risky case for hazard {row}"
        );
    }
}

#[test]
fn the_schema_tells_lint_about_every_production_table() {
    // 8 plain tables, "Team" (quoted names), metrics and its partitions metrics_2026 and
    // metrics_default, metrics_2025, bills, reporting.snapshots and two materialized views.
    assert_eq!(existing_schema().table_count(), 17, "schema.sql's tables");
}
