//! `enum-value-used-in-transaction`: a statement that uses an enum value added by `ALTER
//! TYPE ... ADD VALUE` earlier in the same transaction. From PostgreSQL 12 the value may be
//! added inside a transaction block, but it cannot be used before COMMIT: the statement
//! fails with "unsafe use of new value" (55P04), and the migration with it.
//!
//! A use is a string literal equal to the new label (`'archived'`, `'archived'::status`,
//! `E'archived'`) in a later statement of the transaction: an assignment, a comparison
//! or a default that reads it as the enum's value.

use pg_query::protobuf::Token;

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::unit::UnitKind;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::EnumValueUsedInTransaction,
    check,
};

/// The values of the statement's string literals.
fn string_literals(sql: &str) -> Vec<String> {
    let Ok(tokens) = pg_query::scan_tokens(sql) else {
        return Vec::new();
    };
    tokens
        .iter()
        .filter(|t| t.token == Token::Sconst as i32)
        .filter_map(|t| {
            let text = &sql[t.start as usize..t.end as usize];
            let text = text.strip_prefix(['E', 'e']).unwrap_or(text);
            let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
            Some(inner.replace("''", "'"))
        })
        .collect()
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    if cx.state.new_enum_values.is_empty() {
        return Vec::new();
    }
    if matches!(cx.node, pg_query::NodeEnum::AlterEnumStmt(_)) {
        return Vec::new();
    }
    let literals = string_literals(cx.sql());
    let Some((enum_type, label)) = cx
        .state
        .new_enum_values
        .iter()
        .find(|(_, label)| literals.contains(label))
    else {
        return Vec::new();
    };
    let place = match cx.kind {
        UnitKind::Migration { .. } => "a migration of its own, before the one that uses it",
        UnitKind::PlainSql if cx.options.assume_in_transaction => {
            "a migration file of its own, applied before this one"
        }
        UnitKind::PlainSql => "a transaction of its own: before BEGIN, or COMMIT right after it",
    };
    vec![
        Violation::new(format!(
            "'{label}' is the value ALTER TYPE {enum_type} ADD VALUE added earlier in this \
             transaction: PostgreSQL refuses to use it before COMMIT (55P04 unsafe use of new \
             value), so this statement fails"
        ))
        .help(format!(
            "commit the new value before anything uses it: ALTER TYPE {enum_type} ADD VALUE in \
             {place}"
        )),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration, lines};

    const RULE: &str = "enum-value-used-in-transaction";

    #[test]
    fn a_new_value_used_before_commit() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TYPE order_state ADD VALUE 'archived';\nUPDATE orders SET state = 'archived' WHERE placed_at < '2020-01-01';\nCOMMIT;"), @"
        error[enum-value-used-in-transaction] 3:1
          lock: UPDATE takes ROW EXCLUSIVE on orders: blocks no reads or writes
          'archived' is the value ALTER TYPE order_state ADD VALUE added earlier in this transaction: PostgreSQL refuses to use it before COMMIT (55P04 unsafe use of new value), so this statement fails
          help: commit the new value before anything uses it: ALTER TYPE order_state ADD VALUE in a transaction of its own: before BEGIN, or COMMIT right after it
        ");
    }

    #[test]
    fn in_a_transactional_migration() {
        assert_snapshot!(check_migration(RULE, "ALTER TYPE order_state ADD VALUE IF NOT EXISTS 'archived';\nALTER TABLE orders ALTER COLUMN state SET DEFAULT 'archived'::order_state;", true), @"
        error[enum-value-used-in-transaction] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          'archived' is the value ALTER TYPE order_state ADD VALUE added earlier in this transaction: PostgreSQL refuses to use it before COMMIT (55P04 unsafe use of new value), so this statement fails
          help: commit the new value before anything uses it: ALTER TYPE order_state ADD VALUE in a migration of its own, before the one that uses it
        ");
    }

    #[test]
    fn after_commit_or_outside_a_transaction_it_is_fine() {
        for sql in [
            "BEGIN;\nALTER TYPE order_state ADD VALUE 'archived';\nCOMMIT;\nUPDATE orders SET state = 'archived';",
            "ALTER TYPE order_state ADD VALUE 'archived';\nUPDATE orders SET state = 'archived';",
            "BEGIN;\nALTER TYPE order_state ADD VALUE 'archived';\nUPDATE orders SET state = 'paid';\nCOMMIT;",
            "BEGIN;\nALTER TYPE order_state ADD VALUE 'archived' BEFORE 'paid';\nALTER TYPE order_state ADD VALUE 'void' AFTER 'archived';\nCOMMIT;",
        ] {
            assert_eq!(lines(RULE, sql), Vec::<usize>::new(), "{sql}");
        }
    }
}
