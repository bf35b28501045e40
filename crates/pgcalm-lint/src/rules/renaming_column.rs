//! `renaming-column`: `ALTER TABLE ... RENAME COLUMN` on an existing table. The rename
//! itself is a brief ACCESS EXCLUSIVE, but application code already running keeps
//! using the old name and fails until every instance runs the new code.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::{later_in_transaction, renamed_among};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::RenamingColumn,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::RenameStmt(r) = cx.node else {
        return Vec::new();
    };
    if r.rename_type != ObjectType::ObjectColumn as i32 {
        return Vec::new();
    }
    let Some(table) = r.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    // A table or column created earlier in the unit is not in use yet; running code
    // names a table renamed earlier in the unit by its old name, and already fails.
    let added_in_unit = cx.state.table(&table).is_some_and(|t| {
        t.created_in_unit
            || t.renamed_in_unit
            || t.column(&r.subname).is_some_and(|c| c.added_in_unit)
    });
    // Or renamed later in the same transaction: old code fails on it once that commits.
    if added_in_unit || renamed_among(later_in_transaction(cx), &table) {
        return Vec::new();
    }
    let mut v = Violation::new(format!(
        "RENAME COLUMN {} TO {} on {table}: application code already running still reads and \
         writes {} and fails until every instance is redeployed",
        r.subname, r.newname, r.subname
    ))
    .help(format!(
        "expand and contract: add {}, write both columns (trigger or code), backfill, move \
         readers to it, then drop {} in a later release",
        r.newname, r.subname
    ));
    if let Some(lock) = cx.existing_lock_on(&table) {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "renaming-column";

    #[test]
    fn a_table_renamed_earlier_in_the_unit_breaks_nothing_more() {
        let sql = "BEGIN;\nALTER TABLE user_ RENAME TO person;\nALTER TABLE person RENAME COLUMN name TO handle;\nALTER TABLE post RENAME COLUMN body TO text;\nCOMMIT;";
        assert_eq!(crate::rules::test_support::lines(RULE, sql), vec![4]);
        let sql = "BEGIN;\nALTER TABLE user_ RENAME COLUMN name TO handle;\nALTER TABLE user_ RENAME TO person;\nCOMMIT;";
        assert_eq!(
            crate::rules::test_support::lines(RULE, sql),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn rename_on_an_existing_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE users RENAME COLUMN name TO full_name;"), @"
        error[renaming-column] 1:1
          lock: ALTER ... RENAME takes ACCESS EXCLUSIVE on users: blocks reads and writes
          RENAME COLUMN name TO full_name on users: application code already running still reads and writes name and fails until every instance is redeployed
          help: expand and contract: add full_name, write both columns (trigger or code), backfill, move readers to it, then drop name in a later release
        ");
    }

    #[test]
    fn columns_added_in_the_unit_and_new_tables_are_fine() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN nick text;\nALTER TABLE users RENAME COLUMN nick TO nickname;\nCREATE TABLE t (a int);\nALTER TABLE t RENAME COLUMN a TO b;"), @"ok");
    }
}
