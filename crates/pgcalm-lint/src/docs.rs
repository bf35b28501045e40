//! `docs/locks.md`, rendered from the lock table by running it on one example of each
//! statement form, so the docs cannot drift from what lint, trace and `--plan` use
//! (a test fails when the file is out of date).

use std::fmt::Write as _;

use crate::locks::{
    DroppedKeys, Effect, ForeignKeyReach, PgVersion, StatementLocks, statement_locks,
};

/// One statement form per row: what it is and an example.
pub(crate) const EXAMPLES: &[(&str, &str)] = &[
    ("CREATE INDEX", "CREATE INDEX i ON t (c)"),
    (
        "CREATE INDEX CONCURRENTLY",
        "CREATE INDEX CONCURRENTLY i ON t (c)",
    ),
    ("CREATE INDEX ... ON ONLY", "CREATE INDEX i ON ONLY t (c)"),
    ("DROP INDEX", "DROP INDEX i"),
    ("DROP INDEX CONCURRENTLY", "DROP INDEX CONCURRENTLY i"),
    ("REINDEX INDEX", "REINDEX INDEX i"),
    ("REINDEX TABLE", "REINDEX TABLE t"),
    ("REINDEX CONCURRENTLY", "REINDEX INDEX CONCURRENTLY i"),
    ("ADD COLUMN, no default", "ALTER TABLE t ADD COLUMN c int"),
    (
        "ADD COLUMN, constant default",
        "ALTER TABLE t ADD COLUMN c int DEFAULT 0",
    ),
    (
        "ADD COLUMN, stable default",
        "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()",
    ),
    (
        "ADD COLUMN, volatile default",
        "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()",
    ),
    (
        "ADD COLUMN, default of unknown volatility",
        "ALTER TABLE t ADD COLUMN c int DEFAULT my_function()",
    ),
    ("ADD COLUMN serial", "ALTER TABLE t ADD COLUMN c bigserial"),
    (
        "ADD COLUMN identity",
        "ALTER TABLE t ADD COLUMN c bigint GENERATED ALWAYS AS IDENTITY",
    ),
    (
        "ADD COLUMN stored generated",
        "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED",
    ),
    (
        "ADD COLUMN ... UNIQUE",
        "ALTER TABLE t ADD COLUMN c int UNIQUE",
    ),
    (
        "ADD COLUMN ... REFERENCES",
        "ALTER TABLE t ADD COLUMN c int REFERENCES p (id)",
    ),
    (
        "ADD COLUMN ... REFERENCES with a default",
        "ALTER TABLE t ADD COLUMN c int DEFAULT 0 REFERENCES p (id)",
    ),
    (
        "ALTER COLUMN TYPE",
        "ALTER TABLE t ALTER COLUMN c TYPE bigint",
    ),
    ("SET NOT NULL", "ALTER TABLE t ALTER COLUMN c SET NOT NULL"),
    (
        "DROP NOT NULL",
        "ALTER TABLE t ALTER COLUMN c DROP NOT NULL",
    ),
    ("SET DEFAULT", "ALTER TABLE t ALTER COLUMN c SET DEFAULT 0"),
    ("DROP DEFAULT", "ALTER TABLE t ALTER COLUMN c DROP DEFAULT"),
    (
        "SET STATISTICS",
        "ALTER TABLE t ALTER COLUMN c SET STATISTICS 500",
    ),
    ("ADD CHECK", "ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0)"),
    (
        "ADD CHECK NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0) NOT VALID",
    ),
    (
        "ADD FOREIGN KEY",
        "ALTER TABLE t ADD CONSTRAINT k FOREIGN KEY (c) REFERENCES p (id)",
    ),
    (
        "ADD FOREIGN KEY NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT k FOREIGN KEY (c) REFERENCES p (id) NOT VALID",
    ),
    ("VALIDATE CONSTRAINT", "ALTER TABLE t VALIDATE CONSTRAINT k"),
    ("ADD UNIQUE", "ALTER TABLE t ADD CONSTRAINT k UNIQUE (c)"),
    (
        "ADD UNIQUE USING INDEX",
        "ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX i",
    ),
    ("ADD PRIMARY KEY", "ALTER TABLE t ADD PRIMARY KEY (c)"),
    (
        "ADD PRIMARY KEY USING INDEX",
        "ALTER TABLE t ADD CONSTRAINT k PRIMARY KEY USING INDEX i",
    ),
    (
        "ADD EXCLUDE",
        "ALTER TABLE t ADD CONSTRAINT k EXCLUDE USING gist (r WITH &&)",
    ),
    ("DROP CONSTRAINT", "ALTER TABLE t DROP CONSTRAINT k"),
    ("REPLICA IDENTITY", "ALTER TABLE t REPLICA IDENTITY FULL"),
    ("DROP COLUMN", "ALTER TABLE t DROP COLUMN c"),
    ("RENAME COLUMN", "ALTER TABLE t RENAME COLUMN c TO d"),
    ("RENAME TABLE", "ALTER TABLE t RENAME TO u"),
    ("RENAME INDEX", "ALTER INDEX i RENAME TO j"),
    ("SET TABLESPACE", "ALTER TABLE t SET TABLESPACE s"),
    ("SET LOGGED", "ALTER TABLE t SET LOGGED"),
    (
        "SET (storage parameter)",
        "ALTER TABLE t SET (fillfactor = 70)",
    ),
    (
        "ENABLE/DISABLE TRIGGER",
        "ALTER TABLE t DISABLE TRIGGER ALL",
    ),
    (
        "ATTACH PARTITION",
        "ALTER TABLE t ATTACH PARTITION p FOR VALUES FROM (1) TO (10)",
    ),
    (
        "ATTACH PARTITION ... DEFAULT",
        "ALTER TABLE t ATTACH PARTITION p DEFAULT",
    ),
    (
        "ALTER INDEX ... ATTACH PARTITION",
        "ALTER INDEX i ATTACH PARTITION p_i",
    ),
    ("DETACH PARTITION", "ALTER TABLE t DETACH PARTITION p"),
    (
        "DETACH PARTITION CONCURRENTLY",
        "ALTER TABLE t DETACH PARTITION p CONCURRENTLY",
    ),
    (
        "multi-command ALTER TABLE (strictest lock)",
        "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100, ADD COLUMN c int",
    ),
    (
        "CREATE TABLE with a foreign key",
        "CREATE TABLE u (id int, c int REFERENCES p (id))",
    ),
    (
        "CREATE TABLE with a self-referencing foreign key",
        "CREATE TABLE u (id int PRIMARY KEY, parent int REFERENCES u (id))",
    ),
    (
        "CREATE TABLE ... PARTITION OF",
        "CREATE TABLE p1 PARTITION OF t FOR VALUES FROM (1) TO (10)",
    ),
    (
        "CREATE TRIGGER",
        "CREATE TRIGGER g BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
    ),
    ("CREATE STATISTICS", "CREATE STATISTICS s ON a, b FROM t"),
    ("COMMENT ON COLUMN", "COMMENT ON COLUMN t.c IS 'x'"),
    ("DROP TABLE", "DROP TABLE t"),
    ("DROP TABLE ... CASCADE", "DROP TABLE t CASCADE"),
    ("DROP SCHEMA ... CASCADE", "DROP SCHEMA s CASCADE"),
    ("TRUNCATE", "TRUNCATE t"),
    ("TRUNCATE ... CASCADE", "TRUNCATE t CASCADE"),
    ("VACUUM", "VACUUM t"),
    ("VACUUM FULL", "VACUUM FULL t"),
    ("ANALYZE", "ANALYZE t"),
    ("CLUSTER", "CLUSTER t USING i"),
    ("REFRESH MATERIALIZED VIEW", "REFRESH MATERIALIZED VIEW m"),
    (
        "REFRESH MATERIALIZED VIEW CONCURRENTLY",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY m",
    ),
    (
        "REFRESH MATERIALIZED VIEW ... WITH NO DATA",
        "REFRESH MATERIALIZED VIEW m WITH NO DATA",
    ),
    ("LOCK TABLE", "LOCK TABLE t"),
    ("UPDATE (backfill)", "UPDATE t SET c = 0"),
    ("ALTER TYPE ... ADD VALUE", "ALTER TYPE e ADD VALUE 'x'"),
    (
        "ALTER DOMAIN ... ADD CONSTRAINT",
        "ALTER DOMAIN d ADD CONSTRAINT k CHECK (VALUE > 0)",
    ),
    (
        "ALTER DOMAIN ... ADD CONSTRAINT NOT VALID",
        "ALTER DOMAIN d ADD CONSTRAINT k CHECK (VALUE > 0) NOT VALID",
    ),
    (
        "ALTER DOMAIN ... VALIDATE CONSTRAINT",
        "ALTER DOMAIN d VALIDATE CONSTRAINT k",
    ),
    (
        "ALTER DOMAIN ... SET NOT NULL",
        "ALTER DOMAIN d SET NOT NULL",
    ),
];

/// Versions whose differences the version table shows.
const VERSIONS: [u32; 5] = [10, 11, 12, 14, 18];

/// The lock table of an example SQL statement.
fn locks_of(sql: &str, pg: PgVersion) -> StatementLocks {
    let parsed = pg_query::parse(sql, 0).expect("lock table examples parse");
    let node = parsed.protobuf.stmts[0]
        .stmt
        .as_ref()
        .and_then(|n| n.node.as_ref())
        .expect("one statement");
    statement_locks(node, pg)
}

fn effect(e: Effect) -> String {
    match e {
        Effect::No => String::new(),
        Effect::Yes => "yes".into(),
        Effect::Unless(c) => format!("unless {c}"),
    }
}

/// One cell per column of a row, for one version.
fn cells(locks: &StatementLocks) -> [String; 5] {
    let join = |f: &dyn Fn(&crate::locks::RelationLock) -> String| {
        locks.locks.iter().map(f).collect::<Vec<_>>().join("<br>")
    };
    let lock = join(&|l| format!("{} on {}", l.mode, l.target));
    [
        if lock.is_empty() {
            "no table lock".into()
        } else {
            lock
        },
        join(&|l| {
            let b = l.blocks();
            if b.any() {
                b.to_string()
            } else {
                "nothing".into()
            }
        }),
        join(&|l| effect(l.rewrite)),
        join(&|l| effect(l.scan)),
        if locks.outside_transaction {
            "yes".into()
        } else {
            String::new()
        },
    ]
}

/// What a statement locks or changes beyond the relations it names (its dependents, a
/// partitioned table's partitions), one line each.
fn beyond(locks: &StatementLocks) -> Vec<String> {
    let mut out = Vec::new();
    // `SHARE on each partition of t, each read in full (scan yes)`.
    let indirect = |l: &Option<crate::locks::IndirectLock>, on: &str, read: &str| {
        l.as_ref().map(|l| {
            let scan = if l.scan == Effect::No {
                String::new()
            } else {
                format!(", {read} (scan {})", effect(l.scan))
            };
            format!(
                "{} on {}{scan}",
                l.mode,
                on.replace("{}", &l.via.to_string())
            )
        })
    };
    out.extend(indirect(
        &locks.each_partition,
        "each partition of {} (when partitioned)",
        "each read in full",
    ));
    out.extend(indirect(
        &locks.default_partition,
        "the DEFAULT partition of {}, if it has one",
        "read in full",
    ));
    out.extend(indirect(
        &locks.tables_using_domain,
        "every table with a column of domain {}",
        "each such column read in full",
    ));
    for reach in &locks.foreign_keys {
        let on = match reach {
            ForeignKeyReach::Drops { table, keys } => match keys {
                DroppedKeys::All => format!("the tables the foreign keys of {table} reference"),
                DroppedKeys::Constraint(k) => {
                    format!("the table {k} references, if it is a foreign key")
                }
                DroppedKeys::Column(c) => {
                    format!("the table a foreign key on {table}.{c} references, if any")
                }
            },
            ForeignKeyReach::CascadesFrom(t) => {
                format!("every table whose foreign key references {t}")
            }
        };
        let blocks = reach.mode().blocks();
        out.push(format!("{} on {on} (blocks {blocks})", reach.mode()));
    }
    if locks.refused_if_partitioned {
        out.push("refused on a partitioned table".to_string());
    }
    if locks.cascades {
        out.push(
            "CASCADE: every object that depends on the named ones is dropped or emptied too \
             (views, other tables' foreign keys, the tables referencing a truncated one), under \
             ACCESS EXCLUSIVE on each table it reaches"
                .to_string(),
        );
    }
    out
}

/// The Markdown of `docs/locks.md`.
pub fn locks_markdown() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Locks taken by schema changes\n\n\
         Generated from pgcalm's lock table (`crates/pgcalm-lint/src/locks/`), the one \
         definition that `pgcalm lint`, `pgcalm trace` and `pgcalm migrate --plan` use; a test \
         fails when this file is out of date (`PGCALM_UPDATE_DOCS=1 cargo test -p pgcalm-lint \
         --test docs` rewrites it).\n\n\
         \"Blocks\" is what the lock blocks while it is held **or queued**: reads are `SELECT` \
         (ACCESS SHARE), writes are `INSERT`/`UPDATE`/`DELETE` (ROW EXCLUSIVE). \"Rewrite\" \
         means a new copy of the table (new relfilenode); \"scan\" means every row is read \
         (validation, index build) while the lock is held.\n\n\
         ## PostgreSQL {}\n",
        PgVersion::DEFAULT.0
    );
    let _ = writeln!(
        out,
        "| Statement | Example | Lock | Blocks | Rewrite | Scan | Outside a transaction |\n\
         |---|---|---|---|---|---|---|"
    );
    for (form, sql) in EXAMPLES {
        let [lock, blocks, rewrite, scan, outside] = cells(&locks_of(sql, PgVersion::DEFAULT));
        let _ = writeln!(
            out,
            "| {form} | `{}` | {lock} | {blocks} | {rewrite} | {scan} | {outside} |",
            sql.replace('|', "\\|")
        );
    }
    let _ = writeln!(
        out,
        "\n## Beyond the relations a statement names\n\n\
         What the catalog decides: lint knows these objects only when the file (or \
         `--schema`) shows them.\n\n\
         | Statement | Example | Also |\n|---|---|---|"
    );
    for (form, sql) in EXAMPLES {
        let also = beyond(&locks_of(sql, PgVersion::DEFAULT));
        if !also.is_empty() {
            let _ = writeln!(
                out,
                "| {form} | `{}` | {} |",
                sql.replace('|', "\\|"),
                also.join("<br>")
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## What changes with the version\n\n\
         Forms whose lock, rewrite or scan differ between PostgreSQL {}; each cell is \
         lock / rewrite / scan.\n",
        VERSIONS
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let header: Vec<String> = VERSIONS.iter().map(|v| format!("PG {v}")).collect();
    let _ = writeln!(
        out,
        "| Statement | {} |\n|---|{}",
        header.join(" | "),
        "---|".repeat(VERSIONS.len())
    );
    for (form, sql) in EXAMPLES {
        let per_version: Vec<String> = VERSIONS
            .iter()
            .map(|&v| {
                let locks = locks_of(sql, PgVersion(v));
                let mut cell = locks
                    .locks
                    .iter()
                    .map(|l| {
                        let or_no = |e: Effect| {
                            if e == Effect::No {
                                "no".into()
                            } else {
                                effect(e)
                            }
                        };
                        format!(
                            "{} on {} / {} / {}",
                            l.mode,
                            l.target,
                            or_no(l.rewrite),
                            or_no(l.scan)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>");
                if cell.is_empty() {
                    cell.push_str("no table lock");
                }
                if locks.outside_transaction {
                    cell.push_str(" (outside a transaction)");
                }
                cell
            })
            .collect();
        if per_version.iter().any(|c| c != &per_version[0]) {
            let _ = writeln!(out, "| {form} | {} |", per_version.join(" | "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_to_one_statement_with_a_label() {
        for (form, sql) in EXAMPLES {
            let locks = locks_of(sql, PgVersion::DEFAULT);
            assert!(!locks.label.is_empty(), "{form}");
        }
    }
}
