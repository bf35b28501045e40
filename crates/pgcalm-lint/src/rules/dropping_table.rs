//! `dropping-table`: `DROP TABLE` of a table that existed before the unit. The drop is a
//! brief ACCESS EXCLUSIVE, but application code already running that still uses the
//! table fails, and the data is gone.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::{RelName, Target};

/// The rule.
pub static RULE: Rule = Rule {
    name: "dropping-table",
    severity: Severity::Error,
    summary: "DROP TABLE breaks application code that still uses the table",
    default_on: true,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::DropStmt(d) = cx.node else {
        return Vec::new();
    };
    if d.remove_type != ObjectType::ObjectTable as i32 {
        return Vec::new();
    }
    d.objects
        .iter()
        .filter_map(|o| match &o.node {
            Some(NodeEnum::List(l)) => RelName::from_names(&l.items),
            _ => None,
        })
        .filter(|t| !cx.is_new_table(t))
        .map(|t| {
            let mut v = Violation::new(format!(
                "DROP TABLE {t}: application code already running that still queries {t} \
                 fails, and its rows are gone"
            ))
            .help(
                "first deploy code that no longer uses the table (and drop foreign keys to it \
                 explicitly), then drop it and say so with `-- pgcalm:ignore dropping-table \
                 <why it is unused>`",
            );
            if let Some(lock) = cx
                .existing_locks()
                .find(|l| l.target == Target::Table(t.clone()))
            {
                v = v.lock(lock);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "dropping-table";

    #[test]
    fn drop_an_existing_table() {
        assert_snapshot!(check(RULE, "DROP TABLE events;"), @"
        error[dropping-table] 1:1
          lock: DROP TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          DROP TABLE events: application code already running that still queries events fails, and its rows are gone
          help: first deploy code that no longer uses the table (and drop foreign keys to it explicitly), then drop it and say so with `-- pgcalm:ignore dropping-table <why it is unused>`
        ");
    }

    #[test]
    fn a_scratch_table_of_the_same_file() {
        assert_snapshot!(check(RULE, "CREATE TABLE tmp (a int);\nDROP TABLE tmp;"), @"ok");
    }
}
