//! `truncating-table`: `TRUNCATE` of a table that existed before the unit. Its rows are
//! gone (new, empty files under ACCESS EXCLUSIVE: reads and writes wait meanwhile), and
//! what the application wrote to it is lost. With `CASCADE`, every table with a foreign
//! key to it is emptied too, recursively, though the statement does not name them.
//! A migration tool's bookkeeping table is not flagged.

use pg_query::NodeEnum;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{LockTarget, RelName};
use crate::rule_id::RuleId;
use crate::rules::is_bookkeeping_table;
use crate::rules::recipe::and_list;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::TruncatingTable,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::TruncateStmt(t) = cx.node else {
        return Vec::new();
    };
    let tables: Vec<RelName> = t
        .relations
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::RangeVar(r)) => Some(RelName::from_range_var(r)),
            _ => None,
        })
        .filter(|t| !cx.is_new_table(t) && !is_bookkeeping_table(t))
        .collect();
    if tables.is_empty() {
        return Vec::new();
    }
    let list = and_list(&tables.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    let it = if tables.len() == 1 { "it" } else { "them" };
    let mut message = format!(
        "TRUNCATE deletes every row of {list} under ACCESS EXCLUSIVE (reads and writes wait \
         meanwhile): the data is gone, and application code still writing to {it} loses its \
         writes"
    );
    let mut help = String::from(
        "delete only the rows that must go, in batches by primary key (each batch its own \
         transaction); if the table is truly unused, say so with `-- pgcalm:ignore \
         truncating-table <why nobody needs its rows>`",
    );
    if cx.locks.cascades {
        message.push_str(&format!(
            "; CASCADE also empties every table with a foreign key to {it}, recursively, \
             which the statement does not name"
        ));
        help.push_str(
            "; without CASCADE, TRUNCATE refuses a table other tables reference: name every \
             table to empty instead",
        );
    }
    let mut v = Violation::new(message).help(help);
    if let Some(lock) = cx
        .existing_locks()
        .filter(|l| matches!(&l.target, LockTarget::Table(t) if tables.contains(t)))
        .max_by_key(|l| l.mode)
    {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "truncating-table";

    #[test]
    fn truncate_an_existing_table() {
        assert_snapshot!(check(RULE, "TRUNCATE import_staging;"), @"
        error[truncating-table] 1:1
          lock: TRUNCATE takes ACCESS EXCLUSIVE on import_staging: blocks reads and writes
          TRUNCATE deletes every row of import_staging under ACCESS EXCLUSIVE (reads and writes wait meanwhile): the data is gone, and application code still writing to it loses its writes
          help: delete only the rows that must go, in batches by primary key (each batch its own transaction); if the table is truly unused, say so with `-- pgcalm:ignore truncating-table <why nobody needs its rows>`
        ");
    }

    #[test]
    fn cascade_reaches_tables_it_does_not_name() {
        assert_snapshot!(check(RULE, "TRUNCATE TABLE accounts, users CASCADE;"), @"
        error[truncating-table] 1:1
          lock: TRUNCATE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          TRUNCATE deletes every row of accounts and users under ACCESS EXCLUSIVE (reads and writes wait meanwhile): the data is gone, and application code still writing to them loses its writes; CASCADE also empties every table with a foreign key to them, recursively, which the statement does not name
          help: delete only the rows that must go, in batches by primary key (each batch its own transaction); if the table is truly unused, say so with `-- pgcalm:ignore truncating-table <why nobody needs its rows>`; without CASCADE, TRUNCATE refuses a table other tables reference: name every table to empty instead
        ");
    }

    #[test]
    fn a_new_table_or_a_version_table_is_fine() {
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE scratch (a int);\nINSERT INTO scratch VALUES (1);\nTRUNCATE scratch;"
            ),
            Vec::<usize>::new()
        );
        assert_eq!(
            lines(RULE, "TRUNCATE schema_migrations;"),
            Vec::<usize>::new()
        );
    }
}
