//! `primary-key-using-index-nullable`: `ADD PRIMARY KEY USING INDEX` makes the key
//! columns NOT NULL. Unless they already are (declared in this unit, or, from
//! PostgreSQL 12, proven by a validated `CHECK (col IS NOT NULL)`), PostgreSQL scans the
//! whole table under ACCESS EXCLUSIVE to check, and the index built CONCURRENTLY buys
//! nothing. Columns of an index lint did not see are unknown: it warns.

use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::recipe::{Fix, in_a_later_transaction};
use crate::rules::{added_constraint, alter_existing_table, not_null_check_recipe};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::PrimaryKeyUsingIndexNullable,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((table, cmds, lock)) = alter_existing_table(cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (subtype, cmd) in cmds {
        let Some(c) = added_constraint(cmd) else {
            continue;
        };
        if *subtype != AlterTableType::AtAddConstraint
            || c.contype != ConstrType::ConstrPrimary as i32
            || c.indexname.is_empty()
        {
            continue;
        }
        let index = cx.state.indexes.get(&c.indexname);
        let help_recipe = if cx.pg().at_least(12) {
            "first prove each key column NOT NULL without blocking: ADD CONSTRAINT ... CHECK \
             (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE); \
             PostgreSQL 12+ then skips the scan"
        } else {
            "before PostgreSQL 12 nothing lets SET NOT NULL skip its scan: run it when the \
             table is idle, or keep a unique index and a validated CHECK (col IS NOT NULL)"
        };
        match index {
            None => out.push(
                Violation::new(format!(
                    "PRIMARY KEY USING INDEX {} makes its columns NOT NULL: unless they already \
                     are, {table} is scanned under {} ({} wait); lint does not know the \
                     index's columns",
                    c.indexname,
                    lock.mode,
                    lock.blocks()
                ))
                .help(help_recipe)
                .lock(lock),
            ),
            Some(index) => {
                let nullable: Vec<&String> = index
                    .columns
                    .iter()
                    .filter(|col| !cx.state.known_not_null(table, col, cx.pg()))
                    .collect();
                if nullable.is_empty() {
                    continue;
                }
                let mut v = Violation::new(format!(
                    "PRIMARY KEY USING INDEX {} makes {} NOT NULL: {table} is scanned under {} \
                     ({} wait) unless they are proven NOT NULL first",
                    c.indexname,
                    nullable
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    lock.mode,
                    lock.blocks()
                ))
                .help(help_recipe)
                .lock(lock);
                if cx.pg().at_least(12) {
                    let (mut adds, mut validates, mut drops) = (Vec::new(), Vec::new(), Vec::new());
                    for col in nullable {
                        let (add, validate, drop) = not_null_check_recipe(table, col);
                        adds.push(add);
                        validates.push(validate);
                        drops.push(drop);
                    }
                    let finish = format!(
                        "{}\n{};\n{}",
                        validates.join("\n"),
                        cx.sql(),
                        drops.join("\n")
                    );
                    // In one transaction the VALIDATE would scan under the ADD's lock.
                    let fix = if cx.state.in_transaction {
                        Fix::default()
                            .now(adds.join("\n"))
                            .later(in_a_later_transaction(cx), &finish)
                    } else {
                        Fix::default().now(adds.join("\n")).now(finish)
                    };
                    if let Some(sql) = fix.sql() {
                        v = v.fix(sql);
                    }
                }
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_pg};

    const RULE: &str = "primary-key-using-index-nullable";

    #[test]
    fn unknown_index_warns() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;"), @"
        warning[primary-key-using-index-nullable] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          PRIMARY KEY USING INDEX events_id_idx makes its columns NOT NULL: unless they already are, events is scanned under ACCESS EXCLUSIVE (reads and writes wait); lint does not know the index's columns
          help: first prove each key column NOT NULL without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE); PostgreSQL 12+ then skips the scan
        ");
    }

    #[test]
    fn known_nullable_columns_get_the_check_recipe() {
        assert_snapshot!(check(RULE, "CREATE UNIQUE INDEX CONCURRENTLY events_id_idx ON events (id);\nALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;"), @"
        warning[primary-key-using-index-nullable] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          PRIMARY KEY USING INDEX events_id_idx makes id NOT NULL: events is scanned under ACCESS EXCLUSIVE (reads and writes wait) unless they are proven NOT NULL first
          help: first prove each key column NOT NULL without blocking: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE); PostgreSQL 12+ then skips the scan
          fix:
            ALTER TABLE events ADD CONSTRAINT events_id_not_null CHECK (id IS NOT NULL) NOT VALID;
            ALTER TABLE events VALIDATE CONSTRAINT events_id_not_null;
            ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;
            ALTER TABLE events DROP CONSTRAINT events_id_not_null;
        ");
    }

    #[test]
    fn proven_not_null_is_fine() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD CONSTRAINT events_id_not_null CHECK (id IS NOT NULL) NOT VALID;\nALTER TABLE events VALIDATE CONSTRAINT events_id_not_null;\nCREATE UNIQUE INDEX CONCURRENTLY events_id_idx ON events (id);\nALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;"), @"ok");
        assert_snapshot!(check(RULE, "ALTER TABLE events ALTER COLUMN id SET NOT NULL;\nCREATE UNIQUE INDEX CONCURRENTLY events_id_idx ON events (id);\nALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;"), @"ok");
    }

    #[test]
    fn before_pg12_a_check_does_not_help() {
        assert_snapshot!(check_pg(RULE, "ALTER TABLE events ADD CONSTRAINT events_id_not_null CHECK (id IS NOT NULL);\nCREATE UNIQUE INDEX CONCURRENTLY events_id_idx ON events (id);\nALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;", 11), @"
        warning[primary-key-using-index-nullable] 3:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          PRIMARY KEY USING INDEX events_id_idx makes id NOT NULL: events is scanned under ACCESS EXCLUSIVE (reads and writes wait) unless they are proven NOT NULL first
          help: before PostgreSQL 12 nothing lets SET NOT NULL skip its scan: run it when the table is idle, or keep a unique index and a validated CHECK (col IS NOT NULL)
        ");
    }
}
