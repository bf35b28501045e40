//! `unbatched-backfill`: an `UPDATE` or `DELETE` of an existing table over all its rows
//! in one statement: no WHERE, or a WHERE that only picks rows by NULL-ness, inequality or
//! a flag (`WHERE status IS NULL`), the usual shape of a backfill. One transaction then
//! locks every row it touches (concurrent updates of them wait), holds back vacuum and
//! replicas, and cannot be stopped halfway without losing all of it.
//!
//! A WHERE with a range, an equality or an IN list comparing a column with a value
//! (`id >= 1 AND id < 10001`, `id IN (SELECT ... LIMIT 1000)`, `tenant_id = 42`) counts
//! as a batch; one that is always true (`1 = 1`, `true`) does not. A migration tool's
//! one-row version table (`alembic_version`, `schema_migrations`, ...) is bookkeeping,
//! not a backfill. In a unit that runs in one transaction the batches cannot each commit:
//! the help says where the backfill goes instead, and there is no fix in place.

use pg_query::NodeEnum;
use pg_query::protobuf::{AExprKind, BoolExprType, SubLinkType};

use crate::engine::{Cx, Rule, Violation, deparse};
use crate::locks::RelName;
use crate::rule_id::RuleId;
use crate::rules::recipe::{
    BATCH, batches_comment, ctid_batch_condition, ctid_batches_comment, expr_sql,
    first_batch_condition, integer_id, outside_this_transaction, template,
};
use crate::rules::{ident, is_bookkeeping_table, rel};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::UnbatchedBackfill,
    check,
};

/// An expression that is (or contains) a constant, a parameter or a subquery: a bound.
fn is_value(n: Option<&pg_query::Node>) -> bool {
    match n.and_then(|n| n.node.as_ref()) {
        Some(
            NodeEnum::AConst(_) | NodeEnum::ParamRef(_) | NodeEnum::SubLink(_) | NodeEnum::List(_),
        ) => true,
        Some(NodeEnum::TypeCast(t)) => is_value(t.arg.as_deref()),
        Some(NodeEnum::FuncCall(_) | NodeEnum::AArrayExpr(_)) => true,
        Some(NodeEnum::AExpr(e)) => is_value(e.lexpr.as_deref()) && is_value(e.rexpr.as_deref()),
        _ => false,
    }
}

/// Whether an expression reads a column of the row (so comparing it with a value picks
/// rows; `1 = 1` picks all of them).
fn reads_a_column(n: Option<&pg_query::Node>) -> bool {
    match n.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::ColumnRef(_)) => true,
        Some(NodeEnum::TypeCast(t)) => reads_a_column(t.arg.as_deref()),
        Some(NodeEnum::AExpr(e)) => {
            reads_a_column(e.lexpr.as_deref()) || reads_a_column(e.rexpr.as_deref())
        }
        Some(NodeEnum::FuncCall(f)) => f.args.iter().any(|a| reads_a_column(Some(a))),
        Some(NodeEnum::CoalesceExpr(c)) => c.args.iter().any(|a| reads_a_column(Some(a))),
        Some(NodeEnum::RowExpr(r)) => r.args.iter().any(|a| reads_a_column(Some(a))),
        _ => false,
    }
}

/// Whether a WHERE condition limits the rows to a batch (a range or set of key values).
fn bounds_rows(n: &pg_query::Node) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::BoolExpr(b)) => match BoolExprType::try_from(b.boolop) {
            Ok(BoolExprType::AndExpr) => b.args.iter().any(bounds_rows),
            Ok(BoolExprType::OrExpr) => !b.args.is_empty() && b.args.iter().all(bounds_rows),
            _ => false,
        },
        Some(NodeEnum::AExpr(e)) => {
            let op = e.name.iter().find_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            });
            match AExprKind::try_from(e.kind) {
                Ok(AExprKind::AexprOp) => {
                    let (l, r) = (e.lexpr.as_deref(), e.rexpr.as_deref());
                    matches!(op, Some("<" | "<=" | ">" | ">=" | "="))
                        && ((is_value(l) && reads_a_column(r))
                            || (is_value(r) && reads_a_column(l)))
                }
                Ok(AExprKind::AexprOpAny | AExprKind::AexprIn) => {
                    op == Some("=") && reads_a_column(e.lexpr.as_deref())
                }
                Ok(AExprKind::AexprBetween | AExprKind::AexprBetweenSym) => {
                    reads_a_column(e.lexpr.as_deref())
                }
                _ => false,
            }
        }
        // col IN (SELECT ... LIMIT n)
        Some(NodeEnum::SubLink(s)) => {
            s.sub_link_type == SubLinkType::AnySublink as i32
                && matches!(s.subselect.as_deref().and_then(|q| q.node.as_ref()),
                    Some(NodeEnum::SelectStmt(q)) if q.limit_count.is_some())
        }
        _ => false,
    }
}

/// The statement restricted to one batch, with the comment that says how to loop it:
/// the first `id` range (`... AND id >= 1 AND id < 10001`) when lint knows the key is an
/// integer, else the next rows by physical row ([`ctid_batch`]).
fn batch_fix(cx: &Cx<'_>, table: &RelName) -> Option<String> {
    if integer_id(cx, table) {
        let sql = first_batch(cx.node, table)?;
        return Some(format!("{}\n{sql};", batches_comment()));
    }
    let sql = ctid_batch(cx.node)?;
    Some(format!("{}\n{sql};", ctid_batches_comment()))
}

/// The statement restricted to its next batch of rows by physical row, rows it has not
/// changed yet: a DELETE's are gone; an UPDATE's must then differ from what it sets, so
/// only an UPDATE setting constants has one (a value computed from the row or volatile
/// would never stop matching). None with FROM / USING (the batch would need the join).
fn ctid_batch(node: &NodeEnum) -> Option<String> {
    let from = |r: &pg_query::protobuf::RangeVar| {
        let t = rel(&RelName::from_range_var(r));
        match &r.alias {
            Some(a) => format!("{t} AS {}", ident(&a.aliasname)),
            None => t,
        }
    };
    let and = |a: Option<pg_query::Node>, b: Option<pg_query::Node>| match (a, b) {
        (Some(a), Some(b)) => Some(pg_query::Node {
            node: Some(NodeEnum::BoolExpr(Box::new(pg_query::protobuf::BoolExpr {
                boolop: BoolExprType::AndExpr as i32,
                args: vec![a, b],
                ..Default::default()
            }))),
        }),
        (a, b) => a.or(b),
    };
    let node = match node.clone() {
        NodeEnum::DeleteStmt(mut d) if d.using_clause.is_empty() => {
            let rows = d.where_clause.take().map(|w| *w);
            d.where_clause = Some(Box::new(ctid_batch_condition(
                &from(d.relation.as_ref()?),
                rows,
            )?));
            NodeEnum::DeleteStmt(d)
        }
        NodeEnum::UpdateStmt(mut u) if u.from_clause.is_empty() => {
            let mut changed = Vec::new();
            for t in &u.target_list {
                let Some(NodeEnum::ResTarget(t)) = &t.node else {
                    return None;
                };
                let value = t.val.as_deref()?;
                if !t.indirection.is_empty() || !is_constant(value) {
                    return None;
                }
                changed.push(format!(
                    "{} IS DISTINCT FROM ({})",
                    ident(&t.name),
                    expr_sql(value)
                ));
            }
            let left = match template(&format!("SELECT 1 WHERE {}", changed.join(" OR ")))? {
                NodeEnum::SelectStmt(s) => s.where_clause.map(|w| *w),
                _ => None,
            };
            let rows = and(u.where_clause.take().map(|w| *w), left);
            u.where_clause = Some(Box::new(ctid_batch_condition(
                &from(u.relation.as_ref()?),
                rows,
            )?));
            NodeEnum::UpdateStmt(u)
        }
        _ => return None,
    };
    deparse(node)
}

/// A constant (`'paid'`, `0`, `NULL`, `'x'::text`, `true`).
fn is_constant(expr: &pg_query::Node) -> bool {
    match &expr.node {
        Some(NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(is_constant),
        _ => false,
    }
}

/// The statement restricted to the first batch (`... AND id >= 1 AND id < 10001`).
fn first_batch(node: &NodeEnum, table: &RelName) -> Option<String> {
    // With a FROM/USING list, `id` alone would be ambiguous: qualify it.
    let (alias, joined) = match node {
        NodeEnum::UpdateStmt(u) => (
            u.relation.as_ref().and_then(|r| r.alias.as_ref()),
            !u.from_clause.is_empty(),
        ),
        NodeEnum::DeleteStmt(d) => (
            d.relation.as_ref().and_then(|r| r.alias.as_ref()),
            !d.using_clause.is_empty(),
        ),
        _ => return None,
    };
    let key = match (joined, alias) {
        (false, _) => "id".to_string(),
        (true, Some(a)) => format!("{}.id", ident(&a.aliasname)),
        (true, None) => format!("{}.id", ident(&table.name)),
    };
    let range = first_batch_condition(&key)?;
    let and = |w: Option<Box<pg_query::Node>>| -> Option<Box<pg_query::Node>> {
        Some(Box::new(match w {
            None => range.clone(),
            Some(w) => pg_query::Node {
                node: Some(NodeEnum::BoolExpr(Box::new(pg_query::protobuf::BoolExpr {
                    boolop: BoolExprType::AndExpr as i32,
                    args: vec![range.clone(), *w],
                    ..Default::default()
                }))),
            },
        }))
    };
    let node = match node.clone() {
        NodeEnum::UpdateStmt(mut u) => {
            u.where_clause = and(u.where_clause.take());
            NodeEnum::UpdateStmt(u)
        }
        NodeEnum::DeleteStmt(mut d) => {
            d.where_clause = and(d.where_clause.take());
            NodeEnum::DeleteStmt(d)
        }
        _ => return None,
    };
    deparse(node)
}

/// A `-- pgcalm:backfill` line among the comments above the statement.
fn has_backfill_directive(cx: &Cx<'_>) -> bool {
    cx.body.is_none()
        && cx.stmt.comments.iter().any(|r| {
            cx.source.get(r.clone()).is_some_and(|c| {
                let rest = c.trim_start().trim_start_matches('-').trim_start();
                rest.strip_prefix("pgcalm:backfill")
                    .is_some_and(|r| r.is_empty() || r.starts_with(char::is_whitespace))
            })
        })
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let (relation, where_clause) = match cx.node {
        NodeEnum::UpdateStmt(u) => (u.relation.as_ref(), u.where_clause.as_deref()),
        NodeEnum::DeleteStmt(d) => (d.relation.as_ref(), d.where_clause.as_deref()),
        _ => return Vec::new(),
    };
    let Some(table) = relation.map(RelName::from_range_var) else {
        return Vec::new();
    };
    if cx.is_new_table(&table)
        || is_bookkeeping_table(&table)
        || where_clause.is_some_and(bounds_rows)
    {
        return Vec::new();
    }
    let update = matches!(cx.node, NodeEnum::UpdateStmt(_));
    let place = outside_this_transaction(cx);
    // The pgcalm runner batches it (`-- pgcalm:backfill` above it, outside a transaction).
    if update && cx.is_migration() && place.is_none() && has_backfill_directive(cx) {
        return Vec::new();
    }
    let scope = if where_clause.is_some() {
        "every row its WHERE matches (no key range: possibly most of the table)"
    } else {
        "every row"
    };
    let mut help = format!(
        "change the rows in batches of about {BATCH} by primary key, each batch its own \
         transaction, outside the transaction of any schema change"
    );
    if let Some(place) = place {
        help.push_str(&format!(
            "; this file runs in one transaction, so its batches cannot commit one by one: \
             move the backfill to {place}, or to a job"
        ));
    }
    if update && cx.is_migration() && cx.body.is_none() {
        help.push_str(
            "; pgcalm does it for you: write `-- pgcalm:backfill batch_size=auto` on the line \
             above the UPDATE, in a `transaction:false` section, and `pgcalm migrate` runs it \
             in keyset batches, each committed with its progress, waiting while replicas lag",
        );
    }
    let mut v = Violation::new(format!(
        "{} on {table} changes {scope} in one transaction: each changed row stays locked until \
         it ends (concurrent updates of them wait), and vacuum and replicas fall behind",
        cx.locks.label
    ))
    .help(help);
    if place.is_none()
        && let Some(fix) = batch_fix(cx, &table)
    {
        v = v.fix(fix);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, check_schema, lines};

    const RULE: &str = "unbatched-backfill";

    #[test]
    fn update_without_where() {
        assert_snapshot!(check(RULE, "UPDATE orders SET state = 'paid';"), @"
        error[unbatched-backfill] 1:1
          lock: UPDATE takes ROW EXCLUSIVE on orders: blocks no reads or writes
          UPDATE on orders changes every row in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change
          fix:
            -- in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it changes none:
            UPDATE orders SET state = 'paid' WHERE ctid = ANY(ARRAY(SELECT ctid FROM orders WHERE state IS DISTINCT FROM 'paid' LIMIT 10000));
        ");
    }

    #[test]
    fn where_only_picks_nulls() {
        assert_snapshot!(check(RULE, "UPDATE users SET status = 'active' WHERE status IS NULL;"), @"
        error[unbatched-backfill] 1:1
          lock: UPDATE takes ROW EXCLUSIVE on users: blocks no reads or writes
          UPDATE on users changes every row its WHERE matches (no key range: possibly most of the table) in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change
          fix:
            -- in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it changes none:
            UPDATE users SET status = 'active' WHERE ctid = ANY(ARRAY(SELECT ctid FROM users WHERE status IS NULL AND status IS DISTINCT FROM 'active' LIMIT 10000));
        ");
    }

    #[test]
    fn delete_everything() {
        assert_snapshot!(check(RULE, "DELETE FROM events WHERE kind <> 'keep';"), @"
        error[unbatched-backfill] 1:1
          lock: DELETE takes ROW EXCLUSIVE on events: blocks no reads or writes
          DELETE on events changes every row its WHERE matches (no key range: possibly most of the table) in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change
          fix:
            -- in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it changes none:
            DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM events WHERE kind <> 'keep' LIMIT 10000));
        ");
    }

    #[test]
    fn batches_pass() {
        let sql = "UPDATE users SET status = 'a' WHERE id >= 1 AND id < 1001 AND status IS NULL;\n\
                   UPDATE users SET status = 'a' WHERE id BETWEEN 1 AND 1000;\n\
                   UPDATE orders SET state = 'p' WHERE id IN (SELECT id FROM orders WHERE state IS NULL LIMIT 1000);\n\
                   UPDATE orders SET state = 'p' WHERE id = ANY($1);\n\
                   DELETE FROM sessions WHERE user_id = 42;\n\
                   UPDATE orders SET user_email = users.email FROM users WHERE users.id = orders.user_id AND orders.id < 5001;";
        assert_snapshot!(check(RULE, sql), @"ok");
    }

    #[test]
    fn a_join_condition_alone_is_not_a_batch() {
        assert_snapshot!(check(RULE, "UPDATE orders SET user_email = users.email FROM users WHERE users.id = orders.user_id;"), @"
        error[unbatched-backfill] 1:1
          lock: UPDATE takes ROW EXCLUSIVE on orders: blocks no reads or writes
          UPDATE on orders changes every row its WHERE matches (no key range: possibly most of the table) in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change
        ");
    }

    #[test]
    fn a_known_integer_key_batches_by_range_and_anything_else_by_physical_row() {
        let schema = "CREATE TABLE orders (id bigint PRIMARY KEY, state text);\n\
                      CREATE TABLE accounts (id uuid PRIMARY KEY, state text, n int);";
        let fix = |sql: &str| {
            let out = check_schema(RULE, schema, sql);
            out.lines()
                .skip_while(|l| !l.trim_start().starts_with("fix:"))
                .skip(2)
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            fix("UPDATE orders SET state = 'paid';"),
            "UPDATE orders SET state = 'paid' WHERE id >= 1 AND id < 10001;"
        );
        assert_eq!(
            fix("UPDATE accounts AS a SET state = NULL, n = 0 WHERE a.state IS NOT NULL;"),
            "UPDATE accounts a SET state = NULL, n = 0 WHERE ctid = ANY(ARRAY(SELECT ctid FROM accounts a WHERE a.state IS NOT NULL AND (state IS DISTINCT FROM NULL OR n IS DISTINCT FROM 0) LIMIT 10000));"
        );
        // A value computed from the row, or volatile, never stops matching: no fix.
        for sql in [
            "UPDATE accounts SET n = n + 1;",
            "UPDATE accounts SET state = gen_random_uuid()::text;",
        ] {
            assert_eq!(fix(sql), "", "{sql}");
        }
    }

    #[test]
    fn new_tables_are_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE s (a int);\nUPDATE s SET a = 0;"), @"ok");
    }

    #[test]
    fn a_where_that_is_always_true_bounds_nothing() {
        for sql in [
            "UPDATE users SET a = 1 WHERE 1 = 1;",
            "UPDATE users SET a = 1 WHERE true;",
            "UPDATE users SET a = 1 WHERE 'x' = 'x' AND a IS NULL;",
            "DELETE FROM users WHERE 1 = 1;",
        ] {
            assert_eq!(lines(RULE, sql), [1], "{sql}");
        }
        assert_eq!(
            lines(RULE, "UPDATE users SET a = 1 WHERE 1 = 1 AND id < 1000;"),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_migration_tools_version_table_is_bookkeeping() {
        for sql in [
            "UPDATE alembic_version SET version_num = 'ae1027a6acf';",
            "DELETE FROM schema_migrations;",
            "UPDATE public.flyway_schema_history SET success = true;",
            "UPDATE \"__EFMigrationsHistory\" SET x = 1;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
    }

    #[test]
    fn the_runner_batches_an_update_under_a_backfill_directive() {
        let sql = "-- pgcalm:backfill batch_size=auto\nUPDATE orders SET state = 'paid';";
        assert_snapshot!(check_migration(RULE, sql, false), @"ok");
        // Without it, the recipe points to it.
        assert_snapshot!(check_migration(RULE, "UPDATE orders SET state = 'paid';", false), @"
        error[unbatched-backfill] 1:1
          lock: UPDATE takes ROW EXCLUSIVE on orders: blocks no reads or writes
          UPDATE on orders changes every row in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change; pgcalm does it for you: write `-- pgcalm:backfill batch_size=auto` on the line above the UPDATE, in a `transaction:false` section, and `pgcalm migrate` runs it in keyset batches, each committed with its progress, waiting while replicas lag
          fix:
            -- in batches of 10000 rows (the key's type is not known: by physical row), each batch its own transaction, until it changes none:
            UPDATE orders SET state = 'paid' WHERE ctid = ANY(ARRAY(SELECT ctid FROM orders WHERE state IS DISTINCT FROM 'paid' LIMIT 10000));
        ");
    }

    #[test]
    fn in_one_transaction_the_batches_need_their_own() {
        assert_snapshot!(check_migration(RULE, "UPDATE orders SET state = 'paid';", true), @"
        error[unbatched-backfill] 1:1
          lock: UPDATE takes ROW EXCLUSIVE on orders: blocks no reads or writes
          UPDATE on orders changes every row in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change; this file runs in one transaction, so its batches cannot commit one by one: move the backfill to a migration of its own whose section says `-- migrate:up transaction:false`, or to a job; pgcalm does it for you: write `-- pgcalm:backfill batch_size=auto` on the line above the UPDATE, in a `transaction:false` section, and `pgcalm migrate` runs it in keyset batches, each committed with its progress, waiting while replicas lag
        ");
    }
}
