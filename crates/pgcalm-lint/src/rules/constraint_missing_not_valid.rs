//! `constraint-missing-not-valid`: `ADD FOREIGN KEY` or `ADD CHECK` on an existing table
//! without NOT VALID scans the whole table under the lock it takes (SHARE ROW EXCLUSIVE
//! on both tables for a foreign key: writes wait; ACCESS EXCLUSIVE for a check: reads
//! and writes wait). Also flags a VALIDATE that runs in the transaction which already
//! holds a blocking lock on the table (the scan then happens under that lock).

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::engine::{Cx, Rule, Violation, deparse};
use crate::finding::Severity;
use crate::locks::{RelName, Target};
use crate::rules::{added_constraint, alter_existing_table, ident, rel};
use crate::unit::string_list;

/// The rule.
pub static RULE: Rule = Rule {
    name: "constraint-missing-not-valid",
    severity: Severity::Error,
    summary: "ADD FOREIGN KEY / CHECK without NOT VALID scans the table under its lock",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names = Vec::new();
    for (subtype, cmd) in &cmds {
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
                    names.push((kind, constraint_name(&table, c)));
                }
            }
            AlterTableType::AtValidateConstraint => {
                let held = cx.state.held_on(&Target::Table(table.clone()));
                if let Some(mode) = held.filter(|m| m.blocks().any()) {
                    out.push(
                        Violation::new(format!(
                            "VALIDATE CONSTRAINT {} scans {table} while this transaction \
                             still holds {mode} on it (taken earlier in the transaction): {} \
                             wait for the whole scan",
                            cmd.name,
                            mode.blocks()
                        ))
                        .help(
                            "commit after ADD CONSTRAINT ... NOT VALID and VALIDATE in a \
                             transaction of its own (in a pgcalm migration: a \
                             `transaction:false` section, or the next migration)",
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    if names.is_empty() {
        return out;
    }
    let kinds: Vec<&str> = names.iter().map(|(k, _)| *k).collect();
    // A foreign key also locks the referenced table for as long.
    let also: String = cx
        .existing_locks()
        .filter(|l| l.target.table() != Some(&table))
        .map(|l| {
            format!(
                " (and {} on {}: {} wait there too)",
                l.mode,
                l.target,
                l.blocks()
            )
        })
        .collect();
    let mut v = Violation::new(format!(
        "ADD {} validates every row of {table} while holding {}: {} wait for the whole \
         scan{also}",
        kinds.join(" and "),
        lock.mode,
        lock.blocks()
    ))
    .help(
        "add it NOT VALID (checked for new rows only, a short lock), then VALIDATE CONSTRAINT \
         in a separate transaction: the scan runs under SHARE UPDATE EXCLUSIVE, which blocks \
         no reads or writes",
    )
    .lock(lock);
    if let Some(fixed) = not_valid_version(cx.node, &table) {
        let validates: Vec<String> = names
            .iter()
            .map(|(_, n)| {
                format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {};",
                    rel(&table),
                    ident(n)
                )
            })
            .collect();
        v = v.fix(format!("{fixed};\n{}", validates.join("\n")));
    }
    out.insert(0, v);
    out
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
/// so the VALIDATE can name it).
fn not_valid_version(node: &NodeEnum, table: &RelName) -> Option<String> {
    let mut node = node.clone();
    let NodeEnum::AlterTableStmt(a) = &mut node else {
        return None;
    };
    for cmd in &mut a.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &mut cmd.node else {
            continue;
        };
        if cmd.subtype != AlterTableType::AtAddConstraint as i32 {
            continue;
        }
        if let Some(NodeEnum::Constraint(c)) = cmd.def.as_deref_mut().and_then(|d| d.node.as_mut())
            && (c.contype == ConstrType::ConstrForeign as i32
                || c.contype == ConstrType::ConstrCheck as i32)
            && !c.skip_validation
        {
            c.conname = constraint_name(table, c);
            c.skip_validation = true;
            c.initially_valid = false;
        }
    }
    deparse(node)
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration};

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
}
