//! `reindex-non-concurrent`: `REINDEX` without `CONCURRENTLY` on an existing index or
//! table. It holds SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each index
//! being rebuilt (reads that would use it wait) for the whole rebuild. `REINDEX ...
//! CONCURRENTLY` (PostgreSQL 12+) takes SHARE UPDATE EXCLUSIVE only.

use pg_query::NodeEnum;
use pg_query::protobuf::{ReindexObjectType, Token};

use crate::engine::{Cx, Rule, Violation};
use crate::locks::has_option;
use crate::rule_id::RuleId;
use crate::rules::recipe::outside_this_transaction;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::ReindexNonConcurrent,
    check,
};

/// `REINDEX INDEX x` -> `REINDEX INDEX CONCURRENTLY x`: after the object-kind keyword.
fn with_concurrently(cx: &Cx<'_>) -> Option<String> {
    let sql = cx.sql();
    let tokens = pg_query::scan_tokens(sql).ok()?;
    let kind = tokens.iter().find(|t| {
        [
            Token::Index,
            Token::Table,
            Token::Schema,
            Token::Database,
            Token::SystemP,
        ]
        .iter()
        .any(|k| t.token == *k as i32)
    })?;
    let at = kind.end as usize;
    Some(format!("{} CONCURRENTLY{};", &sql[..at], &sql[at..]))
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::ReindexStmt(r) = cx.node else {
        return Vec::new();
    };
    if has_option(&r.params, "concurrently") {
        return Vec::new();
    }
    let kind = ReindexObjectType::try_from(r.kind).unwrap_or(ReindexObjectType::Undefined);
    if kind == ReindexObjectType::ReindexObjectTable
        && r.relation
            .as_ref()
            .is_some_and(|t| cx.is_new_table(&crate::RelName::from_range_var(t)))
    {
        return Vec::new();
    }
    let Some(lock) = cx.strongest_existing_lock() else {
        return Vec::new();
    };
    let mut v = Violation::new(format!(
        "{} holds {} on {} for the whole rebuild: {} wait",
        cx.locks.label,
        lock.mode,
        lock.target,
        cx.locks.blocks()
    ))
    .lock(lock);
    if cx.pg().at_least(12) && kind != ReindexObjectType::ReindexObjectSystem {
        let mut help = String::from(
            "REINDEX ... CONCURRENTLY (outside a transaction block) builds the new index next \
             to the old one under SHARE UPDATE EXCLUSIVE only",
        );
        match (outside_this_transaction(cx), with_concurrently(cx)) {
            (Some(place), Some(sql)) => help.push_str(&format!(
                "; this file runs in one transaction, where CONCURRENTLY fails (25001): put \
                 `{sql}` in {place}"
            )),
            (None, Some(sql)) => v = v.fix(sql),
            _ => {}
        }
        v = v.help(help);
    } else {
        v = v.help(
            "CREATE INDEX CONCURRENTLY an identical index, DROP INDEX CONCURRENTLY the old \
                    one, and rename the new one (REINDEX CONCURRENTLY needs PostgreSQL 12)",
        );
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_pg};

    const RULE: &str = "reindex-non-concurrent";

    #[test]
    fn reindex_index_and_table() {
        assert_snapshot!(check(RULE, "REINDEX INDEX users_status_idx;\nREINDEX TABLE users;"), @"
        error[reindex-non-concurrent] 1:1
          lock: REINDEX takes ACCESS EXCLUSIVE on index users_status_idx: blocks reads and writes
          REINDEX holds ACCESS EXCLUSIVE on index users_status_idx for the whole rebuild: reads and writes wait
          help: REINDEX ... CONCURRENTLY (outside a transaction block) builds the new index next to the old one under SHARE UPDATE EXCLUSIVE only
          fix:
            REINDEX INDEX CONCURRENTLY users_status_idx;
        error[reindex-non-concurrent] 2:1
          lock: REINDEX takes ACCESS EXCLUSIVE on the indexes of users: blocks reads and writes
          REINDEX holds ACCESS EXCLUSIVE on the indexes of users for the whole rebuild: reads and writes wait
          help: REINDEX ... CONCURRENTLY (outside a transaction block) builds the new index next to the old one under SHARE UPDATE EXCLUSIVE only
          fix:
            REINDEX TABLE CONCURRENTLY users;
        ");
    }

    #[test]
    fn before_12_there_is_no_concurrently() {
        assert_snapshot!(check_pg(RULE, "REINDEX INDEX users_status_idx;", 11), @"
        error[reindex-non-concurrent] 1:1
          lock: REINDEX takes ACCESS EXCLUSIVE on index users_status_idx: blocks reads and writes
          REINDEX holds ACCESS EXCLUSIVE on index users_status_idx for the whole rebuild: reads and writes wait
          help: CREATE INDEX CONCURRENTLY an identical index, DROP INDEX CONCURRENTLY the old one, and rename the new one (REINDEX CONCURRENTLY needs PostgreSQL 12)
        ");
    }

    #[test]
    fn concurrently_is_fine() {
        assert_snapshot!(check(RULE, "REINDEX INDEX CONCURRENTLY users_status_idx;\nREINDEX (VERBOSE) TABLE CONCURRENTLY users;"), @"ok");
    }

    #[test]
    fn in_a_transaction_the_fix_goes_to_a_migration_of_its_own() {
        assert_snapshot!(check_migration(RULE, "REINDEX INDEX users_status_idx;", true), @"
        error[reindex-non-concurrent] 1:1
          lock: REINDEX takes ACCESS EXCLUSIVE on index users_status_idx: blocks reads and writes
          REINDEX holds ACCESS EXCLUSIVE on index users_status_idx for the whole rebuild: reads and writes wait
          help: REINDEX ... CONCURRENTLY (outside a transaction block) builds the new index next to the old one under SHARE UPDATE EXCLUSIVE only; this file runs in one transaction, where CONCURRENTLY fails (25001): put `REINDEX INDEX CONCURRENTLY users_status_idx;` in a migration of its own whose section says `-- migrate:up transaction:false`
        ");
    }
}
