//! `unbatched-backfill`: an `UPDATE` or `DELETE` of an existing table over all its rows
//! in one statement: no WHERE, or a WHERE that only picks rows by NULL-ness, inequality or
//! a flag (`WHERE status IS NULL`), the usual shape of a backfill. One transaction then
//! locks every row it touches (concurrent updates of them wait), holds back vacuum and
//! replicas, and cannot be stopped halfway without losing all of it.
//!
//! A WHERE with a range, an equality or an IN list on a value (`id >= 1 AND id < 10001`,
//! `id IN (SELECT ... LIMIT 1000)`, `tenant_id = 42`) counts as a batch.

use pg_query::NodeEnum;
use pg_query::protobuf::{AExprKind, BoolExprType, SubLinkType};

use crate::engine::{Cx, Rule, Violation, deparse};
use crate::finding::Severity;
use crate::locks::RelName;
use crate::rules::ident;
use crate::rules::recipe::{BATCH, batches_comment, first_batch_condition};

/// The rule.
pub static RULE: Rule = Rule {
    name: "unbatched-backfill",
    severity: Severity::Error,
    summary: "UPDATE/DELETE of a whole table in one transaction",
    default_on: true,
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
                    matches!(op, Some("<" | "<=" | ">" | ">=" | "="))
                        && (is_value(e.lexpr.as_deref()) || is_value(e.rexpr.as_deref()))
                }
                Ok(AExprKind::AexprOpAny | AExprKind::AexprIn) => op == Some("="),
                Ok(AExprKind::AexprBetween | AExprKind::AexprBetweenSym) => true,
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

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let (relation, where_clause) = match cx.node {
        NodeEnum::UpdateStmt(u) => (u.relation.as_ref(), u.where_clause.as_deref()),
        NodeEnum::DeleteStmt(d) => (d.relation.as_ref(), d.where_clause.as_deref()),
        _ => return Vec::new(),
    };
    let Some(table) = relation.map(RelName::from_range_var) else {
        return Vec::new();
    };
    if cx.is_new_table(&table) || where_clause.is_some_and(bounds_rows) {
        return Vec::new();
    }
    let scope = if where_clause.is_some() {
        "every row its WHERE matches (no key range: possibly most of the table)"
    } else {
        "every row"
    };
    let mut v = Violation::new(format!(
        "{} on {table} changes {scope} in one transaction: each changed row stays locked until \
         it ends (concurrent updates of them wait), and vacuum and replicas fall behind",
        cx.locks.label
    ))
    .help(format!(
        "change the rows in batches of about {BATCH} by primary key, each batch its own \
         transaction, outside the transaction of any schema change"
    ));
    if let Some(sql) = first_batch(cx.node, &table) {
        v = v.fix(format!("{}\n{sql};", batches_comment()));
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "unbatched-backfill";

    #[test]
    fn update_without_where() {
        assert_snapshot!(check(RULE, "UPDATE orders SET state = 'paid';"), @"
        error[unbatched-backfill] 1:1
          lock: UPDATE takes ROW EXCLUSIVE on orders: blocks no reads or writes
          UPDATE on orders changes every row in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change
          fix:
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE orders SET state = 'paid' WHERE id >= 1 AND id < 10001;
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
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE users SET status = 'active' WHERE (id >= 1 AND id < 10001) AND status IS NULL;
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
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            DELETE FROM events WHERE (id >= 1 AND id < 10001) AND kind <> 'keep';
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
          fix:
            -- backfill in batches of 10000 rows by primary key (id here), each batch its own transaction, until max(id):
            UPDATE orders SET user_email = users.email FROM users WHERE (orders.id >= 1 AND orders.id < 10001) AND users.id = orders.user_id;
        ");
    }

    #[test]
    fn new_tables_are_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE s (a int);\nUPDATE s SET a = 0;"), @"ok");
    }
}
