//! `table-rewrite-command`: commands whose whole job is to rewrite a table under ACCESS
//! EXCLUSIVE: `VACUUM FULL`, `CLUSTER`, `ALTER TABLE ... SET TABLESPACE`, `SET LOGGED`,
//! `SET UNLOGGED` (and `SET ACCESS METHOD`). Nobody reads or writes the table until the
//! copy ends. The lock table says which statements rewrite; this rule names the ones
//! with no cheaper in-place form.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::engine::{Cx, Rule, Violation};
use crate::locks::{Effect, has_option};
use crate::rule_id::RuleId;
use crate::rules::alter_existing_table;

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::TableRewriteCommand,
    check,
};

/// The command, and how to get its effect without the long lock.
fn rewrite_command(cx: &Cx<'_>) -> Option<(&'static str, &'static str)> {
    const REPACK: &str = "pg_repack (or pg_squeeze) rebuilds the table online and takes ACCESS \
                          EXCLUSIVE only for the final swap; plain VACUUM frees space for reuse \
                          without blocking reads or writes";
    const COPY: &str = "build a new table with the wanted setting, copy the rows in batches \
                        while a trigger mirrors writes, then swap the names in one short \
                        transaction";
    match cx.node {
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd && has_option(&v.options, "full") => {
            Some(("VACUUM FULL", REPACK))
        }
        NodeEnum::ClusterStmt(_) => Some(("CLUSTER", REPACK)),
        NodeEnum::AlterTableStmt(_) => {
            let (_, cmds, _) = alter_existing_table(cx)?;
            cmds.iter().find_map(|(t, _)| match t {
                AlterTableType::AtSetTableSpace => Some((
                    "SET TABLESPACE",
                    "pg_repack --tablespace moves the table online; or copy it into a new \
                     table created in the tablespace and swap",
                )),
                AlterTableType::AtSetLogged => Some(("SET LOGGED", COPY)),
                AlterTableType::AtSetUnLogged => Some(("SET UNLOGGED", COPY)),
                AlterTableType::AtSetAccessMethod => Some(("SET ACCESS METHOD", COPY)),
                _ => None,
            })
        }
        _ => None,
    }
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let Some((command, help)) = rewrite_command(cx) else {
        return Vec::new();
    };
    // The lock table decides whether an existing relation is rewritten.
    let Some(lock) = cx
        .existing_locks()
        .filter(|l| l.rewrite == Effect::Yes)
        .max_by_key(|l| l.mode)
    else {
        return Vec::new();
    };
    vec![
        Violation::new(format!(
            "{command} rewrites {} under {}: {} wait until the whole table is copied",
            lock.target,
            lock.mode,
            lock.blocks()
        ))
        .help(help)
        .lock(lock),
    ]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::check;

    const RULE: &str = "table-rewrite-command";

    #[test]
    fn vacuum_full_and_cluster() {
        assert_snapshot!(check(RULE, "VACUUM FULL users;\nVACUUM (FULL, ANALYZE);\nCLUSTER users USING users_pkey;"), @"
        error[table-rewrite-command] 1:1
          lock: VACUUM takes ACCESS EXCLUSIVE on users: blocks reads and writes
          VACUUM FULL rewrites users under ACCESS EXCLUSIVE: reads and writes wait until the whole table is copied
          help: pg_repack (or pg_squeeze) rebuilds the table online and takes ACCESS EXCLUSIVE only for the final swap; plain VACUUM frees space for reuse without blocking reads or writes
        error[table-rewrite-command] 2:1
          lock: VACUUM takes ACCESS EXCLUSIVE on every table: blocks reads and writes
          VACUUM FULL rewrites every table under ACCESS EXCLUSIVE: reads and writes wait until the whole table is copied
          help: pg_repack (or pg_squeeze) rebuilds the table online and takes ACCESS EXCLUSIVE only for the final swap; plain VACUUM frees space for reuse without blocking reads or writes
        error[table-rewrite-command] 3:1
          lock: CLUSTER takes ACCESS EXCLUSIVE on users: blocks reads and writes
          CLUSTER rewrites users under ACCESS EXCLUSIVE: reads and writes wait until the whole table is copied
          help: pg_repack (or pg_squeeze) rebuilds the table online and takes ACCESS EXCLUSIVE only for the final swap; plain VACUUM frees space for reuse without blocking reads or writes
        ");
    }

    #[test]
    fn alter_table_rewrites() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders SET TABLESPACE archive;\nALTER TABLE s SET LOGGED;\nALTER TABLE e SET UNLOGGED;"), @"
        error[table-rewrite-command] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          SET TABLESPACE rewrites orders under ACCESS EXCLUSIVE: reads and writes wait until the whole table is copied
          help: pg_repack --tablespace moves the table online; or copy it into a new table created in the tablespace and swap
        error[table-rewrite-command] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on s: blocks reads and writes
          SET LOGGED rewrites s under ACCESS EXCLUSIVE: reads and writes wait until the whole table is copied
          help: build a new table with the wanted setting, copy the rows in batches while a trigger mirrors writes, then swap the names in one short transaction
        error[table-rewrite-command] 3:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on e: blocks reads and writes
          SET UNLOGGED rewrites e under ACCESS EXCLUSIVE: reads and writes wait until the whole table is copied
          help: build a new table with the wanted setting, copy the rows in batches while a trigger mirrors writes, then swap the names in one short transaction
        ");
    }

    #[test]
    fn plain_vacuum_and_new_tables_are_fine() {
        assert_snapshot!(check(RULE, "VACUUM (ANALYZE) users;\nVACUUM (FULL false) users;\nCREATE TABLE t (a int);\nALTER TABLE t SET LOGGED;"), @"ok");
    }
}
