//! `breaking-replica-identity`: a change that leaves an existing table without a replica
//! identity. Logical replication (publications, and change-data capture such as Debezium
//! built on them) identifies an updated or deleted row by its replica identity: the
//! primary key unless `REPLICA IDENTITY` says otherwise. On a table published with
//! UPDATE and DELETE and no identity, every UPDATE and DELETE fails (55000: "cannot
//! update table ... because it does not have a replica identity and publishes updates").
//!
//! Flagged: dropping the primary key (the constraint lint knows is the key, or one named
//! `<...>_pkey`) unless the same statement or transaction adds one back or sets another
//! identity; `REPLICA IDENTITY NOTHING`; `REPLICA IDENTITY DEFAULT` on a table known to
//! have no primary key. A warning: it breaks only a published table, which the text
//! cannot tell.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::{
    added_constraint, alter_existing_table, alter_table_cmds, later_in_transaction,
};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::BreakingReplicaIdentity,
    check,
};

/// Whether a statement gives `table` a primary key or another replica identity.
fn restores_identity(node: &NodeEnum, table: &RelName) -> bool {
    let Some((t, cmds)) = alter_table_cmds(node) else {
        return false;
    };
    t.same_as(table)
        && cmds.iter().any(|(subtype, cmd)| match subtype {
            AlterTableType::AtAddConstraint => {
                added_constraint(cmd).is_some_and(|c| c.contype == ConstrType::ConstrPrimary as i32)
            }
            AlterTableType::AtReplicaIdentity => {
                identity(cmd).is_some_and(|i| i == "i" || i == "f")
            }
            _ => false,
        })
}

/// `REPLICA IDENTITY` kind: `d` default, `n` nothing, `f` full, `i` using index.
fn identity(cmd: &pg_query::protobuf::AlterTableCmd) -> Option<&str> {
    match cmd.def.as_deref()?.node.as_ref()? {
        NodeEnum::ReplicaIdentityStmt(r) => Some(r.identity_type.as_str()),
        _ => None,
    }
}

const HELP_KEY: &str = "if the table is published: first give it another identity (CREATE UNIQUE \
                        INDEX CONCURRENTLY on NOT NULL columns, then REPLICA IDENTITY USING INDEX, \
                        or REPLICA IDENTITY FULL), or add the new primary key in the same \
                        transaction as the drop (ADD PRIMARY KEY USING INDEX); if no publication \
                        includes it, say so with `-- pgcalm:ignore breaking-replica-identity \
                        <why>`";

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let known_pk = cx.state.table(table).and_then(|t| t.primary_key.clone());
    // FULL or USING INDEX set earlier in the unit: the key is not the identity.
    let other_identity = cx
        .state
        .table(table)
        .and_then(|t| t.replica_identity.as_deref())
        .is_some_and(|i| i == "f" || i == "i");
    let mut out = Vec::new();
    for (subtype, cmd) in cmds {
        match subtype {
            AlterTableType::AtDropConstraint => {
                let is_pk = match &known_pk {
                    Some(pk) => pk.as_deref() == Some(cmd.name.as_str()),
                    None => cmd.name.ends_with("_pkey"),
                };
                let restored = restores_identity(cx.node, table)
                    || later_in_transaction(cx)
                        .iter()
                        .any(|n| restores_identity(n, table));
                if is_pk && !restored && !other_identity {
                    out.push(
                        Violation::new(format!(
                            "DROP CONSTRAINT {} leaves {table} without a primary key: with the \
                             default replica identity, logical replication has no key for its \
                             rows, and if {table} is published every UPDATE and DELETE of it \
                             fails (55000) until it has one again",
                            cmd.name
                        ))
                        .help(HELP_KEY)
                        .lock(lock),
                    );
                }
            }
            AlterTableType::AtReplicaIdentity => {
                let message = match identity(cmd) {
                    Some("n") => format!(
                        "REPLICA IDENTITY NOTHING on {table}: if it is published, every UPDATE \
                         and DELETE of it fails (55000), and subscribers get no old row"
                    ),
                    Some("d") if known_pk == Some(None) => format!(
                        "REPLICA IDENTITY DEFAULT on {table}, which has no primary key: if it is \
                         published, every UPDATE and DELETE of it fails (55000)"
                    ),
                    _ => continue,
                };
                out.push(
                    Violation::new(message)
                        .help(
                            "keep an identity: REPLICA IDENTITY USING INDEX (a unique index on \
                             NOT NULL columns) or FULL (every column; heavier WAL and slower \
                             apply on subscribers)",
                        )
                        .lock(lock),
                );
            }
            _ => {}
        }
    }
    out.truncate(1);
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_schema, lines};

    const RULE: &str = "breaking-replica-identity";

    #[test]
    fn dropping_the_primary_key() {
        assert_snapshot!(check(RULE, "ALTER TABLE users DROP CONSTRAINT users_pkey;"), @"
        warning[breaking-replica-identity] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          DROP CONSTRAINT users_pkey leaves users without a primary key: with the default replica identity, logical replication has no key for its rows, and if users is published every UPDATE and DELETE of it fails (55000) until it has one again
          help: if the table is published: first give it another identity (CREATE UNIQUE INDEX CONCURRENTLY on NOT NULL columns, then REPLICA IDENTITY USING INDEX, or REPLICA IDENTITY FULL), or add the new primary key in the same transaction as the drop (ADD PRIMARY KEY USING INDEX); if no publication includes it, say so with `-- pgcalm:ignore breaking-replica-identity <why>`
        ");
    }

    #[test]
    fn replica_identity_nothing_or_default_without_a_key() {
        assert_snapshot!(check(RULE, "ALTER TABLE users REPLICA IDENTITY NOTHING;"), @"
        warning[breaking-replica-identity] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          REPLICA IDENTITY NOTHING on users: if it is published, every UPDATE and DELETE of it fails (55000), and subscribers get no old row
          help: keep an identity: REPLICA IDENTITY USING INDEX (a unique index on NOT NULL columns) or FULL (every column; heavier WAL and slower apply on subscribers)
        ");
        let schema = "CREATE TABLE sessions (token text NOT NULL, user_id bigint);";
        assert_snapshot!(check_schema(RULE, schema, "ALTER TABLE sessions REPLICA IDENTITY DEFAULT;"), @"
        warning[breaking-replica-identity] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on sessions: blocks reads and writes
          REPLICA IDENTITY DEFAULT on sessions, which has no primary key: if it is published, every UPDATE and DELETE of it fails (55000)
          help: keep an identity: REPLICA IDENTITY USING INDEX (a unique index on NOT NULL columns) or FULL (every column; heavier WAL and slower apply on subscribers)
        ");
    }

    #[test]
    fn a_key_put_back_or_another_identity_is_fine() {
        for sql in [
            // Prisma's way to change a key: drop and add in one statement.
            "ALTER TABLE \"Team\" DROP CONSTRAINT \"Team_pkey\", ADD CONSTRAINT \"Team_pkey\" PRIMARY KEY (\"id\", \"slug\");",
            "BEGIN;\nALTER TABLE users DROP CONSTRAINT users_pkey;\nALTER TABLE users ADD PRIMARY KEY USING INDEX users_id_email_key;\nCOMMIT;",
            "BEGIN;\nALTER TABLE users REPLICA IDENTITY FULL;\nALTER TABLE users DROP CONSTRAINT users_pkey;\nCOMMIT;",
            "ALTER TABLE users REPLICA IDENTITY FULL;",
            "ALTER TABLE users REPLICA IDENTITY USING INDEX users_email_key;",
            // Not the key; a table of the unit.
            "ALTER TABLE users DROP CONSTRAINT users_email_key;",
            "CREATE TABLE t (id int PRIMARY KEY);\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
        // After COMMIT the key comes too late.
        assert_eq!(
            lines(
                RULE,
                "BEGIN;\nALTER TABLE users DROP CONSTRAINT users_pkey;\nCOMMIT;\nALTER TABLE users ADD PRIMARY KEY (id);"
            ),
            [2]
        );
    }

    #[test]
    fn the_key_lint_knows_by_name() {
        let schema = "CREATE TABLE accounts (id bigint, CONSTRAINT accounts_key PRIMARY KEY (id));";
        assert_eq!(
            lines(RULE, "ALTER TABLE accounts DROP CONSTRAINT accounts_key;"),
            Vec::<usize>::new()
        );
        assert!(
            check_schema(
                RULE,
                schema,
                "ALTER TABLE accounts DROP CONSTRAINT accounts_key;"
            )
            .contains("without a primary key")
        );
    }
}
