//! `dropping-default-on-not-null-column`: `ALTER COLUMN ... DROP DEFAULT` on a column
//! lint knows is NOT NULL (declared in the unit or the schema, SET NOT NULL earlier, or a
//! validated `CHECK (col IS NOT NULL)` from PostgreSQL 12). Code deployed before this
//! migration that inserts without naming the column relied on the default: from now on
//! its INSERTs fail with a not-null violation. The classic case is Prisma's required
//! column: `ADD COLUMN c ... NOT NULL DEFAULT x`, then `DROP DEFAULT` at once, so that no
//! running code (which does not know `c`) can insert any more.
//!
//! The lock is a brief ACCESS EXCLUSIVE; the hazard is the application's. A column whose
//! nullability lint does not know is left alone (an INSERT then stores NULL, which is no
//! failure), and so is one lint knows has no default.

use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::alter_existing_table;
use crate::rules::recipe::{and_list, column_def, declared_not_null};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DroppingDefaultOnNotNullColumn,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let known = cx.state.table(table);
    // Columns this statement adds or makes NOT NULL before dropping the default.
    let mut not_null_here: Vec<String> = Vec::new();
    let mut added_here: Vec<String> = Vec::new();
    let (mut dropped, mut added) = (Vec::new(), false);
    for (subtype, cmd) in cmds {
        match subtype {
            AlterTableType::AtAddColumn => {
                if let Some(col) = column_def(cmd) {
                    added_here.push(col.colname.clone());
                    if declared_not_null(col) {
                        not_null_here.push(col.colname.clone());
                    }
                }
            }
            AlterTableType::AtSetNotNull => not_null_here.push(cmd.name.clone()),
            AlterTableType::AtColumnDefault if cmd.def.is_none() => {
                let column = cmd.name.as_str();
                let info = known.and_then(|t| t.column(column));
                let not_null = not_null_here.iter().any(|c| c == column)
                    || cx.state.known_not_null(table, column, cx.pg());
                let has_no_default = !added_here.iter().any(|c| c == column)
                    && info.is_some_and(|c| c.default == Some(false));
                if not_null && !has_no_default {
                    added |= added_here.iter().any(|c| c == column)
                        || info.is_some_and(|c| c.added_in_unit);
                    dropped.push(cmd.name.clone());
                }
            }
            _ => {}
        }
    }
    if dropped.is_empty() {
        return Vec::new();
    }
    let list = and_list(&dropped);
    let why = if added {
        format!(
            "{list} was added by this migration with a default: code deployed before it does \
             not know {list}, so every INSERT it sends fails on NOT NULL once the default is gone"
        )
    } else {
        format!(
            "an INSERT that does not name {list} (code deployed before this migration, which \
             relied on the default) fails on NOT NULL from now on"
        )
    };
    vec![
        Violation::new(format!(
            "DROP DEFAULT on {table}.{list}, which is NOT NULL: {why}"
        ))
        .help(
            "keep the default until every running instance inserts the column itself \
                 (deploy that code first), then drop it in a later migration; if nothing \
                 inserts without it, say so with `-- pgcalm:ignore \
                 dropping-default-on-not-null-column <why>`",
        )
        .lock(lock),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_schema, lines};

    const RULE: &str = "dropping-default-on-not-null-column";

    #[test]
    fn prismas_required_column() {
        assert_snapshot!(check(RULE, "ALTER TABLE \"Post\" ADD COLUMN \"slug\" TEXT NOT NULL DEFAULT '';\nALTER TABLE \"Post\" ALTER COLUMN \"slug\" DROP DEFAULT;"), @"
        error[dropping-default-on-not-null-column] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on Post: blocks reads and writes
          DROP DEFAULT on Post.slug, which is NOT NULL: slug was added by this migration with a default: code deployed before it does not know slug, so every INSERT it sends fails on NOT NULL once the default is gone
          help: keep the default until every running instance inserts the column itself (deploy that code first), then drop it in a later migration; if nothing inserts without it, say so with `-- pgcalm:ignore dropping-default-on-not-null-column <why>`
        ");
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0, ALTER COLUMN c DROP DEFAULT;"
            ),
            [1]
        );
    }

    #[test]
    fn an_existing_not_null_column() {
        let schema = "CREATE TABLE users (id bigint PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), status text DEFAULT 'new');";
        assert_snapshot!(check_schema(RULE, schema, "ALTER TABLE users ALTER COLUMN created_at DROP DEFAULT;"), @"
        error[dropping-default-on-not-null-column] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          DROP DEFAULT on users.created_at, which is NOT NULL: an INSERT that does not name created_at (code deployed before this migration, which relied on the default) fails on NOT NULL from now on
          help: keep the default until every running instance inserts the column itself (deploy that code first), then drop it in a later migration; if nothing inserts without it, say so with `-- pgcalm:ignore dropping-default-on-not-null-column <why>`
        ");
        // Nullable: an INSERT without it stores NULL.
        assert_snapshot!(check_schema(RULE, schema, "ALTER TABLE users ALTER COLUMN status DROP DEFAULT;"), @"ok");
    }

    #[test]
    fn unknown_nullability_no_default_and_new_tables_are_left_alone() {
        for sql in [
            "ALTER TABLE users ALTER COLUMN status DROP DEFAULT;",
            "ALTER TABLE t ADD COLUMN c int NOT NULL;\nALTER TABLE t ALTER COLUMN c DROP DEFAULT;",
            "CREATE TABLE t (c int NOT NULL DEFAULT 0);\nALTER TABLE t ALTER COLUMN c DROP DEFAULT;",
            "ALTER TABLE t ALTER COLUMN c SET DEFAULT 0;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
        // SET NOT NULL earlier (or in the same statement) makes it known.
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE t ALTER COLUMN c SET NOT NULL, ALTER COLUMN c DROP DEFAULT;"
            ),
            [1]
        );
    }
}
