//! `dropping-column`: `ALTER TABLE ... DROP COLUMN` on an existing table. The drop is a
//! brief ACCESS EXCLUSIVE (the data stays until rewritten), but application instances
//! that still select or insert the column fail: ORMs list every column they know.
//!
//! A column added back under its name in the same statement or later in the same
//! transaction (Prisma changes a type it cannot cast that way), or another column renamed
//! to its name there (the swap of expand and contract), is still there when the
//! transaction commits: not a breaking drop. One finding per statement.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::recipe::{and_list, column_def};
use crate::rules::{alter_existing_table, alter_table_cmds, later_in_transaction, renamed_among};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DroppingColumn,
    check,
};

/// The columns a statement adds to `table`, or renames another column of it to (the
/// swap of expand and contract: `RENAME COLUMN score_new TO score`).
fn added_to(node: &NodeEnum, table: &RelName) -> Vec<String> {
    if let NodeEnum::RenameStmt(r) = node
        && r.rename_type == pg_query::protobuf::ObjectType::ObjectColumn as i32
        && r.relation
            .as_ref()
            .is_some_and(|t| RelName::from_range_var(t).same_as(table))
    {
        return vec![r.newname.clone()];
    }
    alter_table_cmds(node)
        .filter(|(t, _)| t.same_as(table))
        .map(|(_, cmds)| {
            cmds.into_iter()
                .filter(|(t, _)| *t == AlterTableType::AtAddColumn)
                .filter_map(|(_, cmd)| column_def(cmd).map(|c| c.colname.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    // Renamed earlier in the unit: running code names the old table and already fails.
    if cx.state.table(table).is_some_and(|t| t.renamed_in_unit) {
        return Vec::new();
    }
    let added_in_unit = |column: &str| {
        cx.state
            .table(table)
            .and_then(|t| t.column(column))
            .is_some_and(|c| c.added_in_unit)
    };
    let mut dropped: Vec<String> = Vec::new();
    for (subtype, cmd) in cmds {
        match subtype {
            AlterTableType::AtDropColumn if !added_in_unit(&cmd.name) => {
                dropped.push(cmd.name.clone());
            }
            // Added back later in the same statement.
            AlterTableType::AtAddColumn => {
                if let Some(col) = column_def(cmd) {
                    dropped.retain(|d| *d != col.colname);
                }
            }
            _ => {}
        }
    }
    if dropped.is_empty() {
        return Vec::new();
    }
    let later = later_in_transaction(cx);
    // Renamed later in the same transaction: running code names the old table and fails
    // once it commits anyway.
    if renamed_among(later, table) {
        return Vec::new();
    }
    // Added back later in the same transaction.
    for node in later {
        let added = added_to(node, table);
        dropped.retain(|d| !added.contains(d));
        if dropped.is_empty() {
            return Vec::new();
        }
    }
    let list = and_list(&dropped);
    vec![
        Violation::new(format!(
            "DROP COLUMN {list} on {table}: application code already running that selects, \
             inserts or updates {list} fails (ORMs name every column they know)"
        ))
        .help(
            "first deploy code that no longer uses the column (Rails ignored_columns, \
             Django: remove the field), then drop it and say so with `-- pgcalm:ignore \
             dropping-column <why it is unused>`",
        )
        .lock(lock),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, lines};

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

    #[test]
    fn a_table_renamed_earlier_in_the_unit_breaks_nothing_more() {
        // lemmy split_user_table_2: `user_` renamed to `person`, then columns dropped from
        // `person`: code already running names `user_` and fails from the rename on.
        let sql = "BEGIN;\nALTER TABLE user_ RENAME TO person;\nALTER TABLE person DROP COLUMN email;\nCOMMIT;";
        assert_eq!(lines(RULE, sql), Vec::<usize>::new());
        // Before the rename in the same transaction too; a column of another table still
        // counts.
        let sql = "BEGIN;\nALTER TABLE user_ DROP COLUMN email;\nALTER TABLE user_ RENAME TO person;\nALTER TABLE post DROP COLUMN body;\nCOMMIT;";
        assert_eq!(lines(RULE, sql), vec![4]);
        // A swap: the table renamed into `users` is the one running code now reaches.
        let sql = "BEGIN;\nALTER TABLE users RENAME TO users_old;\nALTER TABLE users_new RENAME TO users;\nALTER TABLE users DROP COLUMN legacy;\nCOMMIT;";
        assert_eq!(lines(RULE, sql), vec![4]);
        // Renamed later in the same transaction (formbricks
        // 20260403000000_remove_environment_model:44 then :54), not in another one.
        let sql = "BEGIN;\nALTER TABLE \"ApiKeyEnvironment\" DROP COLUMN \"environmentId\";\nALTER TABLE \"ApiKeyEnvironment\" RENAME TO \"ApiKeyWorkspace\";\nCOMMIT;";
        assert_eq!(lines(RULE, sql), Vec::<usize>::new());
        let sql = "BEGIN;\nALTER TABLE a DROP COLUMN c;\nCOMMIT;\nALTER TABLE a RENAME TO b;";
        assert_eq!(lines(RULE, sql), vec![2]);
    }

    #[test]
    fn dropped_and_added_back_in_one_transaction() {
        for sql in [
            "ALTER TABLE users DROP COLUMN a, ADD COLUMN a text;",
            "BEGIN;\nALTER TABLE users DROP COLUMN a;\nALTER TABLE users ADD COLUMN a text;\nCOMMIT;",
            "ALTER TABLE \"User\" DROP COLUMN \"A\", ADD COLUMN \"A\" text;",
            // Expand and contract's swap: the new column takes the old one's name.
            "BEGIN;\nALTER TABLE users DROP COLUMN score;\nALTER TABLE users RENAME COLUMN score_new TO score;\nCOMMIT;",
            "DO $$\nBEGIN\n  ALTER TABLE users DROP COLUMN score;\n  ALTER TABLE users RENAME COLUMN score_new TO score;\nEND $$;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users ADD COLUMN a text;", true), @"ok");
        // In separate transactions, code naming it fails in between; another table's or
        // another column's add does not count.
        for (sql, want) in [
            (
                "ALTER TABLE users DROP COLUMN a;\nALTER TABLE users ADD COLUMN a text;",
                [1],
            ),
            (
                "BEGIN;\nALTER TABLE users DROP COLUMN a;\nCOMMIT;\nALTER TABLE users ADD COLUMN a text;",
                [2],
            ),
            (
                "BEGIN;\nALTER TABLE users DROP COLUMN a;\nALTER TABLE orders ADD COLUMN a text;\nCOMMIT;",
                [2],
            ),
            (
                "ALTER TABLE users DROP COLUMN a, ADD COLUMN \"A\" text;",
                [1],
            ),
        ] {
            assert_eq!(lines(RULE, sql), want, "{sql}");
        }
    }

    #[test]
    fn one_finding_per_statement() {
        assert_snapshot!(check(RULE, "ALTER TABLE users DROP COLUMN a, DROP COLUMN b;"), @"
        error[dropping-column] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          DROP COLUMN a and b on users: application code already running that selects, inserts or updates a and b fails (ORMs name every column they know)
          help: first deploy code that no longer uses the column (Rails ignored_columns, Django: remove the field), then drop it and say so with `-- pgcalm:ignore dropping-column <why it is unused>`
        ");
    }
}
