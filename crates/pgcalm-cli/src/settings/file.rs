//! pgcalm.toml as written: one struct per section, each `deny_unknown_fields`, read
//! whole before any command runs. A misspelt section or key, or a bad value, is an error
//! naming file:line:column, what is valid there and, when a name is close, the fix.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use pgcalm_lint::RuleId;
use pgcalm_migrate::{HumanDuration, StartPoint};
use serde::Deserialize;
use serde::de::{self, Visitor};

/// The whole file; a section left out is its default (empty).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub database: DatabaseSection,
    pub migrations: MigrationsSection,
    pub migrate: MigrateSection,
    pub lint: LintSection,
    pub up: UpSection,
}

/// `[database]`: which server and database.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct DatabaseSection {
    /// Database name on the embedded server.
    pub name: Option<String>,
    /// Directory of the embedded cluster (relative to the file).
    pub data_dir: Option<PathBuf>,
    /// A server of one's own instead of the embedded one.
    pub url: Option<String>,
}

/// `[migrations]`: where the migration files are.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct MigrationsSection {
    /// Directory of `<app>/<NNNN>_<name>.sql` files (relative to the file).
    pub dir: Option<PathBuf>,
}

/// `[migrate]`: the runner's policy (`pgcalm_migrate::Policy`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct MigrateSection {
    pub lock_timeout: Option<HumanDuration>,
    pub concurrent_lock_timeout: Option<HumanDuration>,
    pub statement_timeout: Option<HumanDuration>,
    pub max_retries: Option<u32>,
    pub retry_initial: Option<HumanDuration>,
    pub retry_max: Option<HumanDuration>,
    pub wait: Option<HumanDuration>,
    pub client_connection_check_interval: Option<HumanDuration>,
    pub allow_risky: Option<bool>,
    pub cancel_idle_blockers: Option<HumanDuration>,
    pub max_replica_lag: Option<HumanDuration>,
    pub direct_url: Option<String>,
}

/// `[lint]`: rules and assumptions of `pgcalm lint`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LintSection {
    /// Rules switched off.
    pub disable: Vec<RuleName>,
    /// Rules switched on (including ones off by default).
    pub enable: Vec<RuleName>,
    pub pg_version: Option<u32>,
    pub assume_in_transaction: Option<bool>,
    /// The migration tool that runs the files (`pgcalm lint --tool`).
    pub tool: Option<ToolName>,
    /// Schema SQL of the existing tables (relative to the file).
    pub schema: Option<PathBuf>,
    /// With a database: tables with fewer estimated rows are small (warnings).
    pub small_table_rows: Option<f64>,
}

/// `[up]`: what `pgcalm up` applies after starting the server.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct UpSection {
    /// `app:migration` pairs to migrate forward to.
    pub migrate_to: Vec<StartPoint>,
}

/// The pgcalm.toml `pgcalm init` writes: every key, commented out at its default (the
/// file means exactly the defaults), with what it does. A test uncomments every key and
/// parses the result, so the file never names a key or value the structs above refuse.
pub(crate) fn starter_config() -> &'static str {
    STARTER_CONFIG
}

const STARTER_CONFIG: &str = r#"# pgcalm configuration: this directory is a pgcalm project. Every pgcalm command run
# here or in a subdirectory (or with `pgcalm -C DIR`) reads this file.
# Precedence: flags > environment (DATABASE_URL, PGCALM_*) > this file > defaults.
# Every key below is commented out at its default; paths are relative to this file.

[database]
# The embedded PostgreSQL's database.
# name = "risky_migrations"
# Directory of the embedded cluster (`pgcalm up` creates it; `pgcalm down --volumes`
# deletes it).
# data_dir = ".pgcalm"
# A server of your own instead of the embedded one (better: DATABASE_URL, which keeps
# the password out of this file).
# url = "postgresql://app@127.0.0.1:5432/app"

[migrations]
# Migration files: <dir>/<app>/<NNNN>_<name>.sql, each with a `-- migrate:up` and a
# `-- migrate:down` section.
# dir = "migrations"

[migrate]
# The longest the application may queue behind a lock request of a migration statement.
# lock_timeout = "2s"
# CONCURRENTLY builds/drops and VALIDATE take only SHARE UPDATE EXCLUSIVE: queued, they
# block no reads or writes, so they may wait longer (unset: lock_timeout).
# concurrent_lock_timeout = "5min"
# statement_timeout for statements stronger than SHARE UPDATE EXCLUSIVE (unset: the
# server's).
# statement_timeout = "1h"
# Lock-timeout retries (jittered exponential backoff from retry_initial up to retry_max).
# max_retries = 10
# retry_initial = "500ms"
# retry_max = "30s"
# Give up after waiting this long for another runner (unset: wait as long as it takes).
# wait = "10min"
# How soon the server ends the statement of a runner that died (PostgreSQL 14+; "0" off).
# client_connection_check_interval = "1s"
# Run migrations `pgcalm lint` finds risky, as written (same as --allow-risky).
# allow_risky = false
# End sessions a migration waits for that sit idle in a transaction longer than this
# (pg_terminate_backend; each is printed and journaled). Unset: never.
# cancel_idle_blockers = "30s"
# A backfill (`-- pgcalm:backfill` above an UPDATE) waits before each batch while a
# replica's replay lag is above this ("0": never waits).
# max_replica_lag = "1s"
# The server's own address when DATABASE_URL is a transaction pooler such as PgBouncer
# (better in PGCALM_MIGRATE_URL: this file may be shared). Unset: no direct route.
# direct_url = "postgresql://app@db.internal:5432/app"

[lint]
# Rules off, and rules on (`pgcalm lint --list-rules` lists them).
# disable = ["renaming-column"]
# enable = []
# PostgreSQL major version the migrations will run on.
# pg_version = 15
# Plain SQL files are run inside one transaction by the tool that applies them.
# assume_in_transaction = false
# The migration tool that runs the files (prisma, golang-migrate, goose, flyway, dbmate,
# diesel, sqitch, alembic, django, rails, psql): each file's transaction mode. Unset:
# detected from each file's layout.
# tool = "prisma"
# Schema of the existing tables (`pg_dump --schema-only`): column types, NOT NULLs.
# schema = "schema.sql"
# With a database (--database-url, or the embedded server when it runs), findings that
# grow with the table (rewrites, validating scans, write-blocking index builds) are
# graded by its estimated rows: under this many a warning, else an error.
# small_table_rows = 10000

[up]
# Migrations `pgcalm up` applies after starting the server, forward only ("app:NNNN").
# migrate_to = ["app:0001"]
"#;

/// A lint rule, by its name. pgcalm_lint's `RuleId` parses it; this visitor is there
/// so that the error of a misspelt name carries the name's own line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RuleName(pub RuleId);

impl<'de> Deserialize<'de> for RuleName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl Visitor<'_> for Names {
            type Value = RuleName;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a rule name (`pgcalm lint --list-rules`)")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<RuleName, E> {
                rule_name(name).map(RuleName).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Names)
    }
}

/// A migration tool, by its name (`[lint] tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ToolName(pub pgcalm_lint::Tool);

impl<'de> Deserialize<'de> for ToolName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        tool_name(&name).map(ToolName).map_err(de::Error::custom)
    }
}

/// A lint rule by name; an unknown one names the closest rule.
pub(super) fn rule_name(name: &str) -> Result<RuleId, String> {
    name.parse::<RuleId>().map_err(|e| {
        let names: Vec<&'static str> = RuleId::rules().map(RuleId::name).collect();
        match closest(name, &names) {
            Some(close) => format!("{e}\n  fix: did you mean `{close}`?"),
            None => e.to_string(),
        }
    })
}

/// A migration tool by name; an unknown one names the closest tool.
pub(super) fn tool_name(name: &str) -> Result<pgcalm_lint::Tool, String> {
    name.parse::<pgcalm_lint::Tool>().map_err(|e| {
        let names = pgcalm_lint::Tool::ALL.map(pgcalm_lint::Tool::name);
        match closest(name, &names) {
            Some(close) => format!("{e}\n  fix: did you mean `{close}`?"),
            None => e.to_string(),
        }
    })
}

/// Reads and checks `path`.
pub(super) fn read(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading config file {}: {e}", path.display()))?;
    parse(&path.display().to_string(), &text).map_err(anyhow::Error::msg)
}

/// Parses the text of the file `name`; the error is the message to print.
pub(super) fn parse(name: &str, text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| explain(name, text, &e))
}

/// `name:line:column: what is wrong`, then what is valid there and the fix.
fn explain(name: &str, text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return format!("{name}: {}", e.message().trim_end());
    };
    let (line, column) = line_column(text, span.start);
    let mut out = format!("{name}:{line}:{column}: ");
    match place(text, &span) {
        Place::Section(section) => {
            let sections = fields_of::<ConfigFile>();
            let _ = write!(
                out,
                "unknown section [{section}]\n  the sections are: {}",
                bracketed(sections)
            );
            if let Some(close) = closest(&section, sections) {
                let _ = write!(out, "\n  fix: did you mean [{close}]?");
            }
        }
        Place::TopLevelKey(key) => {
            let sections = fields_of::<ConfigFile>();
            let _ = write!(
                out,
                "`{key}` is outside any section\n  the sections are: {}",
                bracketed(sections)
            );
            if let Some(home) = sections
                .iter()
                .find(|s| section_fields(s).contains(&key.as_str()))
            {
                let _ = write!(out, "\n  fix: put it under [{home}]");
            }
        }
        Place::Key { section, key } => {
            let keys = section_fields(&section);
            let _ = write!(
                out,
                "unknown key `{key}` in [{section}]\n  the keys of [{section}] are: {}",
                keys.join(", ")
            );
            if let Some(close) = closest(&key, keys) {
                let _ = write!(out, "\n  fix: did you mean `{close}`?");
            }
        }
        Place::Value { section, key } => {
            let _ = write!(out, "[{section}] {key}: {}", e.message().trim_end());
        }
        Place::Other => out.push_str(e.message().trim_end()),
    }
    out
}

/// Where in the file an error's span is.
enum Place {
    /// A table header that names no section.
    Section(String),
    /// A key before the first table header.
    TopLevelKey(String),
    /// A key of a section that the section does not have.
    Key { section: String, key: String },
    /// The value of a key (or an element of it).
    Value { section: String, key: String },
    /// Anything else (a syntax error).
    Other,
}

fn place(text: &str, span: &Range<usize>) -> Place {
    let Ok(root) = toml::de::DeTable::parse(text) else {
        return Place::Other;
    };
    let within = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    for (name, value) in root.get_ref() {
        if name.span() == *span {
            let name = name.get_ref().to_string();
            return match value.get_ref().is_table() {
                true => Place::Section(name),
                false => Place::TopLevelKey(name),
            };
        }
        let Some(table) = value.get_ref().as_table() else {
            continue;
        };
        for (key, value) in table {
            let (section, key_name) = (name.get_ref().to_string(), key.get_ref().to_string());
            if key.span() == *span {
                return Place::Key {
                    section,
                    key: key_name,
                };
            }
            if within(value.span()) {
                return Place::Value {
                    section,
                    key: key_name,
                };
            }
        }
    }
    Place::Other
}

/// The keys of a section, from its struct.
fn section_fields(section: &str) -> &'static [&'static str] {
    match section {
        "database" => fields_of::<DatabaseSection>(),
        "migrations" => fields_of::<MigrationsSection>(),
        "migrate" => fields_of::<MigrateSection>(),
        "lint" => fields_of::<LintSection>(),
        "up" => fields_of::<UpSection>(),
        _ => &[],
    }
}

/// `[a], [b]`.
fn bracketed(sections: &[&str]) -> String {
    sections
        .iter()
        .map(|s| format!("[{s}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The valid name closest to a misspelt one, if any is close.
fn closest(name: &str, valid: &[&'static str]) -> Option<&'static str> {
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(name, v), *v))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The field names serde gives a struct's deserializer: the one list of a section's
/// keys is the struct itself.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse("pgcalm.toml", text).unwrap_err()
    }

    #[test]
    fn the_repository_pgcalm_toml_is_valid() {
        let text = include_str!("../../../../pgcalm.toml");
        let file = parse("pgcalm.toml", text).unwrap();
        assert_eq!(file.up.migrate_to, ["demoapp:0001".parse().unwrap()]);
        assert_eq!(file.migrate.lock_timeout, Some("2s".parse().unwrap()));
    }

    #[test]
    fn the_starter_config_is_the_defaults_and_every_key_in_it_is_valid() {
        let text = starter_config();
        let file = parse("pgcalm.toml", text).unwrap();
        assert!(file.up.migrate_to.is_empty() && file.migrate.lock_timeout.is_none());
        // Uncomment every `# key = value` line: still valid, and it names every key.
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    format!("{rest}\n")
                }
                _ => format!("{line}\n"),
            })
            .collect();
        let all = parse("pgcalm.toml", &uncommented).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.migrate.max_retries, Some(10));
        assert_eq!(all.migrate.lock_timeout, Some("2s".parse().unwrap()));
        for section in fields_of::<ConfigFile>() {
            assert!(text.contains(&format!("[{section}]")), "[{section}]");
            for key in section_fields(section) {
                assert!(
                    uncommented.contains(&format!("\n{key} = ")),
                    "[{section}] {key} is not in the starter config"
                );
            }
        }
    }

    #[test]
    fn section_keys_come_from_the_structs() {
        assert_eq!(
            fields_of::<ConfigFile>(),
            ["database", "migrations", "migrate", "lint", "up"]
        );
        assert_eq!(fields_of::<MigrationsSection>(), ["dir"]);
    }

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "a\n# é\n  [x]";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, text.find('[').unwrap()), (3, 3));
        assert_eq!(line_column("# é\nk", 2 + "é".len()), (1, 4));
    }

    #[test]
    fn names_what_is_wrong_where() {
        insta::assert_snapshot!(error("[database]\nname = \"x\"\n\n[migrations]\ndirectory = \"m\"\n"), @"
        pgcalm.toml:5:1: unknown key `directory` in [migrations]
          the keys of [migrations] are: dir
          fix: did you mean `dir`?
        ");
        insta::assert_snapshot!(error("[migrat]\nlock_timeout = \"1s\"\n"), @r"
        pgcalm.toml:1:2: unknown section [migrat]
          the sections are: [database], [migrations], [migrate], [lint], [up]
          fix: did you mean [migrate]?
        ");
        insta::assert_snapshot!(error("lock_timeout = \"1s\"\n"), @"
        pgcalm.toml:1:1: `lock_timeout` is outside any section
          the sections are: [database], [migrations], [migrate], [lint], [up]
          fix: put it under [migrate]
        ");
        insta::assert_snapshot!(error("[migrate]\nmax_retries = \"ten\"\n"), @r#"
        pgcalm.toml:2:15: [migrate] max_retries: invalid type: string "ten", expected u32
        "#);
        insta::assert_snapshot!(error("[migrate]\nlock_timeout = 2\n"), @r#"
        pgcalm.toml:2:16: [migrate] lock_timeout: invalid type: integer `2`, expected a duration such as "2s", "500ms" or "5min"
        "#);
        let unknown_rule = error("[lint]\ndisable = [\"no-such-rule\"]\n");
        assert!(
            unknown_rule.starts_with(
                "pgcalm.toml:2:12: [lint] disable: unknown rule `no-such-rule`; the rules are: missing-lock-timeout, "
            ),
            "{unknown_rule}"
        );
        insta::assert_snapshot!(error("[migrate\nlock_timeout = \"1s\"\n"), @"pgcalm.toml:1:9: unclosed table, expected `]`");
    }
}
