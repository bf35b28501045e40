//! How the migration tools people use run a SQL file (`pgcalm lint --tool`): which part
//! of the file runs going up, and in which transaction mode. Detection from the file's
//! path and text when no tool is named. No I/O: the caller reads the files beside a
//! migration (Diesel's `metadata.toml`, Flyway's `V1__x.sql.conf`) and passes them in.
//!
//! Each tool's documented behaviour (checked against its documentation):
//! - Prisma Migrate: `migrations/<ts>_<name>/migration.sql`, sent whole as one
//!   simple-query message (prisma discussion #10601: split a CONCURRENTLY index into
//!   a migration of its own) -> [`TxMode::SimpleQuery`].
//! - golang-migrate (postgres driver): `N_name.up.sql` / `.down.sql`, executed as one
//!   string, "in a way that PostgreSQL wraps multiple statements in a single
//!   transaction" (its README, multi-statement mode) -> [`TxMode::SimpleQuery`].
//! - goose: only `-- +goose Up` runs going up; every migration in a transaction unless
//!   `-- +goose NO TRANSACTION` (goose docs, annotations) -> [`TxMode::Wrapped`] /
//!   [`TxMode::Autocommit`].
//! - Flyway: `V1__x.sql` (`U` undo, `R` repeatable); `executeInTransaction` defaults to
//!   true and a script configuration file `V1__x.sql.conf` may set it false (Flyway
//!   docs, Execute In Transaction); a PostgreSQL migration holding a statement that
//!   cannot run in a transaction (CONCURRENTLY) is run outside one.
//! - dbmate: `-- migrate:up` / `-- migrate:down`, each in a transaction unless
//!   `transaction:false` on the directive line (dbmate README).
//! - Diesel: `<version>_<name>/up.sql` / `down.sql`, each in its own transaction unless
//!   `metadata.toml` says `run_in_transaction = false` (diesel `MigrationMetadata`),
//!   which sends the file as one batch -> [`TxMode::SimpleQuery`].
//! - Sqitch: `deploy/` scripts (`revert/`, `verify/` are not up), run by psql with the
//!   script's own BEGIN/COMMIT -> [`TxMode::Autocommit`].
//! - Alembic (`alembic upgrade --sql`) and Django (`manage.py sqlmigrate`): their SQL
//!   output, with its own BEGIN/COMMIT; one piece per migration (Alembic's
//!   `-- Running upgrade a -> b` comments, Django's `BEGIN;` ... `COMMIT;` pairs).
//! - Rails: `db/migrate/*.rb` is Ruby, not linted; its SQL output (a file of SQL) runs
//!   in one transaction per migration unless `disable_ddl_transaction!`.
//! - psql: `psql -f` sends each statement on its own (no `--single-transaction`).

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

/// A migration tool `pgcalm lint --tool` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// Prisma Migrate.
    Prisma,
    /// golang-migrate.
    GolangMigrate,
    /// pressly/goose.
    Goose,
    /// Flyway.
    Flyway,
    /// dbmate.
    Dbmate,
    /// Diesel.
    Diesel,
    /// Sqitch.
    Sqitch,
    /// Alembic's `upgrade --sql` output.
    Alembic,
    /// Django's `sqlmigrate` output.
    Django,
    /// Rails (its SQL output only).
    Rails,
    /// `psql -f`.
    Psql,
}

impl Tool {
    /// Every tool, in `--help` order.
    pub const ALL: [Tool; 11] = [
        Tool::Prisma,
        Tool::GolangMigrate,
        Tool::Goose,
        Tool::Flyway,
        Tool::Dbmate,
        Tool::Diesel,
        Tool::Sqitch,
        Tool::Alembic,
        Tool::Django,
        Tool::Rails,
        Tool::Psql,
    ];

    /// Its name on the command line and in pgcalm.toml.
    pub const fn name(self) -> &'static str {
        match self {
            Tool::Prisma => "prisma",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
            Tool::Dbmate => "dbmate",
            Tool::Diesel => "diesel",
            Tool::Sqitch => "sqitch",
            Tool::Alembic => "alembic",
            Tool::Django => "django",
            Tool::Rails => "rails",
            Tool::Psql => "psql",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no tool's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown migration tool `{name}`; the tools are: {}", Tool::ALL.map(Tool::name).join(", "))]
pub struct UnknownTool {
    /// The name as given.
    pub name: String,
}

impl FromStr for Tool {
    type Err = UnknownTool;

    fn from_str(name: &str) -> Result<Tool, UnknownTool> {
        Tool::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| UnknownTool {
                name: name.to_string(),
            })
    }
}

/// How a piece of SQL is sent to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxMode {
    /// The tool wraps it in BEGIN ... COMMIT.
    Wrapped,
    /// One simple-query message: several statements run in one implicit transaction,
    /// a lone statement on its own (so CONCURRENTLY is fine there).
    SimpleQuery,
    /// Each statement on its own; BEGIN/COMMIT written in the file count.
    Autocommit,
}

impl TxMode {
    /// Whether the statements run inside one transaction, given how many there are.
    pub fn in_transaction(self, statements: usize) -> bool {
        match self {
            TxMode::Wrapped => true,
            TxMode::SimpleQuery => statements > 1,
            TxMode::Autocommit => false,
        }
    }
}

impl fmt::Display for TxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TxMode::Wrapped => "one transaction around the file",
            TxMode::SimpleQuery => "one simple-query message",
            TxMode::Autocommit => "each statement on its own",
        })
    }
}

/// Files beside a migration that change how its tool runs it (read by the caller).
#[derive(Debug, Clone, Default)]
pub struct Sidecars {
    /// Diesel's `metadata.toml` in the migration's directory.
    pub diesel_metadata: Option<String>,
    /// Flyway's script configuration `<file>.conf`.
    pub flyway_conf: Option<String>,
}

/// One piece of a file to lint: the file's text with everything else blanked (same
/// length, lines and offsets), and how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Which migration of a tool's SQL output (`1975ea83b712 -> ae1027a6acf`);
    /// `None`: the whole file is one migration.
    pub label: Option<String>,
    /// The text to lint.
    pub text: String,
    /// How it runs.
    pub mode: TxMode,
    /// Why that mode (`goose: -- +goose NO TRANSACTION`).
    pub why: String,
    /// Byte ranges of the text the tool sends each as one simple-query message (the
    /// whole text in [`TxMode::SimpleQuery`], a goose `StatementBegin` block): several
    /// statements in one run in one implicit transaction ([`crate::LintOptions`]).
    pub simple_queries: Vec<Range<usize>>,
}

/// What to do with a file under a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Lint these pieces.
    Lint(Vec<Piece>),
    /// Not linted, and why (a down migration; a Ruby file).
    Skip(String),
}

/// Guesses a file's tool from its path and text; `None` when nothing says.
pub fn detect(path: &Path, source: &str) -> Option<Tool> {
    let name = path.file_name()?.to_str()?;
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if name.ends_with(".rb") {
        return Some(Tool::Rails);
    }
    let mut alembic = false;
    for line in comment_lines(source) {
        if goose_annotation(line).is_some_and(|a| a == "up") {
            return Some(Tool::Goose);
        }
        alembic |= line.starts_with("-- Running upgrade ");
    }
    // (`-- migrate:up` is dbmate's and pgcalm's own migration format: a file with it is
    // a pgcalm migration unless --tool dbmate says otherwise.)
    if alembic {
        return Some(Tool::Alembic);
    }
    let versioned_dir = parent
        .split_once('_')
        .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    if name == "migration.sql" && versioned_dir {
        return Some(Tool::Prisma);
    }
    if (name == "up.sql" || name == "down.sql") && versioned_dir {
        return Some(Tool::Diesel);
    }
    if (name.ends_with(".up.sql") || name.ends_with(".down.sql"))
        && name
            .split('_')
            .next()
            .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(Tool::GolangMigrate);
    }
    if flyway_kind(name).is_some() {
        return Some(Tool::Flyway);
    }
    if parent_is_one_of(path, &["deploy", "revert", "verify"]) {
        return Some(Tool::Sqitch);
    }
    None
}

/// The lines of `source` that start with `--` (as `str::lines` gives them, without a
/// final `\r`), found by a SIMD search for `\n--` rather than by walking every line:
/// detection reads whole files.
fn comment_lines(source: &str) -> impl Iterator<Item = &str> {
    let bytes = source.as_bytes();
    let first = bytes.starts_with(b"--").then_some(0);
    let after_newline = memchr::memmem::find_iter(bytes, b"\n--").map(|at| at + 1);
    first.into_iter().chain(after_newline).map(move |at| {
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(source.len(), |n| at + n);
        let line = &source[at..end];
        line.strip_suffix('\r').unwrap_or(line)
    })
}

fn parent_is_one_of(path: &Path, names: &[&str]) -> bool {
    path.ancestors()
        .skip(1)
        .filter_map(|a| a.file_name()?.to_str())
        .any(|n| names.contains(&n))
}

/// Flyway's migration kinds: `V` versioned, `U` undo, `R` repeatable.
pub(crate) fn flyway_kind(name: &str) -> Option<char> {
    let (prefix, _) = name.split_once("__")?;
    let kind = prefix.chars().next()?;
    let rest = &prefix[1..];
    let ok = match kind {
        'V' | 'U' => {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
        }
        'R' => rest.is_empty(),
        _ => false,
    };
    (ok && name.ends_with(".sql")).then_some(kind)
}

/// `-- +goose up` -> `up` (lower case; goose's annotations are case-insensitive and
/// start at the beginning of the line).
fn goose_annotation(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("--")?
        .trim_start()
        .strip_prefix("+goose")?;
    Some(rest.trim().to_ascii_lowercase())
}

/// `-- migrate:up transaction:false` -> (up, transaction).
fn dbmate_directive(line: &str) -> Option<(bool, bool)> {
    let rest = line
        .trim()
        .strip_prefix("--")?
        .trim_start()
        .strip_prefix("migrate:")?;
    let mut words = rest.split_whitespace();
    let up = match words.next()? {
        "up" => true,
        "down" => false,
        _ => return None,
    };
    let transaction = !words.any(|w| w == "transaction:false");
    Some((up, transaction))
}

/// Byte ranges of each line, with its text (without the newline).
fn lines_with_offsets(source: &str) -> impl Iterator<Item = (Range<usize>, &str)> {
    let mut at = 0;
    source.split_inclusive('\n').map(move |l| {
        let start = at;
        at += l.len();
        (start..at, l.trim_end_matches(['\n', '\r']))
    })
}

/// The source with every byte outside `keep` (except newlines) a space: same length,
/// lines and offsets, so findings point at the file as written.
fn blank_outside(source: &str, keep: &[Range<usize>]) -> String {
    let mut bytes: Vec<u8> = source
        .bytes()
        .map(|b| if b == b'\n' || b == b'\r' { b } else { b' ' })
        .collect();
    for r in keep {
        let r = r.start.min(source.len())..r.end.min(source.len());
        bytes[r.clone()].copy_from_slice(&source.as_bytes()[r]);
    }
    // Kept ranges start and end on line boundaries; other bytes became ASCII.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
}

fn whole(source: &str, mode: TxMode, why: impl Into<String>) -> Plan {
    Plan::Lint(vec![Piece {
        label: None,
        text: source.to_string(),
        mode,
        why: why.into(),
        simple_queries: if mode == TxMode::SimpleQuery {
            std::iter::once(0..source.len()).collect()
        } else {
            Vec::new()
        },
    }])
}

fn down_skipped(tool: Tool) -> Plan {
    Plan::Skip(format!(
        "a {tool} down migration (lint it with --include-down)"
    ))
}

/// How `tool` runs the file at `path`: the pieces to lint, or why it is skipped.
/// `include_down`: lint down migrations too.
pub fn plan(
    tool: Tool,
    path: &Path,
    source: &str,
    sidecars: &Sidecars,
    include_down: bool,
) -> Plan {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match tool {
        Tool::Prisma => whole(
            source,
            TxMode::SimpleQuery,
            "prisma: the file is one simple-query message",
        ),
        Tool::GolangMigrate => {
            if name.ends_with(".down.sql") && !include_down {
                return down_skipped(tool);
            }
            whole(
                source,
                TxMode::SimpleQuery,
                "golang-migrate: the file is one simple-query message",
            )
        }
        Tool::Diesel => {
            if name == "down.sql" && !include_down {
                return down_skipped(tool);
            }
            let no_tx = sidecars.diesel_metadata.as_deref().is_some_and(|m| {
                m.lines().any(|l| {
                    let l = l.split('#').next().unwrap_or("").replace(' ', "");
                    l == "run_in_transaction=false"
                })
            });
            if no_tx {
                whole(
                    source,
                    TxMode::SimpleQuery,
                    "diesel: metadata.toml run_in_transaction = false (one batch)",
                )
            } else {
                whole(
                    source,
                    TxMode::Wrapped,
                    "diesel: each migration in its own transaction",
                )
            }
        }
        Tool::Flyway => {
            if flyway_kind(name) == Some('U') && !include_down {
                return down_skipped(tool);
            }
            let conf_off = sidecars.flyway_conf.as_deref().is_some_and(|c| {
                c.lines().any(|l| {
                    l.replace(' ', "")
                        .trim_start_matches("flyway.")
                        .eq_ignore_ascii_case("executeInTransaction=false")
                })
            });
            if conf_off {
                whole(
                    source,
                    TxMode::Autocommit,
                    "flyway: executeInTransaction=false in the script config",
                )
            } else if contains_word_ci(source, "concurrently") {
                whole(
                    source,
                    TxMode::Autocommit,
                    "flyway: a non-transactional statement (CONCURRENTLY) runs the migration outside a transaction",
                )
            } else {
                whole(
                    source,
                    TxMode::Wrapped,
                    "flyway: executeInTransaction (default true)",
                )
            }
        }
        Tool::Goose => goose(source, include_down),
        Tool::Dbmate => dbmate(source, include_down),
        Tool::Sqitch => {
            if !parent_is_one_of(path, &["deploy"]) && !include_down {
                return Plan::Skip(
                    "a sqitch revert/verify script (lint it with --include-down)".into(),
                );
            }
            whole(
                source,
                TxMode::Autocommit,
                "sqitch: psql runs the script with its own BEGIN/COMMIT",
            )
        }
        Tool::Psql => whole(
            source,
            TxMode::Autocommit,
            "psql -f: each statement on its own",
        ),
        Tool::Rails => {
            if name.ends_with(".rb") {
                Plan::Skip(
                    "a Rails migration is Ruby: lint its SQL (db/structure.sql, or the SQL of `rails db:migrate` logged) instead".into(),
                )
            } else {
                whole(
                    source,
                    TxMode::Wrapped,
                    "rails: each migration in a transaction (unless disable_ddl_transaction!)",
                )
            }
        }
        Tool::Alembic => alembic(source, include_down),
        Tool::Django => django(source),
    }
}

fn contains_word_ci(source: &str, word: &str) -> bool {
    source
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .any(|w| w.eq_ignore_ascii_case(word))
}

fn goose(source: &str, include_down: bool) -> Plan {
    let mut up: Vec<Range<usize>> = Vec::new();
    let mut down: Vec<Range<usize>> = Vec::new();
    let mut section: Option<bool> = None;
    let mut transaction = true;
    // `-- +goose StatementBegin` ... `StatementEnd`: goose sends the block as one Exec
    // (one simple-query message; its statements run in one implicit transaction).
    let (mut blocks, mut block_start): (Vec<(bool, Range<usize>)>, Option<usize>) =
        (Vec::new(), None);
    for (range, line) in lines_with_offsets(source) {
        match goose_annotation(line).as_deref() {
            Some("up") => section = Some(true),
            Some("down") => section = Some(false),
            Some("no transaction") => transaction = false,
            Some("statementbegin") => block_start = Some(range.end),
            Some("statementend") => {
                if let (Some(start), Some(up)) = (block_start.take(), section) {
                    blocks.push((up, start..range.start));
                }
            }
            Some(_) => {}
            None => match section {
                Some(true) => up.push(range),
                Some(false) => down.push(range),
                None => {}
            },
        }
    }
    let (mode, why) = if transaction {
        (TxMode::Wrapped, "goose: each migration in a transaction")
    } else {
        (TxMode::Autocommit, "goose: -- +goose NO TRANSACTION")
    };
    let blocks_of = |up: bool| -> Vec<Range<usize>> {
        blocks
            .iter()
            .filter(|(u, _)| *u == up)
            .map(|(_, r)| r.clone())
            .collect()
    };
    let mut pieces = vec![Piece {
        label: None,
        text: blank_outside(source, &up),
        mode,
        why: why.into(),
        simple_queries: blocks_of(true),
    }];
    if include_down && !down.is_empty() {
        pieces.push(Piece {
            label: Some("down".into()),
            text: blank_outside(source, &down),
            mode,
            why: why.into(),
            simple_queries: blocks_of(false),
        });
    }
    Plan::Lint(pieces)
}

fn dbmate(source: &str, include_down: bool) -> Plan {
    // (up, transaction, body)
    let mut sections: Vec<(bool, bool, Vec<Range<usize>>)> = Vec::new();
    for (range, line) in lines_with_offsets(source) {
        match dbmate_directive(line) {
            Some((up, transaction)) => sections.push((up, transaction, Vec::new())),
            None => {
                if let Some(s) = sections.last_mut() {
                    s.2.push(range);
                }
            }
        }
    }
    if sections.is_empty() {
        return whole(
            source,
            TxMode::Wrapped,
            "dbmate: no -- migrate:up line; one transaction",
        );
    }
    let pieces = sections
        .into_iter()
        .filter(|(up, _, _)| *up || include_down)
        .map(|(up, transaction, body)| Piece {
            label: (!up).then(|| "down".to_string()),
            text: blank_outside(source, &body),
            mode: if transaction {
                TxMode::Wrapped
            } else {
                TxMode::Autocommit
            },
            why: if transaction {
                "dbmate: each migration in a transaction".into()
            } else {
                "dbmate: transaction:false".into()
            },
            simple_queries: Vec::new(),
        })
        .collect();
    Plan::Lint(pieces)
}

/// Whether a statement's text opens or closes a transaction block.
fn transaction_control(sql: &str) -> Option<bool> {
    let first: String = sql
        .split(|c: char| c.is_whitespace() || c == ';')
        .find(|w| !w.is_empty())?
        .to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" | "START" => Some(true),
        "COMMIT" | "END" | "ROLLBACK" | "ABORT" => Some(false),
        _ => None,
    }
}

/// Splits a tool's SQL output at `starts` (byte offsets of each migration's first
/// line, with its label and whether it is a down migration); each piece runs in a
/// transaction when one is open where it starts (Alembic's default: one BEGIN before
/// all migrations) and tracks the BEGIN/COMMIT written inside it.
fn pieces_at(
    source: &str,
    starts: Vec<(usize, String, bool)>,
    include_down: bool,
    tool: Tool,
) -> Plan {
    let statements = crate::split::split_unparsed(source, 0..source.len()).unwrap_or_default();
    let open_at = |offset: usize| {
        let mut open = false;
        for s in statements.iter().take_while(|s| s.span.start < offset) {
            if let Some(o) = transaction_control(s.sql(source)) {
                open = o;
            }
        }
        open
    };
    let mut pieces = Vec::new();
    for (i, (start, label, down)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(source.len(), |s| s.0);
        if *down && !include_down {
            continue;
        }
        let (mode, why) = if open_at(*start) {
            (
                TxMode::Wrapped,
                format!("{tool}: inside the BEGIN of its SQL output"),
            )
        } else {
            (
                TxMode::Autocommit,
                format!("{tool}: its SQL output's own BEGIN/COMMIT"),
            )
        };
        pieces.push(Piece {
            label: Some(label.clone()),
            text: blank_outside(source, std::slice::from_ref(&(*start..end))),
            mode,
            why,
            simple_queries: Vec::new(),
        });
    }
    if pieces.is_empty() && starts.is_empty() {
        return whole(
            source,
            TxMode::Autocommit,
            format!("{tool}: its SQL output's own BEGIN/COMMIT"),
        );
    }
    if pieces.is_empty() {
        return Plan::Skip(format!(
            "only {tool} downgrades (lint them with --include-down)"
        ));
    }
    Plan::Lint(pieces)
}

/// `alembic upgrade --sql`: a piece per `-- Running upgrade a -> b` comment (the text
/// before the first one, creating `alembic_version`, goes with it).
fn alembic(source: &str, include_down: bool) -> Plan {
    let mut starts: Vec<(usize, String, bool)> = Vec::new();
    for (range, line) in lines_with_offsets(source) {
        for (prefix, down) in [
            ("-- Running upgrade ", false),
            ("-- Running downgrade ", true),
        ] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let label = format!(
                    "{} {}",
                    if down { "downgrade" } else { "upgrade" },
                    rest.split_whitespace().collect::<Vec<_>>().join(" ")
                );
                let start = if starts.is_empty() { 0 } else { range.start };
                starts.push((start, label, down));
            }
        }
    }
    pieces_at(source, starts, include_down, Tool::Alembic)
}

/// `manage.py sqlmigrate` output (one or more migrations): a piece per `BEGIN;` that
/// starts at the beginning of a line, up to the next.
fn django(source: &str) -> Plan {
    let mut starts: Vec<(usize, String, bool)> = Vec::new();
    for (range, line) in lines_with_offsets(source) {
        if line.trim().eq_ignore_ascii_case("BEGIN;") {
            let n = starts.len() + 1;
            let start = if starts.is_empty() { 0 } else { range.start };
            starts.push((start, format!("migration {n}"), false));
        }
    }
    if starts.len() == 1 {
        starts.clear(); // one migration: the whole file
    }
    pieces_at(source, starts, true, Tool::Django)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(plan: Plan) -> Piece {
        match plan {
            Plan::Lint(mut p) if p.len() == 1 => p.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn detects_each_layout() {
        let cases = [
            (
                "prisma/migrations/20230404095503_init/migration.sql",
                "",
                Some(Tool::Prisma),
            ),
            (
                "migrations/2019-01-01-000000_users/up.sql",
                "",
                Some(Tool::Diesel),
            ),
            ("db/000123_users.up.sql", "", Some(Tool::GolangMigrate)),
            ("db/V2__users.sql", "", Some(Tool::Flyway)),
            ("db/R__views.sql", "", Some(Tool::Flyway)),
            (
                "db/20240101_x.sql",
                "-- +goose Up\nSELECT 1;\n",
                Some(Tool::Goose),
            ),
            ("db/20240101_x.sql", "-- migrate:up\nSELECT 1;\n", None),
            ("sqitch/deploy/users.sql", "BEGIN;\n", Some(Tool::Sqitch)),
            ("db/migrate/20240101_add.rb", "", Some(Tool::Rails)),
            (
                "out.sql",
                "-- Running upgrade  -> 1a\n",
                Some(Tool::Alembic),
            ),
            ("schema.sql", "CREATE TABLE t ();", None),
            // Markers count at the start of a line only, on any line, with CRLF too.
            ("db/x.sql", "SELECT 1; -- +goose Up\n  -- +goose Up\n", None),
            (
                "db/x.sql",
                "SELECT '--';\r\n--- x\r\n-- +goose Up\r\nSELECT 1;\r\n",
                Some(Tool::Goose),
            ),
            (
                "out.sql",
                "BEGIN;\n\n-- Running upgrade 1a -> 2b\r\n",
                Some(Tool::Alembic),
            ),
            (
                "out.sql",
                "-- Running upgrade  -> 1a\n-- +goose Up\n",
                Some(Tool::Goose),
            ),
        ];
        for (path, text, tool) in cases {
            assert_eq!(detect(Path::new(path), text), tool, "{path}");
        }
    }

    /// The comment lines found by search are those `str::lines` gives (and a `\r` ending
    /// the text is dropped too).
    #[test]
    fn comment_lines_are_the_lines_starting_with_dashes() {
        let texts = [
            "",
            "--",
            "-- a",
            "--a\n--b",
            "x\n-- a\r\n--\r\n - no\n--- yes\n",
            "SELECT 1; -- no\n\n\n-- yes\n-",
            "\n--\n--\n",
            "é-- no\n€\n-- oui €\r",
        ];
        for text in texts {
            let by_lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("--"))
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .collect();
            assert_eq!(
                comment_lines(text).collect::<Vec<_>>(),
                by_lines,
                "{text:?}"
            );
        }
    }

    #[test]
    fn goose_lints_only_up_keeping_lines() {
        let src = "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- +goose Down\nDROP INDEX i;\n";
        let p = one(plan(
            Tool::Goose,
            Path::new("1_x.sql"),
            src,
            &Sidecars::default(),
            false,
        ));
        assert_eq!(p.mode, TxMode::Autocommit);
        assert_eq!(p.text.len(), src.len());
        assert_eq!(
            p.text.lines().nth(2),
            Some("CREATE INDEX CONCURRENTLY i ON t (a);")
        );
        assert!(!p.text.contains("DROP"));
    }

    #[test]
    fn markers_switch_the_transaction_off() {
        let dbmate = "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\nDROP INDEX i;\n";
        let p = one(plan(
            Tool::Dbmate,
            Path::new("1.sql"),
            dbmate,
            &Sidecars::default(),
            false,
        ));
        assert_eq!(p.mode, TxMode::Autocommit);
        assert!(
            !p.text.contains("migrate:up"),
            "directive lines are blanked"
        );
        let side = Sidecars {
            diesel_metadata: Some("run_in_transaction = false\n".into()),
            flyway_conf: None,
        };
        let p = one(plan(
            Tool::Diesel,
            Path::new("1_x/up.sql"),
            "SELECT 1;",
            &side,
            false,
        ));
        assert_eq!(p.mode, TxMode::SimpleQuery);
        let side = Sidecars {
            diesel_metadata: None,
            flyway_conf: Some("executeInTransaction=false\n".into()),
        };
        let p = one(plan(
            Tool::Flyway,
            Path::new("V1__x.sql"),
            "SELECT 1;",
            &side,
            false,
        ));
        assert_eq!(p.mode, TxMode::Autocommit);
        let p = one(plan(
            Tool::Flyway,
            Path::new("V1__x.sql"),
            "SELECT 1;",
            &Sidecars::default(),
            false,
        ));
        assert_eq!(p.mode, TxMode::Wrapped);
    }

    #[test]
    fn down_migrations_are_skipped_unless_asked() {
        let none = Sidecars::default();
        for (tool, path) in [
            (Tool::GolangMigrate, "1_x.down.sql"),
            (Tool::Diesel, "1_x/down.sql"),
            (Tool::Flyway, "U1__x.sql"),
            (Tool::Sqitch, "revert/x.sql"),
        ] {
            assert!(
                matches!(
                    plan(tool, Path::new(path), "SELECT 1;", &none, false),
                    Plan::Skip(_)
                ),
                "{path}"
            );
            assert!(
                matches!(
                    plan(tool, Path::new(path), "SELECT 1;", &none, true),
                    Plan::Lint(_)
                ),
                "{path}"
            );
        }
        assert!(matches!(
            plan(Tool::Rails, Path::new("db/migrate/1_x.rb"), "", &none, true),
            Plan::Skip(_)
        ));
    }

    #[test]
    fn alembic_pieces_follow_the_open_transaction() {
        let src = "BEGIN;\n\nCREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n\n-- Running upgrade  -> a1\n\nCREATE TABLE t (id int);\n\n-- Running upgrade a1 -> b2\n\nCREATE INDEX i ON t (id);\n\nCOMMIT;\n";
        let Plan::Lint(pieces) = plan(
            Tool::Alembic,
            Path::new("up.sql"),
            src,
            &Sidecars::default(),
            false,
        ) else {
            panic!()
        };
        let labels: Vec<_> = pieces
            .iter()
            .map(|p| (p.label.clone().unwrap(), p.mode))
            .collect();
        assert_eq!(
            labels,
            [
                ("upgrade -> a1".to_string(), TxMode::Autocommit),
                ("upgrade a1 -> b2".to_string(), TxMode::Wrapped)
            ]
        );
        assert!(
            pieces[1].text.contains("CREATE INDEX") && !pieces[1].text.contains("CREATE TABLE")
        );
    }

    #[test]
    fn django_pieces_are_begin_commit_pairs() {
        let src = "BEGIN;\n--\n-- Create model A\n--\nCREATE TABLE a (id int);\nCOMMIT;\nBEGIN;\nCREATE INDEX i ON a (id);\nCOMMIT;\nCREATE INDEX CONCURRENTLY j ON a (id);\n";
        let Plan::Lint(pieces) = plan(
            Tool::Django,
            Path::new("out.sql"),
            src,
            &Sidecars::default(),
            false,
        ) else {
            panic!()
        };
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.mode == TxMode::Autocommit));
        assert!(pieces[1].text.contains("CONCURRENTLY j"));
    }
}
