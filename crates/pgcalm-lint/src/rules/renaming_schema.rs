//! `renaming-schema`: `ALTER SCHEMA ... RENAME TO` of a schema that existed before the
//! unit. It takes no table lock, but application code already running names the old
//! schema (qualified names, its `search_path`) and fails until every instance is
//! redeployed.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::RenamingSchema,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::RenameStmt(r) = cx.node else {
        return Vec::new();
    };
    if r.rename_type != ObjectType::ObjectSchema as i32
        || cx.state.created.schemas.contains(&r.subname)
    {
        return Vec::new();
    }
    vec![
        Violation::new(format!(
            "ALTER SCHEMA {} RENAME TO {}: application code already running still names {} \
             (qualified names, its search_path) and fails until every instance is redeployed",
            r.subname, r.newname, r.subname
        ))
        .help(format!(
            "create {} and move each table into it with ALTER TABLE ... SET SCHEMA, leaving a \
             view with its old name behind in the same transaction; drop {} once no code uses \
             it",
            r.newname, r.subname
        )),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, lines};

    const RULE: &str = "renaming-schema";

    #[test]
    fn rename_an_existing_schema() {
        assert_snapshot!(check(RULE, "ALTER SCHEMA reporting RENAME TO analytics;"), @"
        error[renaming-schema] 1:1
          ALTER SCHEMA reporting RENAME TO analytics: application code already running still names reporting (qualified names, its search_path) and fails until every instance is redeployed
          help: create analytics and move each table into it with ALTER TABLE ... SET SCHEMA, leaving a view with its old name behind in the same transaction; drop reporting once no code uses it
        ");
    }

    #[test]
    fn a_schema_of_the_unit_is_fine() {
        assert_eq!(
            lines(
                RULE,
                "CREATE SCHEMA scratch;\nALTER SCHEMA scratch RENAME TO staging;"
            ),
            Vec::<usize>::new()
        );
    }
}
