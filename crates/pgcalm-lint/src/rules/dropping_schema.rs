//! `dropping-schema`: `DROP SCHEMA ... CASCADE` of a schema that existed before the unit
//! drops every table, view, sequence, function and type in it, with their rows, and what
//! depends on them elsewhere. Without CASCADE PostgreSQL refuses a schema that is not
//! empty (an empty one holds nothing to lose): no finding.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::dropped_objects;
use crate::rules::recipe::and_list;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::DroppingSchema,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::DropStmt(d) = cx.node else {
        return Vec::new();
    };
    if d.remove_type != ObjectType::ObjectSchema as i32 || !cx.locks.cascades {
        return Vec::new();
    }
    let schemas: Vec<String> = dropped_objects(d)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|s| !cx.state.created.schemas.contains(s))
        .collect();
    if schemas.is_empty() {
        return Vec::new();
    }
    vec![
        Violation::new(format!(
            "DROP SCHEMA {} CASCADE drops every table in it with its rows, and its views, \
             sequences, functions and types, and whatever depends on them in other schemas: \
             application code still using any of them fails",
            and_list(&schemas)
        ))
        .help(
            "move what must stay out first (ALTER TABLE ... SET SCHEMA), drop the rest by \
             name once no code uses it, then DROP SCHEMA without CASCADE: PostgreSQL refuses \
             while anything is left in it",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "dropping-schema";

    #[test]
    fn drop_schema_cascade() {
        assert_snapshot!(check(RULE, "DROP SCHEMA IF EXISTS reporting CASCADE;"), @"
        error[dropping-schema] 1:1
          DROP SCHEMA reporting CASCADE drops every table in it with its rows, and its views, sequences, functions and types, and whatever depends on them in other schemas: application code still using any of them fails
          help: move what must stay out first (ALTER TABLE ... SET SCHEMA), drop the rest by name once no code uses it, then DROP SCHEMA without CASCADE: PostgreSQL refuses while anything is left in it
        ");
    }

    #[test]
    fn without_cascade_or_a_schema_of_the_unit() {
        assert_eq!(
            lines(
                RULE,
                "DROP SCHEMA reporting;\nCREATE SCHEMA scratch;\nDROP SCHEMA scratch CASCADE;"
            ),
            Vec::<usize>::new()
        );
    }
}
