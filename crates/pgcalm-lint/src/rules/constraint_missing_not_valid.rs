//! `constraint-missing-not-valid`: `ADD FOREIGN KEY` or `ADD CHECK` on an existing table
//! without NOT VALID scans the whole table under the lock it takes (SHARE ROW EXCLUSIVE
//! on both tables for a foreign key: writes wait; ACCESS EXCLUSIVE for a check: reads
//! and writes wait). `ADD COLUMN ... REFERENCES` is validated (the same scan) only when
//! the new column has a default: without one every row starts out NULL and PostgreSQL
//! skips it. Also flags a VALIDATE that runs in the transaction which already holds a
//! blocking lock on the table (the scan then happens under that lock). One finding per
//! statement. In a unit that runs in one transaction, the fix adds the constraints NOT
//! VALID and leaves the VALIDATE to a later transaction (a comment says so).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableCmd, AlterTableType, ConstrType};

use crate::engine::{Cx, Rule, Violation, deparse};
use crate::locks::{LockTarget, RelName, has_default};
use crate::rule_id::RuleId;
use crate::rules::recipe::{Fix, and_list, column_def, in_a_later_transaction};
use crate::rules::{added_constraint, alter_existing_table, ident, rel};
use crate::unit::string_list;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::ConstraintMissingNotValid,
    check,
};

/// A new column's foreign keys that PostgreSQL validates (the column has a default).
fn validated_column_fks(
    col: &pg_query::protobuf::ColumnDef,
) -> impl Iterator<Item = &pg_query::protobuf::Constraint> {
    let validated = has_default(col);
    col.constraints.iter().filter_map(move |n| match &n.node {
        Some(NodeEnum::Constraint(c))
            if validated && c.contype == ConstrType::ConstrForeign as i32 && !c.skip_validation =>
        {
            Some(c.as_ref())
        }
        _ => None,
    })
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    // (what is added, the constraint's name)
    let mut names: Vec<(String, String)> = Vec::new();
    let mut validated_under_lock = Vec::new();
    for (subtype, cmd) in cmds {
        match subtype {
            AlterTableType::AtAddConstraint => {
                let Some(c) = added_constraint(cmd) else {
                    continue;
                };
                let kind = match ConstrType::try_from(c.contype) {
                    Ok(ConstrType::ConstrForeign) => "FOREIGN KEY",
                    Ok(ConstrType::ConstrCheck) => "CHECK",
                    _ => continue,
                };
                if !c.skip_validation {
                    names.push((kind.to_string(), constraint_name(table, c)));
                }
            }
            AlterTableType::AtAddColumn => {
                let Some(col) = column_def(cmd) else { continue };
                for c in validated_column_fks(col) {
                    names.push((
                        format!("COLUMN {} ... REFERENCES with a default", col.colname),
                        column_fk_name(table, &col.colname, c),
                    ));
                }
            }
            AlterTableType::AtValidateConstraint => {
                let held = cx.state.held_on(&LockTarget::Table(table.clone()));
                if let Some(mode) = held.filter(|m| m.blocks().any()) {
                    validated_under_lock.push((cmd.name.clone(), mode));
                }
            }
            _ => {}
        }
    }
    if names.is_empty() {
        let Some(&(_, mode)) = validated_under_lock.iter().max_by_key(|(_, m)| *m) else {
            return Vec::new();
        };
        let constraints: Vec<String> = validated_under_lock.into_iter().map(|(n, _)| n).collect();
        return vec![
            Violation::new(format!(
                "VALIDATE CONSTRAINT {} scans {table} while this transaction still holds {mode} \
                 on it (taken earlier in the transaction): {} wait for the whole scan",
                and_list(&constraints),
                mode.blocks()
            ))
            .help(
                "commit after ADD CONSTRAINT ... NOT VALID and VALIDATE in a transaction of its \
                 own (in a pgcalm migration: a `transaction:false` section, or the next \
                 migration)",
            ),
        ];
    }
    let mut kinds: Vec<String> = Vec::new();
    for (k, _) in &names {
        if !kinds.contains(k) {
            kinds.push(k.clone());
        }
    }
    // A foreign key also locks the referenced tables for as long.
    let others: Vec<String> = cx
        .existing_locks()
        .filter(|l| l.target.table() != Some(table))
        .map(|l| format!("{} on {}", l.mode, l.target))
        .collect();
    let also = match cx
        .existing_locks()
        .filter(|l| l.target.table() != Some(table))
        .map(|l| l.blocks())
        .reduce(|a, b| a.or(b))
    {
        Some(blocks) => format!(" (and {}: {blocks} wait there too)", and_list(&others)),
        None => String::new(),
    };
    let mut v = Violation::new(format!(
        "ADD {} validates every row of {table} while holding {}: {} wait for the whole \
         scan{also}",
        and_list(&kinds),
        lock.mode,
        lock.blocks()
    ))
    .help(
        "add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT \
         in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks \
         no reads or writes",
    )
    .lock(lock);
    if let Some(fixed) = not_valid_version(cx.node, table) {
        let validates: Vec<String> = names
            .iter()
            .map(|(_, n)| {
                format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {};",
                    rel(table),
                    ident(n)
                )
            })
            .collect();
        // In the same transaction the VALIDATE would scan under the ADD's lock: later.
        let fix = if cx.state.in_transaction {
            Fix::default()
                .now(format!("{fixed};"))
                .later(in_a_later_transaction(cx), &validates.join("\n"))
        } else {
            Fix::default()
                .now(format!("{fixed};"))
                .now(validates.join("\n"))
        };
        if let Some(sql) = fix.sql() {
            v = v.fix(sql);
        }
    }
    vec![v]
}

/// The name PostgreSQL gives a new column's foreign key: `<table>_<column>_fkey`.
fn column_fk_name(table: &RelName, column: &str, c: &pg_query::protobuf::Constraint) -> String {
    if c.conname.is_empty() {
        format!("{}_{column}_fkey", table.name)
    } else {
        c.conname.clone()
    }
}

/// The constraint's name: as written, or the one PostgreSQL would generate.
fn constraint_name(table: &RelName, c: &pg_query::protobuf::Constraint) -> String {
    if !c.conname.is_empty() {
        return c.conname.clone();
    }
    if c.contype == ConstrType::ConstrForeign as i32 {
        let cols = string_list(&c.fk_attrs).join("_");
        format!("{}_{cols}_fkey", table.name)
    } else {
        match first_column(c.raw_expr.as_deref()) {
            Some(col) => format!("{}_{col}_check", table.name),
            None => format!("{}_check", table.name),
        }
    }
}

/// The first column an expression mentions (PostgreSQL names checks after it).
fn first_column(expr: Option<&pg_query::Node>) -> Option<String> {
    match expr?.node.as_ref()? {
        NodeEnum::ColumnRef(c) => string_list(&c.fields).pop(),
        NodeEnum::AExpr(e) => {
            first_column(e.lexpr.as_deref()).or_else(|| first_column(e.rexpr.as_deref()))
        }
        NodeEnum::NullTest(n) => first_column(n.arg.as_deref()),
        NodeEnum::TypeCast(t) => first_column(t.arg.as_deref()),
        NodeEnum::BoolExpr(b) => b.args.iter().find_map(|a| first_column(Some(a))),
        NodeEnum::FuncCall(f) => f.args.iter().find_map(|a| first_column(Some(a))),
        _ => None,
    }
}

/// The statement with every validating FOREIGN KEY / CHECK made NOT VALID (and named,
/// so the VALIDATE can name it). A new column's validated foreign key moves to an
/// `ADD CONSTRAINT ... NOT VALID` right after the column, in the same statement.
fn not_valid_version(node: &NodeEnum, table: &RelName) -> Option<String> {
    let mut node = node.clone();
    let NodeEnum::AlterTableStmt(a) = &mut node else {
        return None;
    };
    let mut cmds = Vec::with_capacity(a.cmds.len());
    for mut cmd_node in std::mem::take(&mut a.cmds) {
        let mut moved = Vec::new();
        if let Some(NodeEnum::AlterTableCmd(cmd)) = &mut cmd_node.node {
            let def = cmd.def.as_deref_mut().and_then(|d| d.node.as_mut());
            match def {
                Some(NodeEnum::Constraint(c))
                    if cmd.subtype == AlterTableType::AtAddConstraint as i32
                        && (c.contype == ConstrType::ConstrForeign as i32
                            || c.contype == ConstrType::ConstrCheck as i32)
                        && !c.skip_validation =>
                {
                    c.conname = constraint_name(table, c);
                    c.skip_validation = true;
                    c.initially_valid = false;
                }
                Some(NodeEnum::ColumnDef(col))
                    if cmd.subtype == AlterTableType::AtAddColumn as i32 =>
                {
                    let fks: Vec<pg_query::protobuf::Constraint> =
                        validated_column_fks(col).cloned().collect();
                    if !fks.is_empty() {
                        col.constraints.retain(|n| {
                            !matches!(&n.node, Some(NodeEnum::Constraint(c))
                                if c.contype == ConstrType::ConstrForeign as i32)
                        });
                        for mut fk in fks {
                            fk.conname = column_fk_name(table, &col.colname, &fk);
                            fk.fk_attrs = vec![pg_query::Node {
                                node: Some(NodeEnum::String(pg_query::protobuf::String {
                                    sval: col.colname.clone(),
                                })),
                            }];
                            fk.skip_validation = true;
                            fk.initially_valid = false;
                            moved.push(pg_query::Node {
                                node: Some(NodeEnum::AlterTableCmd(Box::new(AlterTableCmd {
                                    subtype: AlterTableType::AtAddConstraint as i32,
                                    def: Some(Box::new(pg_query::Node {
                                        node: Some(NodeEnum::Constraint(Box::new(fk))),
                                    })),
                                    behavior: cmd.behavior,
                                    ..AlterTableCmd::default()
                                }))),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        cmds.push(cmd_node);
        cmds.extend(moved);
    }
    a.cmds = cmds;
    deparse(node)
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, lines};

    const RULE: &str = "constraint-missing-not-valid";

    #[test]
    fn foreign_key() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);"), @"
        error[constraint-missing-not-valid] 1:1
          lock: ALTER TABLE takes SHARE ROW EXCLUSIVE on orders: blocks writes
          ADD FOREIGN KEY validates every row of orders while holding SHARE ROW EXCLUSIVE: writes wait for the whole scan (and SHARE ROW EXCLUSIVE on users: writes wait there too)
          help: add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks no reads or writes
          fix:
            ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
            ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;
        ");
    }

    #[test]
    fn unnamed_check_gets_postgres_name() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders ADD CHECK (amount > 0);"), @"
        error[constraint-missing-not-valid] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          ADD CHECK validates every row of orders while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan
          help: add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks no reads or writes
          fix:
            ALTER TABLE orders ADD CONSTRAINT orders_amount_check CHECK (amount > 0) NOT VALID;
            ALTER TABLE orders VALIDATE CONSTRAINT orders_amount_check;
        ");
    }

    #[test]
    fn not_valid_then_validate_is_fine() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders ADD CONSTRAINT c CHECK (amount > 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT c;"), @"ok");
    }

    #[test]
    fn validate_in_the_same_transaction_is_not() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE orders ADD CONSTRAINT c CHECK (amount > 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT c;", true), @"
        error[constraint-missing-not-valid] 2:1
          lock: ALTER TABLE ... VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE on orders: blocks no reads or writes
          VALIDATE CONSTRAINT c scans orders while this transaction still holds ACCESS EXCLUSIVE on it (taken earlier in the transaction): reads and writes wait for the whole scan
          help: commit after ADD CONSTRAINT ... NOT VALID and VALIDATE in a transaction of its own (in a pgcalm migration: a `transaction:false` section, or the next migration)
        ");
    }

    #[test]
    fn a_new_table_is_fine() {
        assert_snapshot!(check(RULE, "CREATE TABLE t (a int);\nALTER TABLE t ADD CHECK (a > 0);"), @"ok");
    }

    #[test]
    fn a_new_column_with_references_and_a_default_is_validated() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders ADD COLUMN account_id bigint DEFAULT 1 REFERENCES accounts (id), ADD COLUMN note text;"), @"
        error[constraint-missing-not-valid] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          ADD COLUMN account_id ... REFERENCES with a default validates every row of orders while holding ACCESS EXCLUSIVE: reads and writes wait for the whole scan (and SHARE ROW EXCLUSIVE on accounts: writes wait there too)
          help: add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks no reads or writes
          fix:
            ALTER TABLE orders ADD COLUMN account_id bigint DEFAULT 1, ADD CONSTRAINT orders_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID, ADD COLUMN note text;
            ALTER TABLE orders VALIDATE CONSTRAINT orders_account_id_fkey;
        ");
        // No default: the column starts out NULL, PostgreSQL skips the validation.
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE orders ADD COLUMN account_id bigint REFERENCES accounts (id);"
            ),
            Vec::<usize>::new()
        );
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE orders ADD COLUMN a bigint REFERENCES accounts (id), ADD COLUMN b int DEFAULT 0;"
            ),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn in_one_transaction_the_validate_waits_for_a_later_one() {
        assert_snapshot!(check_migration(RULE, "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);", true), @"
        error[constraint-missing-not-valid] 1:1
          lock: ALTER TABLE takes SHARE ROW EXCLUSIVE on orders: blocks writes
          ADD FOREIGN KEY validates every row of orders while holding SHARE ROW EXCLUSIVE: writes wait for the whole scan (and SHARE ROW EXCLUSIVE on users: writes wait there too)
          help: add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks no reads or writes
          fix:
            ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
            -- in a later migration (a transaction of its own):
            -- ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;
        ");
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE \"Order\" ADD CONSTRAINT \"Order_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\" (id) ON DELETE CASCADE;\nCOMMIT;"), @r#"
        error[constraint-missing-not-valid] 2:1
          lock: ALTER TABLE takes SHARE ROW EXCLUSIVE on Order: blocks writes
          ADD FOREIGN KEY validates every row of Order while holding SHARE ROW EXCLUSIVE: writes wait for the whole scan (and SHARE ROW EXCLUSIVE on User: writes wait there too)
          help: add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks no reads or writes
          fix:
            ALTER TABLE "Order" ADD CONSTRAINT "Order_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" (id) ON DELETE CASCADE NOT VALID;
            -- after COMMIT, in a transaction of its own:
            -- ALTER TABLE "Order" VALIDATE CONSTRAINT "Order_userId_fkey";
        "#);
    }

    #[test]
    fn one_finding_per_statement() {
        assert_eq!(
            lines(
                RULE,
                "ALTER TABLE orders ADD CHECK (a > 0), ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id);"
            ),
            [1]
        );
    }
}
