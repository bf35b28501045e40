//! `dropping-column`: `ALTER TABLE ... DROP COLUMN` on an existing table. The drop is a
//! brief ACCESS EXCLUSIVE (the data stays until rewritten), but application instances
//! that still select or insert the column fail: ORMs list every column they know.

use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::rules::alter_existing_table;

/// The rule.
pub static RULE: Rule = Rule {
    name: "dropping-column",
    severity: Severity::Error,
    summary: "DROP COLUMN breaks application code that still uses the column",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let added_in_unit = |column: &str| {
        cx.state
            .table(&table)
            .and_then(|t| t.column(column))
            .is_some_and(|c| c.added_in_unit)
    };
    cmds.into_iter()
        .filter(|(t, cmd)| *t == AlterTableType::AtDropColumn && !added_in_unit(&cmd.name))
        .map(|(_, cmd)| {
            Violation::new(format!(
                "DROP COLUMN {} on {table}: application code already running that selects, \
                 inserts or updates {} fails (ORMs name every column they know)",
                cmd.name, cmd.name
            ))
            .help(
                "first deploy code that no longer uses the column (Rails ignored_columns, \
                 Django: remove the field), then drop it and say so with `-- pgcalm:ignore \
                 dropping-column <why it is unused>`",
            )
            .lock(lock)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "dropping-column";

    #[test]
    fn drop_on_an_existing_table() {
        assert_snapshot!(check(RULE, "ALTER TABLE users DROP COLUMN legacy_flag;"), @"
        error[dropping-column] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          DROP COLUMN legacy_flag on users: application code already running that selects, inserts or updates legacy_flag fails (ORMs name every column they know)
          help: first deploy code that no longer uses the column (Rails ignored_columns, Django: remove the field), then drop it and say so with `-- pgcalm:ignore dropping-column <why it is unused>`
        ");
    }

    #[test]
    fn ignored_with_a_reason() {
        assert_snapshot!(check(RULE, "-- pgcalm:ignore dropping-column unused since 2026.11\nALTER TABLE users DROP COLUMN legacy_flag;"), @"ok");
    }

    #[test]
    fn columns_added_in_the_unit_and_new_tables() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN tmp int;\nALTER TABLE users DROP COLUMN tmp;\nCREATE TABLE t (a int, b int);\nALTER TABLE t DROP COLUMN b;"), @"ok");
    }
}
