//! `refresh-materialized-view-non-concurrent`: `REFRESH MATERIALIZED VIEW` without
//! `CONCURRENTLY` on a view that existed before the unit holds ACCESS EXCLUSIVE on it
//! while the view's whole query runs: every read of the view waits. `WITH NO DATA`
//! empties it instead, and reads fail until the next refresh. `CONCURRENTLY` (EXCLUSIVE:
//! reads go on) needs a unique index on plain columns of the view; the fix is offered
//! when lint knows one (the unit or `--schema` created it).

use pg_query::NodeEnum;
use pg_query::protobuf::Token;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::RefreshMaterializedViewNonConcurrent,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::RefreshMatViewStmt(r) = cx.node else {
        return Vec::new();
    };
    let Some(view) = r.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    if r.concurrent {
        return Vec::new();
    }
    let Some(lock) = cx.existing_lock_on(&view) else {
        return Vec::new();
    };
    if r.skip_data {
        return vec![
            Violation::new(format!(
                "REFRESH MATERIALIZED VIEW {view} WITH NO DATA empties it: every read of \
                 {view} fails (\"has not been populated\") until it is refreshed again"
            ))
            .help("refresh it with data (CONCURRENTLY, so reads go on) instead of emptying it")
            .lock(lock),
        ];
    }
    let index = cx
        .state
        .indexes
        .values()
        .find(|i| i.unique && i.plain && i.table.same_as(&view));
    let mut help = String::from(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY computes the new rows beside the old ones and \
         updates them in place under EXCLUSIVE: reads go on (it may run in a transaction)",
    );
    let concurrently = cx.token_offset(Token::View).map(|at| {
        let sql = cx.sql();
        let after = at + "VIEW".len();
        format!("{} CONCURRENTLY{};", &sql[..after], &sql[after..])
    });
    let mut fix = None;
    match index {
        Some(i) => {
            help.push_str(&format!("; {} is the unique index it needs", i.name));
            fix = concurrently;
        }
        None => help.push_str(&format!(
            ". It needs a UNIQUE index on plain columns of {view} (no expression, no WHERE) \
             that lint does not know of: create one first (CREATE UNIQUE INDEX CONCURRENTLY)"
        )),
    }
    let mut v = Violation::new(format!(
        "REFRESH MATERIALIZED VIEW {view} holds ACCESS EXCLUSIVE on it while the view's whole \
         query runs: every read of {view} waits until it ends"
    ))
    .help(help)
    .lock(lock);
    if let Some(sql) = fix {
        v = v.fix(sql);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_schema, lines};

    const RULE: &str = "refresh-materialized-view-non-concurrent";

    #[test]
    fn refresh_without_a_known_unique_index() {
        assert_snapshot!(check(RULE, "REFRESH MATERIALIZED VIEW order_totals;"), @"
        error[refresh-materialized-view-non-concurrent] 1:1
          lock: REFRESH MATERIALIZED VIEW takes ACCESS EXCLUSIVE on order_totals: blocks reads and writes
          REFRESH MATERIALIZED VIEW order_totals holds ACCESS EXCLUSIVE on it while the view's whole query runs: every read of order_totals waits until it ends
          help: REFRESH MATERIALIZED VIEW CONCURRENTLY computes the new rows beside the old ones and updates them in place under EXCLUSIVE: reads go on (it may run in a transaction). It needs a UNIQUE index on plain columns of order_totals (no expression, no WHERE) that lint does not know of: create one first (CREATE UNIQUE INDEX CONCURRENTLY)
        ");
    }

    #[test]
    fn with_a_unique_index_the_fix_is_concurrently() {
        let schema = "CREATE MATERIALIZED VIEW user_counts AS SELECT account_id, count(*) AS n FROM users GROUP BY account_id;\nCREATE UNIQUE INDEX user_counts_key ON user_counts (account_id);\nCREATE MATERIALIZED VIEW partial AS SELECT 1 AS a;\nCREATE UNIQUE INDEX partial_key ON partial (a) WHERE a > 0;";
        assert_snapshot!(check_schema(RULE, schema, "refresh materialized view user_counts;"), @"
        error[refresh-materialized-view-non-concurrent] 1:1
          lock: REFRESH MATERIALIZED VIEW takes ACCESS EXCLUSIVE on user_counts: blocks reads and writes
          REFRESH MATERIALIZED VIEW user_counts holds ACCESS EXCLUSIVE on it while the view's whole query runs: every read of user_counts waits until it ends
          help: REFRESH MATERIALIZED VIEW CONCURRENTLY computes the new rows beside the old ones and updates them in place under EXCLUSIVE: reads go on (it may run in a transaction); user_counts_key is the unique index it needs
          fix:
            refresh materialized view CONCURRENTLY user_counts;
        ");
        // A partial unique index does not do.
        assert!(!check_schema(RULE, schema, "REFRESH MATERIALIZED VIEW partial;").contains("fix:"));
    }

    #[test]
    fn with_no_data_empties_it() {
        assert_snapshot!(check(RULE, "REFRESH MATERIALIZED VIEW order_totals WITH NO DATA;"), @r#"
        error[refresh-materialized-view-non-concurrent] 1:1
          lock: REFRESH MATERIALIZED VIEW takes ACCESS EXCLUSIVE on order_totals: blocks reads and writes
          REFRESH MATERIALIZED VIEW order_totals WITH NO DATA empties it: every read of order_totals fails ("has not been populated") until it is refreshed again
          help: refresh it with data (CONCURRENTLY, so reads go on) instead of emptying it
        "#);
    }

    #[test]
    fn concurrently_or_a_view_of_the_unit_is_fine() {
        assert_eq!(
            lines(
                RULE,
                "REFRESH MATERIALIZED VIEW CONCURRENTLY order_totals;\nCREATE MATERIALIZED VIEW m AS SELECT 1 AS a;\nREFRESH MATERIALIZED VIEW m;"
            ),
            Vec::<usize>::new()
        );
    }
}
