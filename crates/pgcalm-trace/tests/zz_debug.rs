use std::path::Path;
use pgcalm_lint::LintOptions;
use pgcalm_testkit::TestDb;
use pgcalm_trace::{Script, TraceOptions, build_report, trace};

#[tokio::test]
async fn dump() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lint");
    for f in std::env::var("CASES").unwrap().split(',') {
        let db = TestDb::new().await;
        let script = Script::load(&dir.join(f), &[dir.join("schema.sql")]).unwrap();
        let t = trace(db.target(), &script, &TraceOptions { seed_rows: 0 }).await.unwrap();
        let o = LintOptions::default();
        let lint = script.lint(&o);
        let r = build_report(&script, t, &lint, &o);
        println!("=== {f}");
        for s in &r.statements {
            println!("L{} {:?} locks={:?} held={:?} rw={:?} scans={:?} cons={:?} idx={:?} nn={:?} lt={} err={:?} pred={:?} ev={:?} lint={:?} trace={:?}",
              s.trace.line, s.trace.sql.lines().next(), s.trace.locks.iter().map(|l| format!("{} {}{}", l.relation, l.mode, if l.granted {""} else {"(w)"})).collect::<Vec<_>>(),
              s.trace.held_before.iter().map(|l| format!("{} {}", l.relation, l.mode)).collect::<Vec<_>>(),
              s.trace.rewrites, s.trace.scans, s.trace.constraints, s.trace.indexes, s.trace.not_null, s.trace.lock_timeout, s.trace.error, s.predicted, s.evidence, s.lint_rules, s.trace_rules);
        }
        for f in &r.findings { println!("  F L{} {} {:?} {}", f.span.line, f.rule, f.seen_by, f.message); }
    }
}
