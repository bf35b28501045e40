//! `disabling-triggers`: `ALTER TABLE t DISABLE TRIGGER ALL` on an existing table also
//! switches off the internal triggers that enforce foreign keys. Until `ENABLE TRIGGER
//! ALL`, rows written to `t` (by the application too, outside a transaction) are not
//! checked against `t`'s foreign keys, and deletes from `t` neither cascade nor fail for
//! the rows referencing them; `ENABLE` checks nothing afterwards, so the damage stays.
//!
//! Not flagged: the same transaction enables them again before any write to `t` that a
//! foreign key would check (no one else can write to `t` meanwhile: the statement holds
//! SHARE ROW EXCLUSIVE); an UPDATE of counters or flags only (no key-like column set:
//! `id`, `*_id`, `*Id`, `*uuid`) changes nothing a foreign key checks.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::{alter_existing_table, alter_table_cmds, later_in_transaction};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DisablingTriggers,
    check,
};

/// Whether a column's name says it holds a key (`id`, `user_id`, `userId`, `owner_uuid`):
/// what a foreign key checks or a referencing row points at.
fn key_like(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    c == "id" || c.ends_with("_id") || column.ends_with("Id") || c.ends_with("uuid")
}

/// The table a statement writes rows to in a way foreign keys would check (INSERT,
/// DELETE, MERGE, COPY FROM; an UPDATE that sets a key-like column: one that only
/// changes counters or flags is checked by no foreign key anyway).
fn written(node: &NodeEnum) -> Option<RelName> {
    let r = match node {
        NodeEnum::InsertStmt(i) => i.relation.as_ref(),
        NodeEnum::UpdateStmt(u) => {
            let sets_key = u
                .target_list
                .iter()
                .any(|t| matches!(&t.node, Some(NodeEnum::ResTarget(r)) if key_like(&r.name)));
            u.relation.as_ref().filter(|_| sets_key)
        }
        NodeEnum::DeleteStmt(d) => d.relation.as_ref(),
        NodeEnum::MergeStmt(m) => m.relation.as_ref(),
        NodeEnum::CopyStmt(c) if c.is_from => c.relation.as_ref(),
        _ => None,
    }?;
    Some(RelName::from_range_var(r))
}

/// Whether a statement enables every trigger of `table` again.
fn enables_all(node: &NodeEnum, table: &RelName) -> bool {
    alter_table_cmds(node).is_some_and(|(t, cmds)| {
        t.same_as(table)
            && cmds
                .iter()
                .any(|(s, _)| *s == AlterTableType::AtEnableTrigAll)
    })
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    if !cmds
        .iter()
        .any(|(s, _)| *s == AlterTableType::AtDisableTrigAll)
    {
        return Vec::new();
    }
    let mut wrote = false;
    for node in later_in_transaction(cx) {
        if enables_all(node, table) {
            if !wrote {
                return Vec::new();
            }
            break;
        }
        wrote |= written(node).is_some_and(|t| t.same_as(table));
    }
    let message = if wrote {
        format!(
            "DISABLE TRIGGER ALL on {table} switches off its foreign-key triggers: the rows \
             this transaction writes to {table} before ENABLE TRIGGER ALL are not checked \
             against its foreign keys, and ENABLE checks nothing afterwards"
        )
    } else {
        format!(
            "DISABLE TRIGGER ALL on {table} switches off its foreign-key triggers (and every \
             user trigger) until ENABLE TRIGGER ALL: rows written to {table} meanwhile are not \
             checked against its foreign keys, deletes do not reach the rows referencing \
             them, and ENABLE checks nothing afterwards"
        )
    };
    vec![
        Violation::new(message)
            .help(
                "keep the foreign keys checked: disable only the triggers you must (DISABLE \
                 TRIGGER USER, or one trigger by name); to load many rows fast, drop the \
                 foreign key and add it back NOT VALID, then VALIDATE CONSTRAINT, which checks \
                 every row",
            )
            .lock(lock),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "disabling-triggers";

    #[test]
    fn disabled_and_never_enabled() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders DISABLE TRIGGER ALL;"), @"
        error[disabling-triggers] 1:1
          lock: ALTER TABLE takes SHARE ROW EXCLUSIVE on orders: blocks writes
          DISABLE TRIGGER ALL on orders switches off its foreign-key triggers (and every user trigger) until ENABLE TRIGGER ALL: rows written to orders meanwhile are not checked against its foreign keys, deletes do not reach the rows referencing them, and ENABLE checks nothing afterwards
          help: keep the foreign keys checked: disable only the triggers you must (DISABLE TRIGGER USER, or one trigger by name); to load many rows fast, drop the foreign key and add it back NOT VALID, then VALIDATE CONSTRAINT, which checks every row
        ");
    }

    #[test]
    fn rows_written_while_disabled() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders DISABLE TRIGGER ALL;\nINSERT INTO orders (user_id) SELECT id FROM users;\nALTER TABLE orders ENABLE TRIGGER ALL;\nCOMMIT;"), @"
        error[disabling-triggers] 2:1
          lock: ALTER TABLE takes SHARE ROW EXCLUSIVE on orders: blocks writes
          DISABLE TRIGGER ALL on orders switches off its foreign-key triggers: the rows this transaction writes to orders before ENABLE TRIGGER ALL are not checked against its foreign keys, and ENABLE checks nothing afterwards
          help: keep the foreign keys checked: disable only the triggers you must (DISABLE TRIGGER USER, or one trigger by name); to load many rows fast, drop the foreign key and add it back NOT VALID, then VALIDATE CONSTRAINT, which checks every row
        ");
    }

    #[test]
    fn enabled_again_before_any_write_or_user_triggers_only() {
        for sql in [
            "BEGIN;\nALTER TABLE orders DISABLE TRIGGER ALL;\nALTER TABLE orders ENABLE TRIGGER ALL;\nCOMMIT;",
            "BEGIN;\nALTER TABLE orders DISABLE TRIGGER ALL;\nINSERT INTO users (name) VALUES ('x');\nALTER TABLE orders ENABLE TRIGGER ALL;\nCOMMIT;",
            // Counters only (Lemmy's bulk aggregate updates).
            "BEGIN;\nALTER TABLE post DISABLE TRIGGER ALL;\nUPDATE post SET score = pa.score, upvotes = pa.upvotes FROM post_aggregates pa WHERE pa.post_id = post.id;\nALTER TABLE post ENABLE TRIGGER ALL;\nCOMMIT;",
            "ALTER TABLE orders DISABLE TRIGGER USER;",
            "ALTER TABLE orders DISABLE TRIGGER orders_touch;",
            "CREATE TABLE t (a int);\nALTER TABLE t DISABLE TRIGGER ALL;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
        // A key set while they are off.
        assert_eq!(
            lines(
                RULE,
                "BEGIN;\nALTER TABLE post DISABLE TRIGGER ALL;\nUPDATE post SET community_id = 1 WHERE id = 2;\nALTER TABLE post ENABLE TRIGGER ALL;\nCOMMIT;"
            ),
            [2]
        );
        // Enabled only after COMMIT: others wrote meanwhile.
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE orders DISABLE TRIGGER ALL;\nALTER TABLE orders ENABLE TRIGGER ALL;"
            ),
            [1]
        );
    }
}
