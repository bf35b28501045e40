//! `missing-lock-timeout`: in a plain SQL file, a statement that takes a lock blocking
//! reads or writes of an existing table with no effective `lock_timeout` set before it
//! in the session. While such a statement waits for its lock (behind one long query),
//! every later query on the table queues behind it: the outage lasts as long as the
//! wait, not as long as the statement.
//!
//! `SET LOCAL` outside a transaction block does nothing, and `lock_timeout = 0` means
//! no timeout, so neither counts. SHARE UPDATE EXCLUSIVE-only statements (CONCURRENTLY,
//! VALIDATE) block no reads or writes even while queued, so they need none; neither does
//! a lock the transaction already holds (an earlier statement of it took that mode, or
//! modes that keep out every lock this one would wait for). pgcalm migration files are
//! exempt: the runner sets lock_timeout for every statement.
//!
//! The fix puts `SET lock_timeout` before the statement, except where the statement,
//! once granted, still blocks for its whole duration (the lock table says it rewrites or
//! reads the whole table: a plain CREATE INDEX, a type change): a timeout bounds only the
//! wait, so that SQL would not be safe, and the help points to the statement's own hazard.

use pg_query::NodeEnum;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{Effect, RelationLock};
use crate::rule_id::RuleId;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::MissingLockTimeout,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if cx.is_migration() || cx.state.lock_timeout_set() {
        return Vec::new();
    }
    // A lock the transaction already holds (or one its held locks cover) is granted at
    // once: only the others can wait. A view whose base tables it holds in ACCESS
    // EXCLUSIVE has readers that queue behind the transaction anyway.
    let Some(lock) = cx
        .existing_locks()
        .filter(|l| {
            l.blocks().any()
                && !cx.state.already_holds(l)
                && !cx.state.readers_wait_anyway(&l.target)
        })
        .max_by_key(|l| l.mode)
    else {
        return Vec::new();
    };
    let set = if cx.state.in_transaction {
        "SET LOCAL lock_timeout = '2s';"
    } else {
        "SET lock_timeout = '2s';"
    };
    let v = Violation::new(format!(
        "{} waits for {} on {} with no lock_timeout: while it waits behind a long \
         query, {} of the table queue behind it",
        cx.locks.label,
        lock.mode,
        lock.target,
        lock.blocks()
    ))
    .lock(lock);
    // Once granted, a statement that rewrites or reads the whole table keeps blocking
    // until it ends: a lock_timeout before it is no safe form of it.
    if let Some(work) = long_work(cx, lock) {
        return vec![v.help(format!(
            "a lock_timeout would bound only the wait: once granted, {} keeps {} on {} \
             while it {work}, so {} stop until it ends. Make the statement itself \
             non-blocking first (lint's other findings on it say how), then set a short \
             lock_timeout ({}, retried on timeout) before whatever still waits for a lock \
             that blocks reads or writes",
            cx.locks.label,
            lock.mode,
            lock.target,
            lock.blocks(),
            set.trim_end_matches(';')
        ))];
    }
    vec![
        v.help(
            "set a short lock_timeout before it in the same session (and retry on \
             timeout), so a long-running query delays the migration, not the application",
        )
        .fix(format!("{set}\n{};", cx.sql())),
    ]
}

/// What the statement does for its whole duration under `lock`, when the lock table
/// says it rewrites or reads the whole table: `builds the index`, `rewrites users`,
/// `reads the whole of users (unless ...)`.
fn long_work(cx: &Cx<'_>, lock: &RelationLock) -> Option<String> {
    let (effect, work) = if lock.rewrite.possible() {
        (lock.rewrite, format!("rewrites {}", lock.target))
    } else if lock.scan.possible() {
        let work = if matches!(cx.node, NodeEnum::IndexStmt(_)) {
            "builds the index".to_string()
        } else {
            format!("reads the whole of {}", lock.target)
        };
        (lock.scan, work)
    } else {
        return None;
    };
    Some(match effect {
        Effect::Unless(condition) => format!("{work} (unless {condition})"),
        _ => work,
    })
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, lines};

    const RULE: &str = "missing-lock-timeout";

    #[test]
    fn flags_a_blocking_statement_without_timeout() {
        assert_snapshot!(check(RULE, "ALTER TABLE users ADD COLUMN bio text;"), @"
        error[missing-lock-timeout] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ALTER TABLE waits for ACCESS EXCLUSIVE on users with no lock_timeout: while it waits behind a long query, reads and writes of the table queue behind it
          help: set a short lock_timeout before it in the same session (and retry on timeout), so a long-running query delays the migration, not the application
          fix:
            SET lock_timeout = '2s';
            ALTER TABLE users ADD COLUMN bio text;
        ");
    }

    #[test]
    fn a_statement_that_still_blocks_once_granted_gets_no_safe_sql() {
        // A lock_timeout bounds the wait only: the plain build still holds SHARE (writes
        // stop) for its whole duration, so "SET lock_timeout; CREATE INDEX" is not safe.
        assert_snapshot!(check(RULE, "CREATE INDEX large_email_email_idx ON large_email (email);"), @"
        error[missing-lock-timeout] 1:1
          lock: CREATE INDEX takes SHARE on large_email: blocks writes
          CREATE INDEX waits for SHARE on large_email with no lock_timeout: while it waits behind a long query, writes of the table queue behind it
          help: a lock_timeout would bound only the wait: once granted, CREATE INDEX keeps SHARE on large_email while it builds the index, so writes stop until it ends. Make the statement itself non-blocking first (lint's other findings on it say how), then set a short lock_timeout (SET lock_timeout = '2s', retried on timeout) before whatever still waits for a lock that blocks reads or writes
        ");
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE users ALTER COLUMN id TYPE bigint;\nCOMMIT;"), @"
        error[missing-lock-timeout] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on users: blocks reads and writes
          ALTER TABLE waits for ACCESS EXCLUSIVE on users with no lock_timeout: while it waits behind a long query, reads and writes of the table queue behind it
          help: a lock_timeout would bound only the wait: once granted, ALTER TABLE keeps ACCESS EXCLUSIVE on users while it rewrites users (unless the new type is binary-coercible from the old), so reads and writes stop until it ends. Make the statement itself non-blocking first (lint's other findings on it say how), then set a short lock_timeout (SET LOCAL lock_timeout = '2s', retried on timeout) before whatever still waits for a lock that blocks reads or writes
        ");
    }

    #[test]
    fn a_session_timeout_set_before_counts() {
        assert_snapshot!(check(RULE, "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN bio text;"), @"ok");
        assert_snapshot!(check(RULE, "BEGIN;\nSET LOCAL lock_timeout = '1s';\nALTER TABLE users ADD COLUMN bio text;\nCOMMIT;"), @"ok");
    }

    #[test]
    fn set_local_outside_a_transaction_zero_reset_and_rollback_do_not_count() {
        for sql in [
            "SET LOCAL lock_timeout = '2s';\nSELECT 1;\nDROP TABLE users;",
            "SET lock_timeout = 0;\nSELECT 1;\nDROP TABLE users;",
            "SET lock_timeout = '0ms';\nSELECT 1;\nDROP TABLE users;",
            "BEGIN;\nSET LOCAL lock_timeout = '2s';\nCOMMIT;\nDROP TABLE users;",
            "SET lock_timeout = '2s';\nRESET lock_timeout;\nDROP TABLE users;",
            "SET lock_timeout = '2s';\nRESET ALL;\nDROP TABLE users;",
            "BEGIN;\nSET lock_timeout = '2s';\nROLLBACK;\nDROP TABLE users;",
            "SELECT set_config('lock_timeout', '2s', true);\nSELECT 1;\nDROP TABLE users;",
        ] {
            assert_eq!(lines(RULE, sql), [sql.lines().count()], "{sql}");
        }
        for sql in [
            "SET lock_timeout = '2s';\nDROP TABLE users;",
            "SET lock_timeout TO 2000;\nDROP TABLE users;",
            "SELECT set_config('lock_timeout', '2s', false);\nDROP TABLE users;",
            "BEGIN;\nSET lock_timeout = '2s';\nCOMMIT;\nDROP TABLE users;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
    }

    #[test]
    fn share_update_exclusive_and_new_tables_need_none() {
        assert_snapshot!(check(RULE, "CREATE INDEX CONCURRENTLY i ON users (email);\nALTER TABLE users VALIDATE CONSTRAINT c;\nCREATE TABLE t (a int);\nCREATE INDEX ON t (a);\nALTER TABLE t ADD COLUMN b int;\nINSERT INTO users VALUES (1);"), @"ok");
    }

    #[test]
    fn migrations_are_exempt() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE users ADD COLUMN bio text;", true), @"ok");
    }

    #[test]
    fn a_lock_the_transaction_already_holds_cannot_wait() {
        // ACCESS EXCLUSIVE covers every later lock on users; SHARE (an index build) does
        // not cover the ACCESS EXCLUSIVE of the next ALTER on orders; COMMIT lets go.
        let sql = "BEGIN;\nALTER TABLE users ADD COLUMN a text;\nALTER TABLE users ADD COLUMN b text;\nCREATE INDEX i ON orders (a);\nALTER TABLE orders ADD COLUMN c int;\nALTER TABLE orders ADD COLUMN d int;\nCOMMIT;\nALTER TABLE users ADD COLUMN e text;";
        assert_eq!(lines(RULE, sql), [2, 4, 5, 8]);
        // The table of an index the unit knows.
        let sql = "CREATE INDEX CONCURRENTLY i ON users (a);\nBEGIN;\nDROP INDEX i;\nALTER TABLE users ADD COLUMN b text;\nCOMMIT;";
        assert_eq!(lines(RULE, sql), [3]);
        // Outside a transaction every statement waits for its own lock.
        let sql = "ALTER TABLE users ADD COLUMN a text;\nALTER TABLE users ADD COLUMN b text;";
        assert_eq!(lines(RULE, sql), [1, 2]);
        // `public.users` may be `users` (lint does not know the search_path).
        let sql = "BEGIN;\nALTER TABLE users ADD COLUMN a text;\nCREATE TRIGGER g AFTER UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION f();\nCOMMIT;";
        assert_eq!(lines(RULE, sql), [2]);
    }

    #[test]
    fn a_renamed_table_keeps_the_locks_the_transaction_holds_on_it() {
        // formbricks 20260330000000_rename_project_to_workspace: Prisma runs the file in
        // one implicit transaction; line 2 takes ACCESS EXCLUSIVE on "Project", which is
        // "Workspace" from then on (its known index too).
        let sql = "CREATE UNIQUE INDEX CONCURRENTLY \"Project_name_key\" ON \"Project\" (name);\n\
                   BEGIN;\n\
                   ALTER TABLE \"Project\" RENAME TO \"Workspace\";\n\
                   ALTER TABLE \"Workspace\" RENAME CONSTRAINT \"Project_pkey\" TO \"Workspace_pkey\";\n\
                   ALTER INDEX \"Project_name_key\" RENAME TO \"Workspace_name_key\";\n\
                   ALTER TABLE \"Workspace\" ADD COLUMN a int;\n\
                   ALTER TABLE \"Project\" ADD COLUMN b int;\n\
                   COMMIT;";
        // Line 7's "Project" is another table (or none) now.
        assert_eq!(lines(RULE, sql), [3, 7]);
        // SET SCHEMA moves the held lock with the table.
        let sql = "BEGIN;\nALTER TABLE t SET SCHEMA archive;\nALTER TABLE archive.t ADD COLUMN a int;\nALTER TABLE other.t ADD COLUMN a int;\nCOMMIT;";
        assert_eq!(lines(RULE, sql), [2, 4]);
        // A table created in the unit stays new under its new name.
        let sql = "CREATE TABLE a (id int);\nALTER TABLE a RENAME TO b;\nALTER TABLE b ADD COLUMN c int;\nALTER TABLE a ADD COLUMN c int;";
        assert_eq!(lines(RULE, sql), [4]);
    }

    #[test]
    fn a_view_whose_base_tables_the_transaction_holds_cannot_queue_readers() {
        // lemmy 2021-03-20-185321_move_matrix_id_to_person: every reader of the view
        // must lock person, which line 5 holds in ACCESS EXCLUSIVE: readers of the view
        // already queue behind the transaction, so DROP VIEW adds no queue. One held base
        // table is enough (lemmy 2020-08-03-000110:291, judged false in seed 20): a reader
        // locks every base table.
        let sql = "CREATE VIEW person_alias_1 AS SELECT * FROM person;\n\
                   CREATE VIEW both_v AS SELECT p.id FROM person p JOIN local_user u ON u.id = p.id;\n\
                   CREATE VIEW sub_v AS SELECT p.id FROM person p WHERE p.id IN (SELECT person_id FROM ban);\n\
                   BEGIN;\n\
                   ALTER TABLE person ADD COLUMN a text;\n\
                   DROP VIEW person_alias_1;\n\
                   DROP VIEW both_v;\n\
                   DROP VIEW sub_v;\n\
                   ALTER TABLE local_user ADD COLUMN b int;\n\
                   ALTER VIEW both_v RENAME TO b2;\n\
                   COMMIT;\n\
                   DROP VIEW person_alias_1;";
        // both_v also reads local_user, sub_v reads ban: both read person too. After
        // COMMIT nothing is held.
        assert_eq!(lines(RULE, sql), [5, 9, 12]);
    }

    #[test]
    fn a_self_referencing_foreign_key_locks_nothing_that_exists() {
        assert_snapshot!(check(RULE, "CREATE TABLE comments (id int PRIMARY KEY, parent_id int REFERENCES comments (id));\nCREATE TABLE public.replies (id int PRIMARY KEY, p int, FOREIGN KEY (p) REFERENCES replies (id));"), @"ok");
        assert_eq!(
            lines(
                RULE,
                "CREATE TABLE replies (id int PRIMARY KEY, c int REFERENCES comments (id));"
            ),
            [1]
        );
    }
}
