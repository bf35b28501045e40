//! The rules, one per file. To add one: give it a [`RuleId`] (its name, severity, hazard
//! and trace evidence, in `rule_id.rs`), write `rules/<name>.rs` with a `pub static RULE:
//! Rule` (the id and its check) and its inline snapshot tests, then add its `mod` line
//! and `&<name>::RULE` to [`ALL`] below, in the id's place.

use crate::engine::Rule;
#[cfg(doc)]
use crate::rule_id::RuleId;

mod accumulated_locks;
mod adding_domain_constraint;
mod adding_exclusion_constraint;
mod adding_field_with_volatile_default;
mod adding_not_null_column_without_default;
mod adding_primary_key;
mod adding_serial_column;
mod adding_stored_generated_column;
mod adding_unique_constraint;
mod attaching_partition;
mod backfill_in_ddl_transaction;
mod breaking_replica_identity;
mod changing_column_type;
mod concurrent_index_if_not_exists;
mod concurrent_index_on_partitioned_table;
mod concurrently_in_transaction;
mod constraint_missing_not_valid;
mod detach_partition_non_concurrent;
mod disabling_triggers;
mod dropping_column;
mod dropping_default_on_not_null_column;
mod dropping_schema;
mod dropping_table;
mod dropping_with_cascade;
mod dynamic_sql;
mod enum_value_used_in_transaction;
pub(crate) mod fix_check;
mod missing_lock_timeout;
mod prefer_jsonb;
mod primary_key_using_index_nullable;
pub(crate) mod recipe;
mod refresh_materialized_view_non_concurrent;
mod reindex_non_concurrent;
mod renaming_column;
mod renaming_schema;
mod renaming_table;
mod require_concurrent_index_creation;
mod require_concurrent_index_deletion;
mod setting_not_null;
mod table_rewrite_command;
mod truncating_table;
mod unbatched_backfill;
mod unique_like;

/// Every rule, in the order their findings are listed for one statement.
pub(crate) static ALL: &[&Rule] = &[
    &missing_lock_timeout::RULE,
    &require_concurrent_index_creation::RULE,
    &require_concurrent_index_deletion::RULE,
    &concurrently_in_transaction::RULE,
    &constraint_missing_not_valid::RULE,
    &adding_unique_constraint::RULE,
    &adding_primary_key::RULE,
    &primary_key_using_index_nullable::RULE,
    &setting_not_null::RULE,
    &adding_field_with_volatile_default::RULE,
    &adding_serial_column::RULE,
    &adding_stored_generated_column::RULE,
    &adding_not_null_column_without_default::RULE,
    &changing_column_type::RULE,
    &renaming_column::RULE,
    &renaming_table::RULE,
    &dropping_column::RULE,
    &dropping_table::RULE,
    &dropping_default_on_not_null_column::RULE,
    &adding_exclusion_constraint::RULE,
    &backfill_in_ddl_transaction::RULE,
    &unbatched_backfill::RULE,
    &table_rewrite_command::RULE,
    &prefer_jsonb::RULE,
    &reindex_non_concurrent::RULE,
    &truncating_table::RULE,
    &dropping_with_cascade::RULE,
    &dropping_schema::RULE,
    &renaming_schema::RULE,
    &refresh_materialized_view_non_concurrent::RULE,
    &attaching_partition::RULE,
    &detach_partition_non_concurrent::RULE,
    &concurrent_index_on_partitioned_table::RULE,
    &breaking_replica_identity::RULE,
    &disabling_triggers::RULE,
    &concurrent_index_if_not_exists::RULE,
    &adding_domain_constraint::RULE,
    &enum_value_used_in_transaction::RULE,
    &accumulated_locks::RULE,
    &dynamic_sql::RULE,
];

/// The one-row bookkeeping tables of migration tools (their version or applied-migration
/// rows): updating them is not a backfill.
const VERSION_TABLES: &[&str] = &[
    "alembic_version",
    "schema_migrations",
    "schema_version",
    "flyway_schema_history",
    "__diesel_schema_migrations",
    "_prisma_migrations",
    "goose_db_version",
    "django_migrations",
    "ar_internal_metadata",
    "knex_migrations",
    "knex_migrations_lock",
    "__efmigrationshistory",
    "databasechangelog",
    "databasechangeloglock",
    "gorp_migrations",
    "seaql_migrations",
    "_sqlx_migrations",
    "schema_migrations_history",
];

/// Whether an UPDATE or DELETE of the table is bookkeeping, not a data change of the
/// application's: a migration tool's version table ([`VERSION_TABLES`], any schema, any
/// case) or a system catalog (`pg_catalog`, `pg_*`: `UPDATE pg_index SET indisready`).
pub(crate) fn is_bookkeeping_table(table: &crate::RelName) -> bool {
    table.schema.as_deref() == Some("pg_catalog")
        || table.name.starts_with("pg_")
        || VERSION_TABLES
            .iter()
            .any(|v| v.eq_ignore_ascii_case(&table.name))
}

/// An identifier as SQL: quoted only when PostgreSQL needs it.
pub(crate) fn ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()))
        && !is_reserved(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_reserved(name: &str) -> bool {
    // A keyword other than an unreserved one (PostgreSQL's quote_identifier quotes those:
    // some cannot be a bare column, type or function name). A set read once, not the
    // scanner: a fix names many identifiers, and a scanner call per name cost more than
    // the rule.
    static QUOTED: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    QUOTED.get_or_init(quoted_keywords).contains(name)
}

/// PostgreSQL's keywords other than the unreserved ones (reserved, column name, type or
/// function name), from pg_query's own scanner: every keyword is a token of the grammar
/// named after it (`ABORT_P` for abort), and one scan of all the names gives each its kind.
fn quoted_keywords() -> std::collections::HashSet<String> {
    use pg_query::protobuf::{KeywordKind, Token};
    let words: Vec<String> = (0..2000)
        .filter_map(|t| Token::try_from(t).ok())
        .map(|t| t.as_str_name().trim_end_matches("_P").to_lowercase())
        .collect();
    let text = words.join(" ");
    let tokens = pg_query::scan_tokens(&text).unwrap_or_default();
    tokens
        .iter()
        .filter(|t| {
            t.keyword_kind != KeywordKind::NoKeyword as i32
                && t.keyword_kind != KeywordKind::UnreservedKeyword as i32
        })
        .filter_map(|t| text.get(t.start as usize..t.end as usize))
        .map(str::to_string)
        .collect()
}

/// A relation name as SQL.
pub(crate) fn rel(name: &crate::RelName) -> String {
    match &name.schema {
        Some(s) => format!("{}.{}", ident(s), ident(&name.name)),
        None => ident(&name.name),
    }
}

/// The safe way to make a column NOT NULL-proven: a CHECK added NOT VALID (a short
/// ACCESS EXCLUSIVE, no scan), then VALIDATEd (a scan under SHARE UPDATE EXCLUSIVE).
/// From PostgreSQL 12, `SET NOT NULL` (and a primary key) then skips its own scan.
/// Returns (add, validate, drop) statements.
pub(crate) fn not_null_check_recipe(
    table: &crate::RelName,
    column: &str,
) -> (String, String, String) {
    let name = ident(&format!("{}_{column}_not_null", table.name));
    let t = rel(table);
    (
        format!(
            "ALTER TABLE {t} ADD CONSTRAINT {name} CHECK ({} IS NOT NULL) NOT VALID;",
            ident(column)
        ),
        format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name};"),
        format!("ALTER TABLE {t} DROP CONSTRAINT {name};"),
    )
}

/// The text after this statement up to the end of its transaction: the first COMMIT,
/// ROLLBACK, END or ABORT, or the next migration section marker. Found by scanning a
/// window that grows from 512 bytes (the end is usually a few statements away), so a long
/// file is not re-read for every rename.
fn rest_of_transaction<'a>(cx: &crate::engine::Cx<'a>) -> &'a str {
    let rest = &cx.source[cx.stmt.span.end..];
    let mut window = 512;
    loop {
        let mut end = window.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let text = &rest[..end];
        if let Ok(tokens) = crate::lexer::tokens(text) {
            let mut statement_start = true;
            for t in &tokens {
                let kind = t.token;
                if kind == pg_query::protobuf::Token::SqlComment as i32
                    || kind == pg_query::protobuf::Token::CComment as i32
                {
                    if text[t.start as usize..t.end as usize].contains("migrate:") {
                        return &text[..t.start as usize];
                    }
                    continue;
                }
                let ends = [
                    pg_query::protobuf::Token::Commit,
                    pg_query::protobuf::Token::Rollback,
                    pg_query::protobuf::Token::EndP,
                    pg_query::protobuf::Token::AbortP,
                ];
                if statement_start && ends.iter().any(|e| kind == *e as i32) {
                    return &text[..t.start as usize];
                }
                statement_start = kind == pg_query::protobuf::Token::Ascii59 as i32;
            }
            if end == rest.len() {
                return text;
            }
        } else if end == rest.len() {
            return "";
        }
        window *= 4;
    }
}

/// The statements after this one in its transaction, parsed (empty outside a transaction,
/// or when the rest does not parse). Parses only when a rule asks, for the few statements
/// whose verdict depends on what follows (a view over a renamed table, a dropped column
/// added back), and once per statement whichever rules ask.
pub(crate) fn later_in_transaction<'c>(cx: &'c crate::engine::Cx<'_>) -> &'c [pg_query::NodeEnum] {
    cx.shared.later_in_transaction.get_or_init(|| {
        if !cx.state.in_transaction {
            return Vec::new();
        }
        // Split by the scanner, then each statement parsed on its own: a tree at a time,
        // never the whole rest of a long file at once.
        let rest = rest_of_transaction(cx);
        let Ok(statements) = crate::split::split_unparsed(rest, 0..rest.len()) else {
            return Vec::new();
        };
        statements
            .iter()
            .filter_map(|s| crate::split::parse_first(s.sql(rest)))
            .collect()
    })
}

/// Whether one of `later` (the rest of the transaction: [`later_in_transaction`]) renames
/// `table` (`ALTER TABLE t RENAME TO ...`): running code names it by its old name and
/// fails once the transaction commits, whatever else it does to the table.
pub(crate) fn renamed_among(later: &[pg_query::NodeEnum], table: &crate::RelName) -> bool {
    use pg_query::protobuf::ObjectType;
    later.iter().any(|node| {
        matches!(node, pg_query::NodeEnum::RenameStmt(r)
            if r.rename_type == ObjectType::ObjectTable as i32
                && r.subname.is_empty()
                && r.relation.as_ref().is_some_and(|v| crate::RelName::from_range_var(v).same_as(table)))
    })
}

/// The ALTER TABLE subcommands of a statement, with their subtype.
pub(crate) fn alter_table_cmds(
    node: &pg_query::NodeEnum,
) -> Option<(crate::RelName, AlterCmds<'_>)> {
    use pg_query::NodeEnum;
    use pg_query::protobuf::AlterTableType;
    let NodeEnum::AlterTableStmt(a) = node else {
        return None;
    };
    let table = crate::RelName::from_range_var(a.relation.as_ref()?);
    let cmds = a
        .cmds
        .iter()
        .filter_map(|c| match &c.node {
            Some(NodeEnum::AlterTableCmd(cmd)) => Some((
                AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined),
                cmd.as_ref(),
            )),
            _ => None,
        })
        .collect();
    Some((table, cmds))
}

/// A subcommand of an `ALTER TABLE` with its subtype.
pub(crate) type AlterCmd<'a> = (
    pg_query::protobuf::AlterTableType,
    &'a pg_query::protobuf::AlterTableCmd,
);

/// The subcommands of an `ALTER TABLE`, each with its subtype.
pub(crate) type AlterCmds<'a> = Vec<AlterCmd<'a>>;

/// An `ALTER TABLE` on a table that existed before the unit: the table, its
/// subcommands and the statement's lock on it.
pub(crate) type AlterExisting<'a> = (crate::RelName, AlterCmds<'a>, &'a crate::RelationLock);

/// An `ALTER TABLE` on a table that existed before the unit: the table, its
/// subcommands and the statement's lock on it (`None` for other statements and for
/// tables created earlier in the unit). Worked out once per statement.
pub(crate) fn alter_existing_table<'c, 'a>(
    cx: &'c crate::engine::Cx<'a>,
) -> Option<(
    &'c crate::RelName,
    &'c [AlterCmd<'a>],
    &'a crate::RelationLock,
)> {
    cx.shared
        .alter_existing_table
        .get_or_init(|| {
            let (table, cmds) = alter_table_cmds(cx.node)?;
            let lock = cx.existing_lock_on(&table)?;
            Some((table, cmds, lock))
        })
        .as_ref()
        .map(|(table, cmds, lock)| (table, cmds.as_slice(), *lock))
}

/// The objects a `DROP` names, each with its name as written (`s.t`, `mood`, `f`) and,
/// for a relation, its name as a relation.
pub(crate) fn dropped_objects(
    d: &pg_query::protobuf::DropStmt,
) -> Vec<(String, Option<crate::RelName>)> {
    use pg_query::NodeEnum;
    use pg_query::protobuf::ObjectType;
    let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    let relation = matches!(
        kind,
        ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectSequence
            | ObjectType::ObjectForeignTable
            | ObjectType::ObjectIndex
    );
    let last = |names: &[pg_query::Node]| crate::unit::string_list(names).pop();
    d.objects
        .iter()
        .filter_map(|o| match o.node.as_ref()? {
            NodeEnum::List(l) if relation => {
                let r = crate::RelName::from_names(&l.items)?;
                Some((r.to_string(), Some(r)))
            }
            NodeEnum::List(l) => last(&l.items).map(|n| (n, None)),
            NodeEnum::String(s) => Some((s.sval.clone(), None)),
            NodeEnum::TypeName(t) => last(&t.names).map(|n| (n, None)),
            NodeEnum::ObjectWithArgs(f) => last(&f.objname).map(|n| (n, None)),
            _ => None,
        })
        .collect()
}

/// The constraint an `ADD CONSTRAINT` (or `ADD COLUMN ... constraint`) subcommand adds.
pub(crate) fn added_constraint(
    cmd: &pg_query::protobuf::AlterTableCmd,
) -> Option<&pg_query::protobuf::Constraint> {
    match cmd.def.as_deref()?.node.as_ref()? {
        pg_query::NodeEnum::Constraint(c) => Some(c),
        _ => None,
    }
}

/// Helpers for the rules' inline snapshot tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::fmt::Write as _;

    use crate::{LintOptions, PgVersion, UnitKind, lint_sql};

    /// Plain SQL at the default version: only `rule`'s findings, rendered.
    pub(crate) fn check(rule: &str, sql: &str) -> String {
        check_with(rule, sql, UnitKind::PlainSql, &LintOptions::default())
    }

    /// A transactional pgcalm migration section.
    pub(crate) fn check_migration(rule: &str, sql: &str, transaction: bool) -> String {
        check_with(
            rule,
            sql,
            UnitKind::Migration { transaction },
            &LintOptions::default(),
        )
    }

    /// Plain SQL on another PostgreSQL version.
    pub(crate) fn check_pg(rule: &str, sql: &str, major: u32) -> String {
        let options = LintOptions {
            pg_version: PgVersion(major),
            ..LintOptions::default()
        };
        check_with(rule, sql, UnitKind::PlainSql, &options)
    }

    /// Plain SQL with the existing tables of a schema (`--schema`).
    pub(crate) fn check_schema(rule: &str, schema: &str, sql: &str) -> String {
        let options = LintOptions {
            schema: Some(std::sync::Arc::new(
                crate::Schema::from_sql(schema).expect("test schema parses"),
            )),
            ..LintOptions::default()
        };
        check_with(rule, sql, UnitKind::PlainSql, &options)
    }

    /// The lines `rule` flags in plain SQL (for cases whose message is snapshotted once
    /// elsewhere).
    pub(crate) fn lines(rule: &str, sql: &str) -> Vec<usize> {
        lint_sql(sql, UnitKind::PlainSql, &LintOptions::default())
            .expect("test SQL parses")
            .findings
            .iter()
            .filter(|f| f.rule.name() == rule)
            .map(|f| f.span.line)
            .collect()
    }

    /// Only `rule`'s findings, one block each; `ok` when there are none. Every fix must
    /// be right where the SQL runs ([`super::fix_check`]).
    pub(crate) fn check_with(
        rule: &str,
        sql: &str,
        kind: UnitKind,
        options: &LintOptions,
    ) -> String {
        let rule: crate::RuleId = rule.parse().expect("a rule's name");
        let result = lint_sql(sql, kind, options).expect("test SQL parses");
        let mut out = String::new();
        for f in result.findings.iter().filter(|f| f.rule == rule) {
            let _ = writeln!(
                out,
                "{}[{}] {}:{}",
                f.severity, f.rule, f.span.line, f.span.column
            );
            if let Some(label) = f.lock_label() {
                let _ = writeln!(out, "  lock: {label}");
            }
            let _ = writeln!(out, "  {}", f.message);
            let _ = writeln!(out, "  help: {}", f.help);
            if let Some(fix) = &f.fix_sql {
                // Right where the SQL runs: parses, raises nothing it fixes or adds.
                let original: Vec<&str> = result
                    .findings
                    .iter()
                    .filter(|g| g.span.start == f.span.start)
                    .map(|g| g.rule.name())
                    .collect();
                let problems = super::fix_check::fix_problems(
                    sql,
                    f.span.range(),
                    rule.name(),
                    fix,
                    &original,
                    |text| {
                        lint_sql(text, kind, options)
                            .expect("the SQL with the fix in place parses")
                            .findings
                            .iter()
                            .map(|g| (g.rule.to_string(), g.span.start))
                            .collect()
                    },
                );
                assert!(
                    problems.is_empty(),
                    "the fix of {rule} at line {} is wrong: {problems:?}\n{fix}",
                    f.span.line
                );
                let _ = writeln!(out, "  fix:");
                for line in fix.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        if out.is_empty() { "ok".into() } else { out }
    }
}

#[cfg(test)]
mod tests {
    use crate::rule_id::RuleId;

    #[test]
    fn the_quoted_keywords_are_the_scanners_reserved_ones() {
        use pg_query::protobuf::{KeywordKind, Token};
        // The set read in one scan: the kwlist.h of pg_query's PostgreSQL has 164 of them.
        assert_eq!(super::quoted_keywords().len(), 164);
        // Every keyword is a token of the grammar, named after it (`ABORT_P` for abort).
        let mut keywords = 0;
        for token in (0..2000).filter_map(|t| Token::try_from(t).ok()) {
            let word = token.as_str_name().trim_end_matches("_P").to_lowercase();
            let kind = pg_query::scan_tokens(&word)
                .ok()
                .and_then(|t| t.first().map(|t| t.keyword_kind))
                .unwrap_or_default();
            if kind != KeywordKind::NoKeyword as i32 {
                keywords += 1;
            }
            let quoted = kind != KeywordKind::NoKeyword as i32
                && kind != KeywordKind::UnreservedKeyword as i32;
            assert_eq!(super::is_reserved(&word), quoted, "{word}");
        }
        assert!(keywords > 400, "the tokens name the keywords: {keywords}");
    }

    #[test]
    fn every_rule_id_has_its_check_in_all_in_the_same_order() {
        let registered: Vec<RuleId> = super::ALL.iter().map(|r| r.id).collect();
        assert_eq!(registered, RuleId::rules().collect::<Vec<_>>());
    }
}
