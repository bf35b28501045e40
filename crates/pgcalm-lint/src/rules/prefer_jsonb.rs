//! `prefer-jsonb`: a `json` column (CREATE TABLE, ADD COLUMN, ALTER COLUMN TYPE). `json`
//! keeps the text as written and has no equality operator, so `SELECT DISTINCT`, `UNION`,
//! `GROUP BY` and comparisons on it fail, and every access reparses it. `jsonb` has none
//! of these problems. New tables too: the hazard is the type, not a lock.

use pg_query::NodeEnum;
use pg_query::protobuf::{ColumnDef, TypeName};

use crate::engine::{Cx, Rule, Violation, deparse};
use crate::rule_id::RuleId;
use crate::unit::string_list;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::PreferJsonb,
    check,
};

fn is_json(t: &TypeName) -> bool {
    string_list(&t.names)
        .last()
        .is_some_and(|n| n.eq_ignore_ascii_case("json"))
}

/// Whether a CREATE TABLE or ALTER TABLE defines a column of type json.
fn has_json_column(node: &NodeEnum) -> bool {
    let json_def = |n: &pg_query::Node| matches!(&n.node, Some(NodeEnum::ColumnDef(c)) if c.type_name.as_ref().is_some_and(is_json));
    match node {
        NodeEnum::CreateStmt(c) => c.table_elts.iter().any(json_def),
        NodeEnum::AlterTableStmt(a) => a.cmds.iter().any(|c| {
            matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd)) if cmd.def.as_deref().is_some_and(json_def))
        }),
        _ => false,
    }
}

fn as_def(n: &mut pg_query::Node) -> Option<&mut ColumnDef> {
    match &mut n.node {
        Some(NodeEnum::ColumnDef(c)) => Some(c.as_mut()),
        _ => None,
    }
}

/// The column definitions of a statement with their column names (`ALTER COLUMN c TYPE`
/// names it on the subcommand), mutable so the fix can retype them.
fn column_defs(node: &mut NodeEnum) -> Vec<(String, &mut ColumnDef)> {
    match node {
        NodeEnum::CreateStmt(c) => c
            .table_elts
            .iter_mut()
            .filter_map(as_def)
            .map(|d| (d.colname.clone(), d))
            .collect(),
        NodeEnum::AlterTableStmt(a) => a
            .cmds
            .iter_mut()
            .filter_map(|c| match &mut c.node {
                Some(NodeEnum::AlterTableCmd(cmd)) => {
                    let name = cmd.name.clone();
                    let def = as_def(cmd.def.as_deref_mut()?)?;
                    Some((
                        if def.colname.is_empty() {
                            name
                        } else {
                            def.colname.clone()
                        },
                        def,
                    ))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    // Most statements have no json column: look before cloning the tree for the fix.
    if !has_json_column(cx.node) {
        return Vec::new();
    }
    let mut fixed = cx.node.clone();
    let mut columns = Vec::new();
    for (name, col) in column_defs(&mut fixed) {
        if let Some(t) = col.type_name.as_mut().filter(|t| is_json(t)) {
            t.names = vec![pg_query::Node {
                node: Some(NodeEnum::String(pg_query::protobuf::String {
                    sval: "jsonb".into(),
                })),
            }];
            columns.push(name);
        }
    }
    if columns.is_empty() {
        return Vec::new();
    }
    let mut v = Violation::new(format!(
        "{} is json: json has no equality operator (SELECT DISTINCT, UNION, GROUP BY and = \
         fail on it) and is reparsed on every access",
        columns.join(", ")
    ))
    .help("use jsonb (binary, indexable with GIN, comparable)");
    if let Some(sql) = deparse(fixed) {
        v = v.fix(format!("{sql};"));
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "prefer-jsonb";

    #[test]
    fn json_column_added() {
        assert_snapshot!(check(RULE, "SET lock_timeout = '2s';\nALTER TABLE events ADD COLUMN metadata json;"), @"
        warning[prefer-jsonb] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          metadata is json: json has no equality operator (SELECT DISTINCT, UNION, GROUP BY and = fail on it) and is reparsed on every access
          help: use jsonb (binary, indexable with GIN, comparable)
          fix:
            ALTER TABLE events ADD COLUMN metadata jsonb;
        ");
    }

    #[test]
    fn json_in_a_new_table_and_a_type_change() {
        assert_snapshot!(check(RULE, "CREATE TABLE webhooks (id bigint PRIMARY KEY, body json NOT NULL, tags jsonb);\nALTER TABLE webhooks ALTER COLUMN tags TYPE json;"), @"
        warning[prefer-jsonb] 1:1
          body is json: json has no equality operator (SELECT DISTINCT, UNION, GROUP BY and = fail on it) and is reparsed on every access
          help: use jsonb (binary, indexable with GIN, comparable)
          fix:
            CREATE TABLE webhooks (id bigint PRIMARY KEY, body jsonb NOT NULL, tags jsonb);
        warning[prefer-jsonb] 2:1
          tags is json: json has no equality operator (SELECT DISTINCT, UNION, GROUP BY and = fail on it) and is reparsed on every access
          help: use jsonb (binary, indexable with GIN, comparable)
          fix:
            ALTER TABLE webhooks ALTER COLUMN tags TYPE jsonb;
        ");
    }

    #[test]
    fn jsonb_is_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (json jsonb);\nALTER TABLE t ADD COLUMN b jsonb;"), @"ok");
    }
}
