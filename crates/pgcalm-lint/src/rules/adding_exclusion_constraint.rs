//! `adding-exclusion-constraint`: `ADD CONSTRAINT ... EXCLUDE` on an existing table. It
//! builds its index and checks every row under ACCESS EXCLUSIVE, and unlike CHECK and
//! foreign keys it cannot be added `NOT VALID`: there is no in-place safe way.

use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::added_constraint;
use crate::rules::alter_existing_table;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingExclusionConstraint,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    cmds.iter()
        .filter(|(t, _)| *t == AlterTableType::AtAddConstraint)
        .filter_map(|(_, cmd)| added_constraint(cmd))
        .filter(|c| c.contype == ConstrType::ConstrExclusion as i32)
        .map(|c| {
            let name = if c.conname.is_empty() {
                "EXCLUDE".to_string()
            } else {
                c.conname.clone()
            };
            Violation::new(format!(
                "ADD CONSTRAINT {name} builds an exclusion index over {table} and checks every \
                 row under ACCESS EXCLUSIVE: reads and writes wait until it ends (NOT VALID is \
                 not allowed for exclusion constraints)"
            ))
            .help(
                "no in-place safe way: create a new table with the constraint, copy the rows in \
                 batches while a trigger mirrors writes, then swap the tables in one short \
                 transaction; or enforce it in the application",
            )
            .lock(lock)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "adding-exclusion-constraint";

    #[test]
    fn exclusion_on_an_existing_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&);"), @"
        error[adding-exclusion-constraint] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on bookings: blocks reads and writes
          ADD CONSTRAINT no_overlap builds an exclusion index over bookings and checks every row under ACCESS EXCLUSIVE: reads and writes wait until it ends (NOT VALID is not allowed for exclusion constraints)
          help: no in-place safe way: create a new table with the constraint, copy the rows in batches while a trigger mirrors writes, then swap the tables in one short transaction; or enforce it in the application
        ");
    }

    #[test]
    fn on_a_new_table() {
        assert_snapshot!(check(RULE, "CREATE TABLE b (during tstzrange);\nALTER TABLE b ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&);"), @"ok");
    }
}
