//! `concurrent-index-if-not-exists`: `CREATE INDEX CONCURRENTLY IF NOT EXISTS name` in a
//! plain SQL file. A concurrent build that failed or was interrupted leaves an INVALID
//! index of that name behind (never used by queries, yet kept up to date by every write;
//! a unique one still rejects duplicates). On the retry, IF NOT EXISTS sees the name and
//! skips with a notice: the migration succeeds and the index stays invalid.
//!
//! The fix drops any index of that name concurrently first (a valid one is rebuilt), then
//! builds it without IF NOT EXISTS. pgcalm's own runner drops such a leftover itself
//! before it builds (`-- migrate:up` files): not flagged there.

use pg_query::NodeEnum;
use pg_query::protobuf::Token;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::rel;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::ConcurrentIndexIfNotExists,
    check,
};

/// The statement without its `IF NOT EXISTS` (and the space after it).
fn without_if_not_exists(sql: &str) -> Option<String> {
    let tokens = pg_query::scan_tokens(sql).ok()?;
    let at = tokens.windows(3).position(|w| {
        w[0].token == Token::IfP as i32
            && w[1].token == Token::Not as i32
            && w[2].token == Token::Exists as i32
    })?;
    let (start, end) = (tokens[at].start as usize, tokens[at + 2].end as usize);
    let rest = sql[end..].trim_start();
    Some(format!("{}{rest}", &sql[..start]))
}

/// A `CREATE INDEX CONCURRENTLY` (with its `;`) as a fix writes it: one with `IF NOT
/// EXISTS` in a plain SQL file becomes a concurrent drop of any leftover and a build
/// without it.
pub(crate) fn concurrent_build(
    cx: &Cx<'_>,
    index: &pg_query::protobuf::IndexStmt,
    sql: String,
) -> String {
    if !index.if_not_exists || index.idxname.is_empty() || cx.is_migration() {
        return sql;
    }
    let (Some(table), Some(build)) = (
        index.relation.as_ref().map(RelName::from_range_var),
        without_if_not_exists(&sql),
    ) else {
        return sql;
    };
    let name = rel(&RelName {
        schema: table.schema,
        name: index.idxname.clone(),
    });
    format!("DROP INDEX CONCURRENTLY IF EXISTS {name};\n{build}")
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::IndexStmt(i) = cx.node else {
        return Vec::new();
    };
    if !i.concurrent || !i.if_not_exists || i.idxname.is_empty() || cx.is_migration() {
        return Vec::new();
    }
    let Some(table) = i.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    if cx.is_new_table(&table) {
        return Vec::new();
    }
    // The index lives in its table's schema.
    let index = rel(&RelName {
        schema: table.schema.clone(),
        name: i.idxname.clone(),
    });
    let mut v = Violation::new(format!(
        "IF NOT EXISTS skips the build when an index named {} exists, even the INVALID one a \
         failed or interrupted CREATE INDEX CONCURRENTLY leaves behind: the migration then \
         succeeds and queries never get a usable index",
        i.idxname
    ))
    .help(format!(
        "drop any leftover first and build without IF NOT EXISTS (find invalid indexes with \
         `SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid`; `DROP INDEX \
         CONCURRENTLY IF EXISTS {index}` removes one without blocking writes)"
    ));
    if !cx.state.in_transaction {
        v = v.fix(concurrent_build(cx, i, format!("{};", cx.sql())));
    }
    if let Some(lock) = cx.existing_lock_on(&table) {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, lines};

    const RULE: &str = "concurrent-index-if-not-exists";

    #[test]
    fn if_not_exists_on_a_concurrent_build() {
        assert_snapshot!(check(RULE, "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"User_email_key\" ON public.\"User\" (email);"), @r#"
        warning[concurrent-index-if-not-exists] 1:1
          lock: CREATE UNIQUE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on public.User: blocks no reads or writes
          IF NOT EXISTS skips the build when an index named User_email_key exists, even the INVALID one a failed or interrupted CREATE INDEX CONCURRENTLY leaves behind: the migration then succeeds and queries never get a usable index
          help: drop any leftover first and build without IF NOT EXISTS (find invalid indexes with `SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid`; `DROP INDEX CONCURRENTLY IF EXISTS public."User_email_key"` removes one without blocking writes)
          fix:
            DROP INDEX CONCURRENTLY IF EXISTS public."User_email_key";
            CREATE UNIQUE INDEX CONCURRENTLY "User_email_key" ON public."User" (email);
        "#);
    }

    #[test]
    fn pgcalm_migrations_plain_builds_and_new_tables_are_fine() {
        assert_snapshot!(check_migration(RULE, "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON users (email);", false), @"ok");
        assert_eq!(
            lines(
                RULE,
                "CREATE INDEX CONCURRENTLY i ON users (email);\nCREATE INDEX IF NOT EXISTS j ON users (name);\nCREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS k ON t (a);"
            ),
            Vec::<usize>::new()
        );
    }
}
