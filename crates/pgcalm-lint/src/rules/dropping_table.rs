//! `dropping-table`: `DROP TABLE` of a table that existed before the unit. The drop is a
//! brief ACCESS EXCLUSIVE, but application code already running that still uses the
//! table fails, and the data is gone.
//!
//! A table created again under its name later in the same transaction (or a table renamed
//! to it) is there when the transaction commits: code that queries it keeps working. One
//! finding per statement.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{LockTarget, RelName};
use crate::rule_id::RuleId;
use crate::rules::later_in_transaction;
use crate::rules::recipe::and_list;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DroppingTable,
    check,
};

/// The table a statement creates under a name (CREATE TABLE, CREATE TABLE AS, a rename).
fn creates(node: &NodeEnum) -> Option<RelName> {
    match node {
        NodeEnum::CreateStmt(c) => c.relation.as_ref().map(RelName::from_range_var),
        NodeEnum::CreateTableAsStmt(c) => c
            .into
            .as_ref()
            .and_then(|i| i.rel.as_ref())
            .map(RelName::from_range_var),
        NodeEnum::RenameStmt(r) if r.rename_type == ObjectType::ObjectTable as i32 => {
            r.relation.as_ref().map(|old| RelName {
                schema: (!old.schemaname.is_empty()).then(|| old.schemaname.clone()),
                name: r.newname.clone(),
            })
        }
        _ => None,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::DropStmt(d) = cx.node else {
        return Vec::new();
    };
    if d.remove_type != ObjectType::ObjectTable as i32 {
        return Vec::new();
    }
    let mut dropped: Vec<RelName> = d
        .objects
        .iter()
        .filter_map(|o| match &o.node {
            Some(NodeEnum::List(l)) => RelName::from_names(&l.items),
            _ => None,
        })
        .filter(|t| !cx.is_new_table(t))
        .collect();
    if dropped.is_empty() {
        return Vec::new();
    }
    for node in later_in_transaction(cx) {
        if let Some(created) = creates(node) {
            dropped.retain(|t| !t.same_as(&created));
        }
        if dropped.is_empty() {
            return Vec::new();
        }
    }
    let list = and_list(&dropped.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    let mut v = Violation::new(format!(
        "DROP TABLE {list}: application code already running that still queries {list} \
         fails, and its rows are gone"
    ))
    .help(
        "first deploy code that no longer uses the table (and drop foreign keys to it \
         explicitly), then drop it and say so with `-- pgcalm:ignore dropping-table \
         <why it is unused>`",
    );
    if let Some(lock) = cx
        .existing_locks()
        .filter(|l| matches!(&l.target, LockTarget::Table(t) if dropped.contains(t)))
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

    const RULE: &str = "dropping-table";

    #[test]
    fn drop_an_existing_table() {
        assert_snapshot!(check(RULE, "DROP TABLE events;"), @"
        error[dropping-table] 1:1
          lock: DROP TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          DROP TABLE events: application code already running that still queries events fails, and its rows are gone
          help: first deploy code that no longer uses the table (and drop foreign keys to it explicitly), then drop it and say so with `-- pgcalm:ignore dropping-table <why it is unused>`
        ");
    }

    #[test]
    fn a_scratch_table_of_the_same_file() {
        assert_snapshot!(check(RULE, "CREATE TABLE tmp (a int);\nDROP TABLE tmp;"), @"ok");
    }

    #[test]
    fn dropped_and_created_again_in_one_transaction() {
        let sql = "BEGIN;\nDROP TABLE events;\nCREATE TABLE events (id bigint);\nCOMMIT;";
        assert_eq!(lines(RULE, sql), Vec::<usize>::new());
        let sql = "DROP TABLE events;\nCREATE TABLE events (id bigint);";
        assert_eq!(lines(RULE, sql), [1]);
    }

    #[test]
    fn one_finding_per_statement() {
        assert_snapshot!(check(RULE, "DROP TABLE events, sessions;"), @"
        error[dropping-table] 1:1
          lock: DROP TABLE takes ACCESS EXCLUSIVE on sessions: blocks reads and writes
          DROP TABLE events and sessions: application code already running that still queries events and sessions fails, and its rows are gone
          help: first deploy code that no longer uses the table (and drop foreign keys to it explicitly), then drop it and say so with `-- pgcalm:ignore dropping-table <why it is unused>`
        ");
    }
}
