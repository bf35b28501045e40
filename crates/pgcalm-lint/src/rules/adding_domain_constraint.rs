//! `adding-domain-constraint`: `ALTER DOMAIN ... ADD CONSTRAINT` (without `NOT VALID`),
//! `SET NOT NULL` or `VALIDATE CONSTRAINT` on a domain that existed before the unit reads
//! every value of the domain, in every column of every table that uses it, under SHARE
//! on each of those tables: their writes wait until it ends. Unlike a table's constraint,
//! a domain's `VALIDATE CONSTRAINT` takes SHARE too (every released PostgreSQL, 18 and
//! before), so `NOT VALID` + `VALIDATE` does not spare the writes; a CHECK on each column
//! (validated under SHARE UPDATE EXCLUSIVE) proves the existing rows instead.
//!
//! The tables using the domain are the ones lint knows (the unit, `--schema`).

use pg_query::NodeEnum;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{Effect, LockTarget, RelName, RelationLock};
use crate::rule_id::RuleId;
use crate::rules::recipe::{Fix, and_list, in_a_later_transaction};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingDomainConstraint,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::AlterDomainStmt(d) = cx.node else {
        return Vec::new();
    };
    let Some(using) = &cx.locks.tables_using_domain else {
        return Vec::new();
    };
    let domain = &using.via;
    if cx.state.created.types.contains(&domain.name) {
        return Vec::new();
    }
    // The columns of existing tables lint knows to be of the domain.
    let mut columns: Vec<(RelName, String)> = cx
        .state
        .tables
        .values()
        .filter(|t| !t.created_in_unit)
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| {
                    c.type_name == domain.name
                        || c.type_name.ends_with(&format!(".{}", domain.name))
                })
                .map(move |c| (t.name.clone(), c.name.clone()))
        })
        .collect();
    columns.sort();
    // The SHARE lock on a table using it, for the finding's lock line.
    let lock = columns.first().map(|(t, _)| RelationLock {
        target: LockTarget::Table(t.clone()),
        mode: using.mode,
        rewrite: Effect::No,
        scan: using.scan,
    });
    let columns: Vec<String> = columns
        .into_iter()
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    let where_ = if columns.is_empty() {
        format!(
            "in every table with a column of {domain} (lint knows none: give it the schema \
             with --schema)"
        )
    } else {
        format!("in {}", and_list(&columns))
    };
    let what = match d.subtype.as_str() {
        "O" => "SET NOT NULL".to_string(),
        "V" => format!("VALIDATE CONSTRAINT {}", d.name),
        _ => "ADD CONSTRAINT".to_string(),
    };
    let mut help = String::from(
        "prove the existing values with a CHECK on each column that uses the domain instead \
         (ALTER TABLE ... ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT: \
         SHARE UPDATE EXCLUSIVE, writes go on); the domain's own constraint added NOT VALID \
         checks new values at once without reading the old ones",
    );
    let mut fix = None;
    let check_constraint = matches!(
        d.def.as_deref().and_then(|n| n.node.as_ref()),
        Some(NodeEnum::Constraint(c)) if c.contype == pg_query::protobuf::ConstrType::ConstrCheck as i32
    );
    if d.subtype == "C" && check_constraint {
        fix = Fix::default()
            .now(format!("{} NOT VALID;", cx.sql().trim_end()))
            .later(
                in_a_later_transaction(cx),
                "-- a CHECK NOT VALID + VALIDATE CONSTRAINT on each column using the domain; \
                 ALTER DOMAIN ... VALIDATE CONSTRAINT would take SHARE on every such table",
            )
            .sql();
    } else if d.subtype == "V" {
        help.push_str(
            "; ALTER DOMAIN ... VALIDATE CONSTRAINT itself takes SHARE on every table using \
             the domain (writes wait) in every released PostgreSQL",
        );
    }
    let mut v = Violation::new(format!(
        "ALTER DOMAIN {domain} {what} reads every value of the domain, {where_}, under SHARE \
         on each table: writes to them wait until it ends"
    ))
    .help(help);
    if let Some(sql) = fix {
        v = v.fix(sql);
    }
    if let Some(lock) = &lock {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_schema, lines};

    const RULE: &str = "adding-domain-constraint";

    const SCHEMA: &str = "CREATE DOMAIN money_amount AS numeric(12, 2);\nCREATE TABLE bills (id bigint, amount money_amount, fee money_amount);";

    #[test]
    fn add_check_to_a_domain_in_use() {
        assert_snapshot!(check_schema(RULE, SCHEMA, "ALTER DOMAIN money_amount ADD CONSTRAINT money_amount_positive CHECK (VALUE > 0);"), @"
        error[adding-domain-constraint] 1:1
          lock: ALTER DOMAIN takes SHARE on bills: blocks writes
          ALTER DOMAIN money_amount ADD CONSTRAINT reads every value of the domain, in bills.amount and bills.fee, under SHARE on each table: writes to them wait until it ends
          help: prove the existing values with a CHECK on each column that uses the domain instead (ALTER TABLE ... ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE, writes go on); the domain's own constraint added NOT VALID checks new values at once without reading the old ones
          fix:
            ALTER DOMAIN money_amount ADD CONSTRAINT money_amount_positive CHECK (VALUE > 0) NOT VALID;
            -- after COMMIT, in a transaction of its own:
            -- a CHECK NOT VALID + VALIDATE CONSTRAINT on each column using the domain; ALTER DOMAIN ... VALIDATE CONSTRAINT would take SHARE on every such table
        ");
    }

    #[test]
    fn set_not_null_and_validate_read_it_all_too() {
        assert_snapshot!(check(RULE, "ALTER DOMAIN money_amount SET NOT NULL;\nALTER DOMAIN money_amount VALIDATE CONSTRAINT money_amount_positive;"), @"
        error[adding-domain-constraint] 1:1
          ALTER DOMAIN money_amount SET NOT NULL reads every value of the domain, in every table with a column of money_amount (lint knows none: give it the schema with --schema), under SHARE on each table: writes to them wait until it ends
          help: prove the existing values with a CHECK on each column that uses the domain instead (ALTER TABLE ... ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE, writes go on); the domain's own constraint added NOT VALID checks new values at once without reading the old ones
        error[adding-domain-constraint] 2:1
          ALTER DOMAIN money_amount VALIDATE CONSTRAINT money_amount_positive reads every value of the domain, in every table with a column of money_amount (lint knows none: give it the schema with --schema), under SHARE on each table: writes to them wait until it ends
          help: prove the existing values with a CHECK on each column that uses the domain instead (ALTER TABLE ... ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE, writes go on); the domain's own constraint added NOT VALID checks new values at once without reading the old ones; ALTER DOMAIN ... VALIDATE CONSTRAINT itself takes SHARE on every table using the domain (writes wait) in every released PostgreSQL
        ");
    }

    #[test]
    fn not_valid_or_a_domain_of_the_unit_is_fine() {
        assert_eq!(
            lines(
                RULE,
                "ALTER DOMAIN money_amount ADD CONSTRAINT p CHECK (VALUE > 0) NOT VALID;\nCREATE DOMAIN d AS int;\nALTER DOMAIN d ADD CHECK (VALUE > 0);\nALTER DOMAIN money_amount DROP CONSTRAINT p;"
            ),
            Vec::<usize>::new()
        );
    }
}
