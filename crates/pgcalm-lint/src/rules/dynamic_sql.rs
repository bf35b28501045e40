//! `dynamic-sql`: a `DO` block (or a function of the unit that the statement calls) runs
//! SQL lint cannot read: `EXECUTE` of a string computed at run time (`format(...)`,
//! concatenation), `FOR ... IN EXECUTE`, a body in another language or one PL/pgSQL's
//! parser refuses. Lint reads everything else in the body (`plpgsql.rs`) and lints it
//! like the file's own statements; this rule says what it could not, instead of passing
//! silently.

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DynamicSql,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if !matches!(
        cx.node,
        pg_query::NodeEnum::DoStmt(_)
            | pg_query::NodeEnum::SelectStmt(_)
            | pg_query::NodeEnum::CallStmt(_)
    ) {
        return Vec::new();
    }
    let parts: Vec<String> = cx
        .bodies_run()
        .iter()
        .flat_map(|run| {
            run.body
                .opaque
                .iter()
                .map(move |o| format!("line {} in {}: {}", o.line, run.name, o.what))
        })
        .collect();
    if parts.is_empty() {
        return Vec::new();
    }
    vec![
        Violation::new(format!(
            "part of what this runs is SQL built at run time, which lint cannot read or check \
             (the rest it checked): {}",
            parts.join("; ")
        ))
        .help(
            "write the statements out as plain SQL where you can (lint then checks each one); \
             for what must stay dynamic, `pgcalm trace` shows what it locks and rewrites on a \
             scratch database; then `-- pgcalm:ignore dynamic-sql <why it is safe>`",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "dynamic-sql";

    #[test]
    fn execute_of_a_computed_string() {
        assert_snapshot!(check(RULE, "DO $$\nDECLARE t text;\nBEGIN\n  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'audit' LOOP\n    EXECUTE format('ALTER TABLE audit.%I ADD COLUMN actor text', t);\n  END LOOP;\nEND $$;"), @"
        warning[dynamic-sql] 1:1
          part of what this runs is SQL built at run time, which lint cannot read or check (the rest it checked): line 5 in the DO block: EXECUTE format('ALTER TABLE audit.%I ADD COLUMN actor text', t)
          help: write the statements out as plain SQL where you can (lint then checks each one); for what must stay dynamic, `pgcalm trace` shows what it locks and rewrites on a scratch database; then `-- pgcalm:ignore dynamic-sql <why it is safe>`
        ");
    }

    #[test]
    fn a_function_of_the_unit_called_here() {
        assert_snapshot!(check(RULE, "CREATE FUNCTION add_col(t text) RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  EXECUTE 'ALTER TABLE ' || t || ' ADD COLUMN x int';\nEND $$;\nSELECT add_col('users');"), @"
        warning[dynamic-sql] 5:1
          part of what this runs is SQL built at run time, which lint cannot read or check (the rest it checked): line 3 in function add_col: EXECUTE 'ALTER TABLE ' || t || ' ADD COLUMN x int'
          help: write the statements out as plain SQL where you can (lint then checks each one); for what must stay dynamic, `pgcalm trace` shows what it locks and rewrites on a scratch database; then `-- pgcalm:ignore dynamic-sql <why it is safe>`
        ");
    }

    #[test]
    fn a_body_lint_reads_whole_is_no_finding() {
        assert_eq!(
            lines(
                RULE,
                "DO $$ BEGIN EXECUTE 'ALTER TABLE users ADD COLUMN x int'; ALTER TABLE users ADD COLUMN y int; END $$;\nSELECT now();"
            ),
            Vec::<usize>::new()
        );
    }
}
