//! `accumulated-locks`: a long statement (an index build, a validating scan, a rewrite,
//! a materialized view refresh) run in a transaction that already holds, from earlier
//! statements, locks that block reads or writes of existing tables. Locks last until
//! COMMIT, so every table altered earlier stays blocked for the whole of the long
//! statement: an `ALTER TABLE accounts ADD COLUMN` followed by `CREATE INDEX ON users`
//! stops every read of accounts while users' index builds.
//!
//! A statement is long when one of the rules about long work under a lock flags it (so
//! the two agree on what is long), or when it validates a constraint of an existing
//! table (but for one the transaction added: `constraint-missing-not-valid` reports
//! that). Only held locks that block more than the statement's own lock on the same
//! table are named. Data changes (UPDATE, DELETE) are `backfill-in-ddl-transaction`'s.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{Blocks, Effect, LockTarget, RelName, RelationLock};
use crate::rule_id::RuleId;
use crate::rules::alter_existing_table;
use crate::rules::recipe::and_list;
use crate::unit::UnitKind;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AccumulatedLocks,
    check,
};

/// The rules whose findings mean a statement works long under its lock (a build, a scan
/// of the table, a rewrite).
fn long_work_rules() -> [&'static Rule; 16] {
    use super::*;
    [
        &require_concurrent_index_creation::RULE,
        &constraint_missing_not_valid::RULE,
        &adding_unique_constraint::RULE,
        &adding_primary_key::RULE,
        &primary_key_using_index_nullable::RULE,
        &setting_not_null::RULE,
        &adding_field_with_volatile_default::RULE,
        &adding_serial_column::RULE,
        &adding_stored_generated_column::RULE,
        &changing_column_type::RULE,
        &adding_exclusion_constraint::RULE,
        &table_rewrite_command::RULE,
        &reindex_non_concurrent::RULE,
        &refresh_materialized_view_non_concurrent::RULE,
        &attaching_partition::RULE,
        &adding_domain_constraint::RULE,
    ]
}

/// What the statement does at length (`build`, `rewrite`, `scan`), or `None` when it is
/// quick.
fn long_work(cx: &Cx<'_>) -> Option<&'static str> {
    let validates = alter_existing_table(cx).is_some_and(|(_, cmds, _)| {
        cmds.iter()
            .any(|(t, _)| *t == AlterTableType::AtValidateConstraint)
    });
    // VALIDATE of a constraint this transaction added: constraint-missing-not-valid
    // reports that very hazard (the scan under the ADD's lock).
    if validates && !(super::constraint_missing_not_valid::RULE.check)(cx).is_empty() {
        return None;
    }
    if !validates
        && builds_on_filled_new_table(cx).is_none()
        && !long_work_rules().iter().any(|r| !(r.check)(cx).is_empty())
    {
        return None;
    }
    Some(
        if matches!(cx.node, NodeEnum::IndexStmt(_) | NodeEnum::ReindexStmt(_)) {
            "build"
        } else if cx.existing_locks().any(|l| l.rewrite != Effect::No) {
            "rewrite"
        } else {
            "scan"
        },
    )
}

/// The table the statement works on (an index's, an altered one).
fn work_table(cx: &Cx<'_>) -> Option<RelName> {
    match cx.node {
        NodeEnum::IndexStmt(i) => i.relation.as_ref().map(RelName::from_range_var),
        NodeEnum::AlterTableStmt(a) => a.relation.as_ref().map(RelName::from_range_var),
        _ => None,
    }
}

/// When the statement works on a table the unit's `CREATE TABLE IF NOT EXISTS` may have
/// created and nothing has filled since: that CREATE's locks. Either it created the
/// table, which is then empty and the work instant, or the table existed and the CREATE
/// took none of them: either way they last through no long work here.
fn empty_if_created<'a>(cx: &Cx<'a>) -> Option<&'a [RelationLock]> {
    let t = cx.state.table(&work_table(cx)?)?;
    if t.has_rows {
        return None;
    }
    t.if_created_locks.as_deref()
}

/// An index built without CONCURRENTLY on a table the unit created and then filled: it
/// blocks no one itself, but the build takes time.
fn builds_on_filled_new_table(cx: &Cx<'_>) -> Option<RelName> {
    match cx.node {
        NodeEnum::IndexStmt(i) if !i.concurrent => {
            let table = RelName::from_range_var(i.relation.as_ref()?);
            (cx.is_new_table(&table) && cx.state.has_rows(&table)).then_some(table)
        }
        _ => None,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if !cx.state.in_transaction || cx.state.held.is_empty() {
        return Vec::new();
    }
    // Per held relation, the strongest mode and what it blocks beyond this statement's
    // own lock on it.
    let mut held: Vec<(&RelationLock, Blocks)> = Vec::new();
    let empty_if_created = empty_if_created(cx);
    for h in cx
        .state
        .held
        .iter()
        .filter(|h| h.blocks().any())
        .filter(|h| {
            !empty_if_created.is_some_and(|locks| {
                locks
                    .iter()
                    .any(|l| l.mode == h.mode && l.target.same_as(&h.target))
            })
        })
    {
        if let Some(at) = held.iter().position(|(k, _)| k.target.same_as(&h.target)) {
            if h.mode > held[at].0.mode {
                held[at].0 = h;
            }
            held[at].1 = held[at].1.or(h.blocks());
        } else {
            held.push((h, h.blocks()));
        }
    }
    held.retain(|(h, blocks)| {
        let own = cx
            .locks
            .locks
            .iter()
            .filter(|l| l.target.same_as(&h.target))
            .fold(Blocks::default(), |b, l| b.or(l.blocks()));
        (blocks.reads && !own.reads) || (blocks.writes && !own.writes)
    });
    if held.is_empty() {
        return Vec::new();
    }
    let Some(work) = long_work(cx) else {
        return Vec::new();
    };
    // The relation the work is done on: the one scanned or rewritten (a foreign key's
    // referencing table, not the referenced one).
    let target = cx
        .existing_locks()
        .filter(|l| l.scan != Effect::No || l.rewrite != Effect::No)
        .max_by_key(|l| l.mode)
        .or_else(|| cx.strongest_existing_lock())
        .map(|l| target_name(cx, &l.target))
        .or_else(|| builds_on_filled_new_table(cx).map(|t| t.to_string()))
        .unwrap_or_default();
    let doing = match work {
        "build" => format!("builds its index on {target}"),
        "rewrite" => format!("rewrites {target}"),
        _ => format!("reads all of {target}"),
    };
    // `ACCESS EXCLUSIVE on accounts and orders and SHARE on users`, strongest first, and
    // `reads and writes of accounts and orders, writes of users`.
    held.sort_by_key(|(h, _)| std::cmp::Reverse(h.mode));
    let mut by_mode: Vec<(String, Vec<String>)> = Vec::new();
    let mut by_blocks: Vec<(Blocks, Vec<String>)> = Vec::new();
    // The tables of indexes dropped earlier that lint cannot name: one entry for them all.
    let unknown_tables: Vec<String> = held
        .iter()
        .filter_map(|(h, _)| match &h.target {
            LockTarget::TableOfIndex(i) if !cx.state.indexes.contains_key(&i.name) => {
                Some(i.to_string())
            }
            _ => None,
        })
        .collect();
    let mut named: Vec<String> = Vec::new();
    for (h, blocks) in &held {
        // Each relation once, under its strongest mode (an index's table may be named
        // through several of its indexes).
        let name = match &h.target {
            LockTarget::TableOfIndex(i)
                if unknown_tables.len() > 1 && unknown_tables.contains(&i.to_string()) =>
            {
                format!("the tables of indexes {}", few(&unknown_tables))
            }
            t => target_name(cx, t),
        };
        if named.contains(&name) {
            continue;
        }
        named.push(name.clone());
        let mode = h.mode.to_string();
        match by_mode.iter_mut().find(|(m, _)| *m == mode) {
            Some((_, names)) => names.push(name.clone()),
            None => by_mode.push((mode, vec![name.clone()])),
        }
        match by_blocks.iter_mut().find(|(b, _)| b == blocks) {
            Some((_, names)) => names.push(name),
            None => by_blocks.push((*blocks, vec![name])),
        }
    }
    let held_text = and_list(
        &by_mode
            .iter()
            .map(|(mode, names)| format!("{mode} on {}", few(names)))
            .collect::<Vec<_>>(),
    );
    let waits = by_blocks
        .iter()
        .map(|(blocks, names)| format!("{blocks} of {}", few(names)))
        .collect::<Vec<_>>()
        .join(", ");
    let help = match cx.kind {
        UnitKind::Migration { .. } => {
            "commit the earlier statements first: put this one in a migration of its own (an \
             index as CREATE INDEX CONCURRENTLY under `-- migrate:up transaction:false`), so \
             no table stays locked while it works"
        }
        UnitKind::PlainSql => {
            "commit the earlier statements before it (COMMIT, then this one in a transaction of \
             its own; an index as CREATE INDEX CONCURRENTLY outside any), so no table stays \
             locked while it works"
        }
    };
    vec![
        Violation::new(format!(
            "{} {doing} while this transaction holds, from earlier statements, {held_text}: \
             {waits} wait for the whole {work}, until COMMIT",
            cx.locks.label
        ))
        .help(help)
        .lock(held[0].0),
    ]
}

/// At most five names, then how many more.
fn few(names: &[String]) -> String {
    const SHOWN: usize = 5;
    if names.len() <= SHOWN + 1 {
        return and_list(names);
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

/// A held lock's relation by name (an index's table, when the unit knows it).
fn target_name(cx: &Cx<'_>, target: &LockTarget) -> String {
    match target {
        LockTarget::TableOfIndex(i) => cx
            .state
            .indexes
            .get(&i.name)
            .map(|idx| idx.table.to_string())
            .unwrap_or_else(|| target.to_string()),
        t => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, lines};

    const RULE: &str = "accumulated-locks";

    #[test]
    fn an_index_build_after_alters_in_one_transaction() {
        assert_snapshot!(check(RULE, "SET lock_timeout = '2s';\nBEGIN;\nALTER TABLE accounts ADD COLUMN plan text;\nALTER TABLE orders ADD COLUMN note2 text;\nCREATE INDEX users_email_idx ON users (email);\nCOMMIT;"), @"
        error[accumulated-locks] 5:1
          lock: CREATE INDEX takes ACCESS EXCLUSIVE on accounts: blocks reads and writes
          CREATE INDEX builds its index on users while this transaction holds, from earlier statements, ACCESS EXCLUSIVE on accounts and orders: reads and writes of accounts and orders wait for the whole build, until COMMIT
          help: commit the earlier statements before it (COMMIT, then this one in a transaction of its own; an index as CREATE INDEX CONCURRENTLY outside any), so no table stays locked while it works
        ");
    }

    #[test]
    fn in_a_migration_a_rewrite_and_a_validate() {
        assert_snapshot!(check_migration(RULE, "CREATE INDEX orders_state_idx ON orders (state);\nALTER TABLE events ALTER COLUMN id TYPE bigint;\nALTER TABLE users VALIDATE CONSTRAINT users_account_fk;", true), @"
        error[accumulated-locks] 2:1
          lock: ALTER TABLE takes SHARE on orders: blocks writes
          ALTER TABLE rewrites events while this transaction holds, from earlier statements, SHARE on orders: writes of orders wait for the whole rewrite, until COMMIT
          help: commit the earlier statements first: put this one in a migration of its own (an index as CREATE INDEX CONCURRENTLY under `-- migrate:up transaction:false`), so no table stays locked while it works
        error[accumulated-locks] 3:1
          lock: ALTER TABLE ... VALIDATE CONSTRAINT takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ALTER TABLE ... VALIDATE CONSTRAINT reads all of users while this transaction holds, from earlier statements, ACCESS EXCLUSIVE on events and SHARE on orders: reads and writes of events, writes of orders wait for the whole scan, until COMMIT
          help: commit the earlier statements first: put this one in a migration of its own (an index as CREATE INDEX CONCURRENTLY under `-- migrate:up transaction:false`), so no table stays locked while it works
        ");
    }

    #[test]
    fn each_table_named_once_and_long_lists_cut_short() {
        let sql = "BEGIN;\nCREATE TABLE t (a int);\nALTER TABLE a1 ADD COLUMN c int;\nALTER TABLE a2 ADD COLUMN c int;\nALTER TABLE a3 ADD COLUMN c int;\nALTER TABLE a4 ADD COLUMN c int;\nALTER TABLE a5 ADD COLUMN c int;\nALTER TABLE a6 ADD COLUMN c int;\nALTER TABLE a7 ADD COLUMN c int;\nALTER TABLE public.a1 ADD COLUMN d int;\nALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\nCOMMIT;";
        assert_snapshot!(check(RULE, sql), @"
        error[accumulated-locks] 11:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on a1: blocks reads and writes
          ALTER TABLE reads all of orders while this transaction holds, from earlier statements, ACCESS EXCLUSIVE on a1, a2, a3, a4, a5 and 2 more: reads and writes of a1, a2, a3, a4, a5 and 2 more wait for the whole scan, until COMMIT
          help: commit the earlier statements before it (COMMIT, then this one in a transaction of its own; an index as CREATE INDEX CONCURRENTLY outside any), so no table stays locked while it works
        ");
    }

    #[test]
    fn the_unknown_tables_of_dropped_indexes_are_named_together() {
        let sql = "BEGIN;\nDROP INDEX idx_post_a;\nDROP INDEX idx_post_b;\nDROP INDEX idx_post_c;\nCREATE INDEX idx_post_d ON post (d);\nCOMMIT;";
        assert_snapshot!(check(RULE, sql), @"
        error[accumulated-locks] 5:1
          lock: CREATE INDEX takes ACCESS EXCLUSIVE on the table of index idx_post_a: blocks reads and writes
          CREATE INDEX builds its index on post while this transaction holds, from earlier statements, ACCESS EXCLUSIVE on the tables of indexes idx_post_a, idx_post_b and idx_post_c: reads and writes of the tables of indexes idx_post_a, idx_post_b and idx_post_c wait for the whole build, until COMMIT
          help: commit the earlier statements before it (COMMIT, then this one in a transaction of its own; an index as CREATE INDEX CONCURRENTLY outside any), so no table stays locked while it works
        ");
    }

    #[test]
    fn same_table_reads_stop_too() {
        assert_eq!(
            lines(
                RULE,
                "BEGIN;\nALTER TABLE users ADD COLUMN bio text;\nCREATE INDEX users_bio_idx ON users (bio);\nCOMMIT;"
            ),
            [3]
        );
    }

    #[test]
    fn quick_statements_own_locks_new_tables_and_autocommit_are_fine() {
        for sql in [
            // Quick statements after DDL.
            "BEGIN;\nALTER TABLE users ADD COLUMN bio text;\nALTER TABLE accounts ADD COLUMN plan text;\nCOMMIT;",
            // The held lock blocks nothing the statement's own does not.
            "BEGIN;\nCREATE INDEX a ON users (email);\nCREATE INDEX b ON users (name);\nCOMMIT;",
            "BEGIN;\nALTER TABLE users ADD COLUMN bio text;\nALTER TABLE users ALTER COLUMN name TYPE text;\nCOMMIT;",
            // New tables lock nothing anyone waits for.
            "BEGIN;\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\nCREATE INDEX users_email_idx ON users (email);\nCOMMIT;",
            // Each statement its own transaction.
            "ALTER TABLE accounts ADD COLUMN plan text;\nCREATE INDEX users_email_idx ON users (email);",
            // After COMMIT nothing is held.
            "BEGIN;\nALTER TABLE accounts ADD COLUMN plan text;\nCOMMIT;\nBEGIN;\nCREATE INDEX users_email_idx ON users (email);\nCOMMIT;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
    }
    #[test]
    fn an_index_on_a_table_the_transaction_created_and_left_empty_is_instant() {
        // rust-lang/crates.io 2026-06-05-120000-0000_create_reverse_dependencies: the
        // foreign keys lock crates and versions only if the table is created, and then
        // it is empty, so its index builds take no time.
        let create = "CREATE TABLE IF NOT EXISTS rd (a integer NOT NULL REFERENCES crates (id), b integer REFERENCES versions (id));";
        for sql in [
            format!("BEGIN;\n{create}\nCREATE INDEX IF NOT EXISTS rd_a ON rd (a);\nCREATE INDEX rd_b ON rd (b);\nCOMMIT;"),
            "BEGIN;\nALTER TABLE users ADD COLUMN bio text;\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\nCOMMIT;".to_string(),
        ] {
            assert_eq!(lines(RULE, &sql), Vec::<usize>::new(), "{sql}");
        }
        // Locks an earlier statement took on other tables still last the whole build
        // when the table may be an existing one.
        assert_eq!(
            lines(
                RULE,
                &format!(
                    "BEGIN;\nALTER TABLE users ADD COLUMN bio text;\n{create}\nCREATE INDEX rd_a ON rd (a);\nCOMMIT;"
                )
            ),
            [4]
        );
        // Given rows, it is not empty any more: the build takes time.
        assert_eq!(
            lines(
                RULE,
                &format!(
                    "BEGIN;\n{create}\nINSERT INTO rd SELECT id, NULL FROM crates;\nCREATE INDEX rd_a ON rd (a);\nCOMMIT;"
                )
            ),
            [4]
        );
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE users ADD COLUMN bio text;\nCREATE TABLE t (a int);\nINSERT INTO t SELECT id FROM users;\nCREATE INDEX t_a ON t (a);\nCOMMIT;"), @"
        error[accumulated-locks] 5:1
          lock: CREATE INDEX takes ACCESS EXCLUSIVE on users: blocks reads and writes
          CREATE INDEX builds its index on t while this transaction holds, from earlier statements, ACCESS EXCLUSIVE on users: reads and writes of users wait for the whole build, until COMMIT
          help: commit the earlier statements before it (COMMIT, then this one in a transaction of its own; an index as CREATE INDEX CONCURRENTLY outside any), so no table stays locked while it works
        ");
    }
}
