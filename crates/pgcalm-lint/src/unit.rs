//! What lint reads ([`LintUnit`], [`LintOptions`]) and what it learns while it walks a
//! unit's statements in order ([`UnitState`]: transactions, lock_timeout, tables,
//! columns, indexes and constraints created or changed earlier in the unit).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, TransactionStmtKind, VariableSetKind};
use serde::Serialize;

use crate::locks::{
    ForeignKey, LockMode, LockTarget, PgVersion, RelName, RelationLock, StatementLocks,
};
use crate::rule_id::RuleId;
use crate::split::{
    SyntaxError, for_each_statement, parse_first, split_unparsed, with_parse_stack,
};

/// Where a unit's statements come from, which decides the transaction model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum UnitKind {
    /// A section of a pgcalm migration file: the runner wraps it in one transaction
    /// unless `transaction:false`, and sets `lock_timeout` for every statement.
    Migration {
        /// False for `transaction:false`.
        transaction: bool,
    },
    /// A plain SQL file run as written (psql, a tool): BEGIN/COMMIT are tracked;
    /// `assume_in_transaction` wraps the whole file in one.
    PlainSql,
}

/// Which rules run: all rules that are on by default, minus `disable`, plus `enable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleSelection {
    /// Rules switched off (`[lint] disable`).
    pub disable: BTreeSet<RuleId>,
    /// Rules switched on, including ones off by default (`[lint] enable`).
    pub enable: BTreeSet<RuleId>,
}

/// How to lint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintOptions {
    /// The PostgreSQL major version the SQL will run on.
    pub pg_version: PgVersion,
    /// Plain SQL files run inside one transaction by the tool that applies them
    /// (Flyway, some Rails setups).
    pub assume_in_transaction: bool,
    /// Rules on and off.
    pub rules: RuleSelection,
    /// What lint knows of the existing tables (column types, NOT NULL, indexes,
    /// validated checks), from a schema dump (`--schema FILE`).
    #[serde(skip)]
    pub schema: Option<Arc<Schema>>,
    /// Today (UTC), for `-- pgcalm:ignore RULE until DATE`: from that date on the
    /// ignore is an `expired-ignore` finding and the finding comes back. `None`: no
    /// ignore expires.
    pub today: Option<crate::Date>,
    /// Byte ranges of the unit's text its tool sends each as one simple-query message
    /// (a Prisma or golang-migrate file, a goose `StatementBegin` block): PostgreSQL runs
    /// several statements of one in one implicit transaction, and a lone one on its own
    /// (so a fix of several statements there would make them one transaction).
    pub simple_queries: Vec<std::ops::Range<usize>>,
}

/// A map by relation name. Its keys are short names from the user's own files, looked up
/// several times per statement: FxHash (rustc's), not the default SipHash, which guards
/// against keys chosen to collide at several times the cost.
pub(crate) type NameMap<V> = HashMap<String, V, BuildHasherDefault<NameHasher>>;

/// FxHash: each 8 bytes rotated in and multiplied by a constant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut add = |word: u64| self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        for &b in chunks.remainder() {
            add(u64::from(b));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Facts about existing tables, learned from a schema's SQL (`pg_dump --schema-only`,
/// Rails' structure.sql) the same way lint learns from a unit's statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    tables: NameMap<TableInfo>,
    indexes: NameMap<IndexInfo>,
    checks: NameMap<CheckInfo>,
    foreign_keys: Vec<ForeignKey>,
    views: NameMap<ViewInfo>,
    /// Column types learned from earlier migrations ([`Schema::learn_from_sql`]), by table
    /// and column: only what a type change needs to tell a no-op from a rewrite.
    column_types: ColumnTypes,
    /// Read from a whole schema ([`Schema::from_sql`]): a table it lacks does not exist.
    /// False when it only holds indexes learned from earlier migrations.
    tables_known: bool,
}

/// Column types by table name (unqualified): the table, and each column's type as lint
/// writes it.
pub(crate) type ColumnTypes = HashMap<String, (RelName, HashMap<String, String>)>;

impl Schema {
    /// Reads `CREATE TABLE`, `ALTER TABLE`, `CREATE INDEX` statements (others are
    /// skipped). Its tables are existing ones: their locks block the application.
    pub fn from_sql(sql: &str) -> Result<Schema, SyntaxError> {
        let mut state = UnitState::default();
        let options = LintOptions::default();
        for_each_statement(sql, 0..sql.len(), |stmt| {
            if let Some(node) = &stmt.node {
                state.apply(node, &StatementLocks::default(), &options);
            }
        })?;
        for t in state.tables.values_mut() {
            t.created_in_unit = false;
            t.renamed_in_unit = false;
            t.has_rows = false;
            t.if_created_locks = None;
            for c in &mut t.columns {
                c.added_in_unit = false;
            }
        }
        Ok(Schema {
            tables: state.tables,
            indexes: state.indexes,
            checks: state.checks,
            foreign_keys: state.foreign_keys,
            views: state.views,
            column_types: ColumnTypes::new(),
            tables_known: true,
        })
    }

    /// Learns which table each index belongs to, which tables each view reads, the
    /// foreign keys and the column types, from a migration that ran before the ones
    /// linted next (`pgcalm lint DIR` reads its files in order): the indexes it creates
    /// (`CREATE INDEX`, and the implicit ones of PRIMARY KEY and UNIQUE constraints), the
    /// views, keys and columns it creates, and what it renames, moves and drops. Only the
    /// statements that may do so are parsed. Lint then knows that `DROP INDEX i` locks a
    /// table the transaction may already hold, that the readers of a view wait for its
    /// base tables, and whether a type change rewrites. (A file the run lints teaches the
    /// same through [`Schema::learn_from_state`], without a second parse.)
    pub fn learn_from_sql(&mut self, sql: &str) -> Result<(), SyntaxError> {
        const WORDS: [&str; 9] = [
            "index",
            "primary",
            "unique",
            "rename",
            "drop",
            "view",
            "schema",
            "references",
            "table",
        ];
        let statements = split_unparsed(sql, 0..sql.len())?;
        let mut state = UnitState {
            indexes: std::mem::take(&mut self.indexes),
            views: std::mem::take(&mut self.views),
            foreign_keys: std::mem::take(&mut self.foreign_keys),
            learned_types: std::mem::take(&mut self.column_types),
            ..UnitState::default()
        };
        let options = LintOptions::default();
        with_parse_stack(|| {
            for stmt in &statements {
                let text = &sql[stmt.span.start..stmt.span.end];
                let lower = text.to_ascii_lowercase();
                if WORDS.iter().any(|w| lower.contains(w))
                    && let Some(node) = parse_first(text)
                {
                    state.apply(&node, &StatementLocks::default(), &options);
                }
            }
        });
        self.learn_from_state(state);
        Ok(())
    }

    /// Learns the same from the state a unit's lint ended with (its statements applied on
    /// top of this schema: [`LintOptions::schema`]), so a file linted in a `pgcalm lint
    /// DIR` run teaches the files after it without being parsed again.
    pub fn learn_from_state(&mut self, state: UnitState) {
        self.indexes = state.indexes;
        self.views = state.views;
        self.foreign_keys = state.foreign_keys;
        // The types of columns the unit did not touch (followed through its renames and
        // drops), then those it did.
        self.column_types = state.learned_types;
        for t in state.tables.into_values() {
            let columns = t
                .columns
                .into_iter()
                .filter(|c| !c.type_name.is_empty())
                .map(|c| (c.name, c.type_name));
            self.column_types
                .entry(t.name.name.clone())
                .or_insert_with(|| (t.name.clone(), HashMap::new()))
                .1
                .extend(columns);
        }
        self.column_types
            .retain(|_, (_, columns)| !columns.is_empty());
    }

    /// Number of tables it knows.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// Whether the schema has a table of that name (any schema when unqualified).
    pub(crate) fn has_table(&self, name: &RelName) -> bool {
        self.tables
            .get(&name.name)
            .is_some_and(|t| t.name.same_as(name))
    }
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            pg_version: PgVersion::DEFAULT,
            assume_in_transaction: false,
            rules: RuleSelection::default(),
            schema: None,
            today: None,
            simple_queries: Vec::new(),
        }
    }
}

/// A column known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The type as written, lowercased (`varchar(255)`, `bigint`).
    pub type_name: String,
    /// Declared NOT NULL (or part of a primary key, or SET NOT NULL later).
    pub not_null: bool,
    /// Created in this unit (CREATE TABLE, ADD COLUMN); false for columns of the
    /// existing schema and for existing columns the unit only altered.
    pub added_in_unit: bool,
    /// Has a default (declared, `serial`, SET DEFAULT); `None` when lint has not seen.
    pub default: Option<bool>,
}

/// A table known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableInfo {
    /// Its name.
    pub name: RelName,
    /// Created in this unit: nobody else uses it yet, so its locks block no one.
    pub created_in_unit: bool,
    /// Columns seen (all of them for a table created in the unit; the added ones
    /// otherwise).
    pub columns: Vec<ColumnInfo>,
    /// Partitioned (`PARTITION BY`, or the parent of a `PARTITION OF`); `None` when lint
    /// has not seen its definition.
    pub partitioned: Option<bool>,
    /// Given rows in this unit (INSERT, COPY, CREATE TABLE AS): a table created in the
    /// unit (or perhaps created, by IF NOT EXISTS) is then no longer empty (ADD COLUMN
    /// ... NOT NULL without a default fails; an index build takes time).
    pub has_rows: bool,
    /// Its partitions lint has seen (`PARTITION OF`, `ATTACH PARTITION`), the DEFAULT one
    /// included.
    pub partitions: Vec<RelName>,
    /// Lint saw its `PARTITION BY` definition (in the unit or the schema), so
    /// [`TableInfo::partitions`] are all of them.
    pub partitions_complete: bool,
    /// Its DEFAULT partition, when lint has seen it.
    pub default_partition: Option<RelName>,
    /// Its primary key constraint's name: `Some(None)` when lint saw the table's
    /// definition (or the key dropped) and there is none; `None` when it does not know.
    pub primary_key: Option<Option<String>>,
    /// `REPLICA IDENTITY` set earlier in the unit: `d`, `n`, `f` or `i` (using index).
    pub replica_identity: Option<String>,
    /// The locks of the unit's `CREATE TABLE IF NOT EXISTS` of it, when that may have
    /// created it (lint cannot tell): they are held only if it did, and then the table
    /// is new and, until given rows, empty.
    pub if_created_locks: Option<Vec<RelationLock>>,
    /// Renamed earlier in the unit (`ALTER TABLE old RENAME TO this`): code already
    /// running names it by its old name and fails on it from then on, so what the unit
    /// does to its columns breaks nothing more.
    pub renamed_in_unit: bool,
}

impl TableInfo {
    /// A column by name.
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// An index known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexInfo {
    /// Index name.
    pub name: String,
    /// Its table.
    pub table: RelName,
    /// Key columns (expressions are left out).
    pub columns: Vec<String>,
    /// UNIQUE.
    pub unique: bool,
    /// Every key is a column (no expression) and there is no WHERE: what `REFRESH
    /// MATERIALIZED VIEW CONCURRENTLY` needs of a unique index.
    pub plain: bool,
}

/// A view (not a materialized one) known from earlier in the unit or the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewInfo {
    /// Its name.
    pub name: RelName,
    /// The relations its query reads (every reader of the view locks them too);
    /// `None` when lint could not find them all.
    pub base: Option<Vec<RelName>>,
}

/// A CHECK constraint known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckInfo {
    /// Constraint name (PostgreSQL's generated one when unnamed).
    pub name: String,
    /// Its table.
    pub table: RelName,
    /// The column when the check is exactly `col IS NOT NULL`.
    pub not_null_column: Option<String>,
    /// Validated (added without NOT VALID, or VALIDATEd since).
    pub validated: bool,
}

/// A yes/no fact about a session setting (`lock_timeout` is non-zero, `TimeZone` is
/// UTC), as `SET`, `SET LOCAL`, `RESET` and the transaction's end leave it.
#[derive(Debug, Clone, Copy, Default)]
struct Setting {
    /// The session value.
    session: bool,
    /// The transaction-level (`SET LOCAL`) value, while in a transaction.
    local: Option<bool>,
    /// The session value at BEGIN (restored by ROLLBACK).
    at_begin: bool,
}

impl Setting {
    fn get(&self) -> bool {
        self.local.unwrap_or(self.session)
    }

    fn set(&mut self, value: bool, local: bool, in_transaction: bool) {
        if local {
            // SET LOCAL outside a transaction block only warns and does nothing.
            if in_transaction {
                self.local = Some(value);
            }
        } else {
            self.session = value;
            if in_transaction {
                self.local = None;
            }
        }
    }

    fn begin(&mut self) {
        self.at_begin = self.session;
    }

    fn end(&mut self, commit: bool) {
        if !commit {
            self.session = self.at_begin;
        }
        self.local = None;
        self.at_begin = self.session;
    }
}

/// What lint knows before a statement, from the statements before it in the unit.
#[derive(Debug, Clone, Default)]
pub struct UnitState {
    /// Inside a transaction block (explicit BEGIN, a transactional migration, or
    /// `--assume-in-transaction`), or the implicit one of a simple-query message of
    /// several statements.
    pub(crate) in_transaction: bool,
    /// How many statements the simple-query message the statement is sent in holds
    /// ([`LintOptions::simple_queries`]); `None` when it is not in one.
    pub(crate) simple_query: Option<usize>,
    /// A non-zero `lock_timeout` is set.
    lock_timeout: Setting,
    /// The session `TimeZone` is UTC (a zone with offset 0 and no daylight saving).
    utc: Setting,
    /// Tables dropped earlier in the unit (a later `CREATE TABLE IF NOT EXISTS` of the
    /// name surely creates it).
    dropped: HashSet<String>,
    /// Names a relation had until the unit renamed it: running code still uses them (a
    /// table renamed to one of them is not one running code cannot name).
    vacated: HashSet<String>,
    /// Tables created or altered earlier in the unit, by name.
    pub(crate) tables: NameMap<TableInfo>,
    /// Indexes created earlier in the unit, by name.
    pub(crate) indexes: NameMap<IndexInfo>,
    /// CHECK constraints added earlier in the unit, by name.
    pub(crate) checks: NameMap<CheckInfo>,
    /// Foreign keys created earlier in the unit (or known from the schema): dropping one
    /// locks the table it references, and a CASCADE reaches the tables that reference.
    pub(crate) foreign_keys: Vec<ForeignKey>,
    /// Views created earlier in the unit (or known from the schema), by name.
    pub(crate) views: NameMap<ViewInfo>,
    /// Column types learned from earlier migrations (the schema's [`ColumnTypes`]), for
    /// columns the unit has not touched.
    learned_types: ColumnTypes,
    /// Locks on existing relations held by the current transaction (taken by earlier
    /// statements of it): every mode taken on each relation, an index's lock on its table
    /// when the unit knows the table.
    pub(crate) held: Vec<RelationLock>,
    /// Schemas, types (enums, domains, composite and range types) and functions created
    /// earlier in the unit, by name (unqualified): nothing existing depends on them.
    pub(crate) created: Created,
    /// Enum values the current transaction added (`ALTER TYPE ... ADD VALUE`): the type's
    /// name (unqualified) and the label. PostgreSQL refuses to use them before COMMIT.
    pub(crate) new_enum_values: Vec<(String, String)>,
    /// What the functions created earlier in the unit run, by name (unqualified): lint
    /// reads a body where the unit calls the function.
    pub(crate) function_bodies: HashMap<String, Arc<crate::plpgsql::Body>>,
}

/// Objects other than tables that the unit created, by unqualified name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Created {
    /// `CREATE SCHEMA`.
    pub schemas: HashSet<String>,
    /// `CREATE TYPE`, `CREATE DOMAIN`.
    pub types: HashSet<String>,
    /// `CREATE FUNCTION` / `CREATE PROCEDURE`.
    pub functions: HashSet<String>,
}

impl UnitState {
    /// The state at the start of a unit.
    pub fn new(kind: UnitKind, options: &LintOptions) -> UnitState {
        let schema = options.schema.as_deref().cloned().unwrap_or_default();
        UnitState {
            in_transaction: match kind {
                UnitKind::Migration { transaction } => transaction,
                UnitKind::PlainSql => options.assume_in_transaction,
            },
            learned_types: schema.column_types,
            tables: schema.tables,
            indexes: schema.indexes,
            checks: schema.checks,
            foreign_keys: schema.foreign_keys,
            views: schema.views,
            ..UnitState::default()
        }
    }

    /// Takes over the tables `other` created (with their indexes and checks) as new
    /// ones: a migration's down section may drop what its up section created, since the
    /// application it rolls back to never used them.
    pub fn adopt_new_tables(&mut self, other: &UnitState) {
        for (key, t) in other.tables.iter().filter(|(_, t)| t.created_in_unit) {
            // Whatever rows the up section put in it, no running code uses it.
            let t = TableInfo {
                has_rows: false,
                ..t.clone()
            };
            self.tables.insert(key.clone(), t.clone());
            for (name, index) in other
                .indexes
                .iter()
                .filter(|(_, i)| i.table.same_as(&t.name))
            {
                self.indexes.insert(name.clone(), index.clone());
            }
        }
    }

    /// A non-zero `lock_timeout` is in effect for the next statement.
    pub(crate) fn lock_timeout_set(&self) -> bool {
        self.lock_timeout.get()
    }

    /// The session time zone is known to be UTC (`SET timezone = 'UTC'` and the like):
    /// from PostgreSQL 12, `timestamp` <-> `timestamptz` is then binary-coercible.
    pub(crate) fn time_zone_is_utc(&self) -> bool {
        self.utc.get()
    }

    /// Whether a table created in this unit has been given rows (INSERT, COPY, CREATE
    /// TABLE AS): it is not empty any more.
    pub(crate) fn has_rows(&self, name: &RelName) -> bool {
        self.table(name).is_some_and(|t| t.has_rows)
    }

    /// Whether the table is known to be partitioned (`Some(false)`: known not to be;
    /// `None`: lint has not seen its definition).
    pub(crate) fn partitioned(&self, name: &RelName) -> Option<bool> {
        self.table(name).and_then(|t| t.partitioned)
    }

    /// The table if it was created or altered earlier in the unit.
    pub(crate) fn table(&self, name: &RelName) -> Option<&TableInfo> {
        self.tables.get(&name.name).filter(|t| t.name.same_as(name))
    }

    /// Created earlier in this unit (so no one else uses it yet).
    pub(crate) fn is_new_table(&self, name: &RelName) -> bool {
        self.table(name).is_some_and(|t| t.created_in_unit)
    }

    /// Whether a lock target is a relation that existed before the unit.
    pub(crate) fn is_existing(&self, target: &LockTarget) -> bool {
        match target {
            LockTarget::Table(t) | LockTarget::IndexesOf(t) => !self.is_new_table(t),
            LockTarget::Index(i) | LockTarget::TableOfIndex(i) => self
                .indexes
                .get(&i.name)
                .is_none_or(|idx| !self.is_new_table(&idx.table)),
            LockTarget::Database => true,
        }
    }

    /// The column is known NOT NULL: declared so in the unit, or (PostgreSQL 12+)
    /// proven by a validated `CHECK (col IS NOT NULL)` added in the unit.
    pub(crate) fn known_not_null(&self, table: &RelName, column: &str, pg: PgVersion) -> bool {
        self.table(table)
            .and_then(|t| t.column(column))
            .is_some_and(|c| c.not_null)
            || (pg.at_least(12) && self.validated_not_null_check(table, column).is_some())
    }

    /// A validated `CHECK (column IS NOT NULL)` on the table, added in the unit.
    pub(crate) fn validated_not_null_check(
        &self,
        table: &RelName,
        column: &str,
    ) -> Option<&CheckInfo> {
        self.checks.values().find(|c| {
            c.validated && c.table.same_as(table) && c.not_null_column.as_deref() == Some(column)
        })
    }

    /// The strongest lock the current transaction already holds on a relation.
    pub(crate) fn held_on(&self, target: &LockTarget) -> Option<LockMode> {
        let target = self.resolve(target);
        self.held
            .iter()
            .filter(|l| l.target.same_as(&target))
            .map(|l| l.mode)
            .max()
    }

    /// Whether the locks the current transaction already holds on the relation cover
    /// this one, so the statement cannot wait for it ([`LockMode::covered_by`]).
    pub(crate) fn already_holds(&self, lock: &RelationLock) -> bool {
        let target = self.resolve(&lock.target);
        lock.mode.covered_by(
            self.held
                .iter()
                .filter(|h| h.target.same_as(&target))
                .map(|h| h.mode),
        )
    }

    /// Adds to `locks` what the statement reaches through the foreign keys lint knows
    /// (a dropped key's referenced table, the tables a CASCADE reaches).
    pub(crate) fn lock_through_foreign_keys(&self, locks: &mut StatementLocks) {
        if !locks.foreign_keys.is_empty() {
            locks.lock_through_foreign_keys(self.foreign_keys.iter());
        }
    }

    /// The table of an index the unit (or the schema) knows, as a table target, so a
    /// lock taken through `DROP INDEX i` and one taken by `ALTER TABLE t` are the same.
    fn resolve(&self, target: &LockTarget) -> LockTarget {
        match target {
            LockTarget::TableOfIndex(i) => match self.indexes.get(&i.name) {
                Some(idx) => LockTarget::Table(idx.table.clone()),
                None => target.clone(),
            },
            t => t.clone(),
        }
    }

    /// Learns from a statement that ran (after the rules looked at it).
    pub(crate) fn apply(&mut self, node: &NodeEnum, locks: &StatementLocks, options: &LintOptions) {
        let mut dropped_indexes: Vec<String> = Vec::new();
        // A relation renamed or moved to another schema: what lint knows of it, and the
        // locks the transaction holds on it, go with it once the statement's locks are
        // held (below: they are taken under the old name).
        let mut moved: Option<(RelName, Renamed)> = None;
        match node {
            NodeEnum::TransactionStmt(t) => self.apply_transaction(t.kind, options),
            NodeEnum::VariableSetStmt(v)
                if VariableSetKind::try_from(v.kind) == Ok(VariableSetKind::VarResetAll) =>
            {
                // Back to the server's values: lock_timeout 0, a time zone lint cannot know.
                for setting in [&mut self.lock_timeout, &mut self.utc] {
                    setting.session = false;
                    setting.local = None;
                }
            }
            NodeEnum::VariableSetStmt(v) => {
                // DEFAULT / RESET / SET TIME ZONE LOCAL: the server's value, which lint
                // takes as lock_timeout 0 and an unknown zone.
                let value = match VariableSetKind::try_from(v.kind) {
                    Ok(VariableSetKind::VarSetValue) => v.args.first(),
                    _ => None,
                };
                if v.name.eq_ignore_ascii_case("lock_timeout") {
                    self.set(Guc::LockTimeout, value.is_some_and(nonzero), v.is_local);
                } else if v.name.eq_ignore_ascii_case("timezone") {
                    self.set(Guc::TimeZone, value.is_some_and(utc_value), v.is_local);
                }
            }
            NodeEnum::SelectStmt(select) => {
                // SELECT set_config('lock_timeout', '2s', is_local): what some tools emit.
                for target in &select.target_list {
                    if let Some(NodeEnum::ResTarget(t)) = &target.node
                        && let Some((guc, value, is_local)) = t.val.as_deref().and_then(set_config)
                    {
                        self.set(guc, value, is_local);
                    }
                }
                // SELECT ... INTO t creates and fills a table.
                if let Some(r) = select.into_clause.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.learn_table_as(RelName::from_range_var(r), false, true, options);
                }
            }
            NodeEnum::CreateStmt(c) => {
                self.learn_create_table(c, options);
                if c.if_not_exists
                    && let Some(r) = &c.relation
                    && let Some(t) = self.tables.get_mut(&r.relname)
                    && t.name.same_as(&RelName::from_range_var(r))
                    && !t.created_in_unit
                {
                    t.if_created_locks = Some(locks.locks.clone());
                }
            }
            NodeEnum::AlterEnumStmt(e) if e.old_val.is_empty() && self.in_transaction => {
                if let Some(name) = string_list(&e.type_name).pop() {
                    self.new_enum_values.push((name, e.new_val.clone()));
                }
            }
            NodeEnum::CreateSchemaStmt(c) => {
                self.created.schemas.insert(c.schemaname.clone());
            }
            NodeEnum::CreateEnumStmt(c) => self.created_type(&c.type_name),
            NodeEnum::CreateRangeStmt(c) => self.created_type(&c.type_name),
            NodeEnum::CreateDomainStmt(c) => self.created_type(&c.domainname),
            NodeEnum::CompositeTypeStmt(c) => {
                if let Some(r) = &c.typevar {
                    self.created.types.insert(r.relname.clone());
                }
            }
            NodeEnum::RenameStmt(r)
                if r.rename_type == pg_query::protobuf::ObjectType::ObjectType as i32
                    || r.rename_type == pg_query::protobuf::ObjectType::ObjectDomain as i32 =>
            {
                // The old type now has a name the unit gave it.
                self.created.types.insert(r.newname.clone());
            }
            NodeEnum::CreateFunctionStmt(f) => {
                if let Some(name) = string_list(&f.funcname).pop() {
                    self.created.functions.insert(name);
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(into) = c.into.as_ref()
                    && let Some(r) = into.rel.as_ref()
                {
                    // A materialized view the unit creates IF NOT EXISTS is its own: the
                    // clause guards a re-run of the migration, and no application writes
                    // to a materialized view (only REFRESH does), so an index on it blocks
                    // no one even if it was there. A table IF NOT EXISTS may be an
                    // existing one, rows and users included.
                    let matview = c.objtype == pg_query::protobuf::ObjectType::ObjectMatview as i32;
                    self.learn_table_as(
                        RelName::from_range_var(r),
                        c.if_not_exists && !matview,
                        !into.skip_data,
                        options,
                    );
                }
            }
            NodeEnum::InsertStmt(i) => self.fill(i.relation.as_ref()),
            NodeEnum::MergeStmt(m) => self.fill(m.relation.as_ref()),
            NodeEnum::CopyStmt(c) if c.is_from => self.fill(c.relation.as_ref()),
            NodeEnum::DropStmt(d)
                if d.remove_type == pg_query::protobuf::ObjectType::ObjectTable as i32 =>
            {
                for o in &d.objects {
                    if let Some(NodeEnum::List(l)) = &o.node
                        && let Some(name) = RelName::from_names(&l.items)
                    {
                        if self.table(&name).is_some() {
                            self.tables.remove(&name.name);
                        }
                        if self
                            .learned_types
                            .get(&name.name)
                            .is_some_and(|(t, _)| t.same_as(&name))
                        {
                            self.learned_types.remove(&name.name);
                        }
                        self.indexes.retain(|_, i| !i.table.same_as(&name));
                        // Its keys, and those referencing it (CASCADE), or the drop failed.
                        self.foreign_keys
                            .retain(|k| !k.table.same_as(&name) && !k.referenced.same_as(&name));
                        // Its views went with it (CASCADE), or the drop failed.
                        self.views.retain(|_, v| {
                            v.base
                                .as_ref()
                                .is_none_or(|b| !b.iter().any(|t| t.same_as(&name)))
                        });
                        self.dropped.insert(name.name);
                    }
                }
            }
            NodeEnum::DropStmt(d)
                if d.remove_type == pg_query::protobuf::ObjectType::ObjectIndex as i32 =>
            {
                // Forgotten once the statement's locks are held (below): they are on
                // its table.
                for o in &d.objects {
                    if let Some(NodeEnum::List(l)) = &o.node
                        && let Some(name) = RelName::from_names(&l.items)
                    {
                        dropped_indexes.push(name.name);
                    }
                }
            }
            NodeEnum::RenameStmt(r)
                if r.rename_type == pg_query::protobuf::ObjectType::ObjectIndex as i32
                    || r.rename_type
                        == pg_query::protobuf::ObjectType::ObjectTabconstraint as i32 =>
            {
                // ALTER INDEX i RENAME, or ALTER TABLE t RENAME CONSTRAINT of a key: its
                // index takes the new name.
                let old = if r.subname.is_empty() {
                    r.relation.as_ref().map(|o| o.relname.clone())
                } else {
                    Some(r.subname.clone())
                };
                if r.rename_type == pg_query::protobuf::ObjectType::ObjectTabconstraint as i32
                    && let Some(table) = r.relation.as_ref().map(RelName::from_range_var)
                {
                    for k in &mut self.foreign_keys {
                        if k.table.same_as(&table) && k.name.as_deref() == Some(&r.subname) {
                            k.name = Some(r.newname.clone());
                        }
                    }
                }
                if let Some(old) = old
                    && let Some(mut index) = self.indexes.remove(&old)
                {
                    index.name = r.newname.clone();
                    self.indexes.insert(r.newname.clone(), index);
                }
            }
            NodeEnum::RenameStmt(r) if is_relation(r.rename_type) => {
                if let Some(old) = r.relation.as_ref() {
                    moved = Some((
                        RelName::from_range_var(old),
                        Renamed::Name(r.newname.clone()),
                    ));
                }
            }
            NodeEnum::AlterObjectSchemaStmt(a) if is_relation(a.object_type) => {
                if let Some(old) = a.relation.as_ref() {
                    moved = Some((
                        RelName::from_range_var(old),
                        Renamed::Schema(a.newschema.clone()),
                    ));
                }
            }
            NodeEnum::ViewStmt(v) => {
                if let Some(r) = &v.view {
                    let name = RelName::from_range_var(r);
                    let base = v.query.as_deref().and_then(view_base_tables);
                    self.views
                        .insert(name.name.clone(), ViewInfo { name, base });
                }
            }
            NodeEnum::DropStmt(d)
                if d.remove_type == pg_query::protobuf::ObjectType::ObjectView as i32 =>
            {
                for o in &d.objects {
                    if let Some(NodeEnum::List(l)) = &o.node
                        && let Some(name) = RelName::from_names(&l.items)
                    {
                        self.views.retain(|_, v| !v.name.same_as(&name));
                    }
                }
            }
            NodeEnum::IndexStmt(i) => {
                // IF NOT EXISTS of a name already known does nothing: it stays on its table.
                if let Some(r) = &i.relation
                    && !i.idxname.is_empty()
                    && !(i.if_not_exists && self.indexes.contains_key(&i.idxname))
                {
                    let columns = i
                        .index_params
                        .iter()
                        .filter_map(|p| match &p.node {
                            Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => {
                                Some(e.name.clone())
                            }
                            _ => None,
                        })
                        .collect();
                    self.indexes.insert(
                        i.idxname.clone(),
                        IndexInfo {
                            name: i.idxname.clone(),
                            table: RelName::from_range_var(r),
                            plain: i.where_clause.is_none()
                                && i.index_params.iter().all(|p| {
                                    matches!(&p.node, Some(NodeEnum::IndexElem(e)) if !e.name.is_empty())
                                }),
                            columns,
                            unique: i.unique,
                        },
                    );
                }
            }
            NodeEnum::AlterTableStmt(a)
                if a.objtype != pg_query::protobuf::ObjectType::ObjectIndex as i32 =>
            {
                if let Some(r) = &a.relation {
                    self.learn_alter_table(&RelName::from_range_var(r), &a.cmds);
                }
            }
            _ => {}
        }
        // Locks on existing relations stay held until the transaction ends (each mode
        // taken, by relation: together they may cover more than the strongest alone).
        if self.in_transaction {
            for l in &locks.locks {
                if !self.is_existing(&l.target) {
                    continue;
                }
                let target = self.resolve(&l.target);
                if !self
                    .held
                    .iter()
                    .any(|h| h.target == target && h.mode == l.mode)
                {
                    self.held.push(RelationLock {
                        target,
                        ..l.clone()
                    });
                }
            }
        } else {
            self.held.clear();
            self.new_enum_values.clear();
        }
        for name in dropped_indexes {
            self.indexes.remove(&name);
        }
        if let Some((old, new)) = moved {
            self.move_relation(&old, &new);
        }
    }

    /// `old` is now named as `new` says: the tables, views, indexes, checks and held
    /// locks that name it follow.
    fn move_relation(&mut self, old: &RelName, new: &Renamed) {
        let rename = |r: &mut RelName| {
            if r.same_as(old) {
                match new {
                    Renamed::Name(n) => r.name = n.clone(),
                    Renamed::Schema(s) => r.schema = Some(s.clone()),
                }
            }
        };
        if let Some(mut t) = self.tables.remove(&old.name) {
            if t.name.same_as(old) {
                rename(&mut t.name);
                self.dropped.remove(&t.name.name);
                self.tables.insert(t.name.name.clone(), t);
            } else {
                self.tables.insert(old.name.clone(), t);
            }
        }
        if let Some((mut name, columns)) = self.learned_types.remove(&old.name) {
            rename(&mut name);
            self.learned_types
                .insert(name.name.clone(), (name, columns));
        }
        if matches!(new, Renamed::Name(_)) {
            self.vacated.insert(old.name.clone());
            let mut renamed = old.clone();
            rename(&mut renamed);
            // Swapped in under a name running code uses (`RENAME TO users` after `users`
            // was renamed away): that code now reaches this table.
            let swapped_in = self.vacated.contains(&renamed.name);
            self.table_entry(&renamed).renamed_in_unit = !swapped_in;
        }
        for t in self.tables.values_mut() {
            t.partitions.iter_mut().for_each(rename);
            t.default_partition.iter_mut().for_each(rename);
        }
        if let Some(mut v) = self.views.remove(&old.name) {
            if v.name.same_as(old) {
                rename(&mut v.name);
                self.views.insert(v.name.name.clone(), v);
            } else {
                self.views.insert(old.name.clone(), v);
            }
        }
        for v in self.views.values_mut() {
            v.base.iter_mut().flatten().for_each(rename);
        }
        self.indexes.values_mut().for_each(|i| rename(&mut i.table));
        self.checks.values_mut().for_each(|c| rename(&mut c.table));
        for k in &mut self.foreign_keys {
            rename(&mut k.table);
            rename(&mut k.referenced);
        }
        for h in &mut self.held {
            if let LockTarget::Table(t) | LockTarget::IndexesOf(t) = &mut h.target {
                rename(t);
            }
        }
    }

    /// Whether every reader of the relation must first lock a table this transaction
    /// holds in ACCESS EXCLUSIVE: a view (not a materialized one) one of whose base
    /// tables it holds so. A query on the view locks the view, then all its base tables
    /// (the rewriter expands it): one that entered before the transaction took that lock
    /// made it wait, and one entering now queues behind it anyway, so waiting for a
    /// lock on the view makes no one queue who would not.
    pub(crate) fn readers_wait_anyway(&self, target: &LockTarget) -> bool {
        let LockTarget::Table(name) = target else {
            return false;
        };
        self.views
            .get(&name.name)
            .filter(|v| v.name.same_as(name))
            .and_then(|v| v.base.as_ref())
            .is_some_and(|base| {
                base.iter().any(|t| {
                    self.held_on(&LockTarget::Table(t.clone())) == Some(LockMode::AccessExclusive)
                })
            })
    }

    /// A column's type as lint last saw it: from the unit, else from earlier migrations.
    pub(crate) fn column_type(&self, table: &RelName, column: &str) -> Option<&str> {
        let in_unit = self
            .table(table)
            .and_then(|t| t.column(column))
            .map(|c| c.type_name.as_str())
            .filter(|t| !t.is_empty());
        in_unit.or_else(|| {
            self.learned_types
                .get(&table.name)
                .filter(|(name, _)| name.same_as(table))
                .and_then(|(_, columns)| columns.get(column))
                .map(String::as_str)
        })
    }

    fn created_type(&mut self, names: &[pg_query::Node]) {
        if let Some(name) = string_list(names).pop() {
            self.created.types.insert(name);
        }
    }

    /// The implicit transaction of a simple-query message of several statements begins.
    pub(crate) fn begin_simple_query(&mut self) {
        self.in_transaction = true;
        self.lock_timeout.begin();
        self.utc.begin();
    }

    /// That message ran: its implicit transaction commits (`SET LOCAL` ends with it).
    pub(crate) fn end_simple_query(&mut self) {
        self.in_transaction = false;
        self.lock_timeout.end(true);
        self.utc.end(true);
        self.end_implicit_transaction();
    }

    /// The end of a transaction a single statement ran in (a `DO` block outside a
    /// transaction block): its locks and new enum values go.
    pub(crate) fn end_implicit_transaction(&mut self) {
        self.held.clear();
        self.new_enum_values.clear();
    }

    fn set(&mut self, guc: Guc, value: bool, local: bool) {
        let setting = match guc {
            Guc::LockTimeout => &mut self.lock_timeout,
            Guc::TimeZone => &mut self.utc,
        };
        setting.set(value, local, self.in_transaction);
    }

    fn apply_transaction(&mut self, kind: i32, options: &LintOptions) {
        use TransactionStmtKind as K;
        match K::try_from(kind).unwrap_or(K::Undefined) {
            K::TransStmtBegin | K::TransStmtStart => {
                if !self.in_transaction {
                    self.lock_timeout.begin();
                    self.utc.begin();
                }
                self.in_transaction = true;
            }
            k @ (K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare) => {
                let commit = k == K::TransStmtCommit;
                self.lock_timeout.end(commit);
                self.utc.end(commit);
                self.held.clear();
                self.new_enum_values.clear();
                // Under --assume-in-transaction the tool's own transaction goes on.
                self.in_transaction = options.assume_in_transaction;
            }
            _ => {}
        }
    }

    /// A table a statement creates. Under `IF NOT EXISTS` it may already exist (with rows
    /// and users): it is new only when the unit dropped it first, or the schema lint was
    /// given does not have it.
    fn create_table(
        &mut self,
        name: RelName,
        columns: Vec<ColumnInfo>,
        partitioned: Option<bool>,
        if_not_exists: bool,
        options: &LintOptions,
    ) {
        let absent = self.dropped.contains(&name.name)
            || (self.table(&name).is_none()
                && options
                    .schema
                    .as_ref()
                    .is_some_and(|s| s.tables_known && !s.has_table(&name)));
        if if_not_exists && !absent {
            // Not new: keep what is known of it, and learn its declared columns as
            // possibly existing ones.
            let t = self.table_entry(&name);
            for mut col in columns {
                if t.column(&col.name).is_none() {
                    col.added_in_unit = false;
                    t.columns.push(col);
                }
            }
            if t.partitioned.is_none() {
                t.partitioned = partitioned;
            }
            return;
        }
        self.dropped.remove(&name.name);
        self.tables.insert(
            name.name.clone(),
            TableInfo {
                name,
                created_in_unit: true,
                columns,
                partitioned,
                has_rows: false,
                partitions: Vec::new(),
                partitions_complete: partitioned == Some(true),
                default_partition: None,
                primary_key: Some(None),
                replica_identity: None,
                if_created_locks: None,
                renamed_in_unit: false,
            },
        );
    }

    /// `CREATE TABLE ... AS` / `SELECT ... INTO`: a new table, filled unless `WITH NO DATA`.
    fn learn_table_as(
        &mut self,
        name: RelName,
        if_not_exists: bool,
        filled: bool,
        options: &LintOptions,
    ) {
        self.create_table(
            name.clone(),
            Vec::new(),
            Some(false),
            if_not_exists,
            options,
        );
        if filled {
            self.fill_table(&name);
        }
    }

    /// INSERT / COPY FROM / MERGE into a table: one created in the unit has rows now.
    fn fill(&mut self, relation: Option<&pg_query::protobuf::RangeVar>) {
        if let Some(r) = relation {
            self.fill_table(&RelName::from_range_var(r));
        }
    }

    fn fill_table(&mut self, name: &RelName) {
        if let Some(t) = self
            .tables
            .get_mut(&name.name)
            .filter(|t| t.name.same_as(name))
            && (t.created_in_unit || t.if_created_locks.is_some())
        {
            t.has_rows = true;
        }
    }

    fn learn_create_table(&mut self, c: &pg_query::protobuf::CreateStmt, options: &LintOptions) {
        let Some(r) = &c.relation else { return };
        let name = RelName::from_range_var(r);
        let mut columns: Vec<ColumnInfo> = Vec::new();
        let mut pk: Vec<String> = Vec::new();
        for elt in &c.table_elts {
            match &elt.node {
                Some(NodeEnum::ColumnDef(col)) => columns.push(column_info(col)),
                Some(NodeEnum::Constraint(con))
                    if con.contype == ConstrType::ConstrPrimary as i32 =>
                {
                    pk.extend(string_list(&con.keys));
                }
                _ => {}
            }
        }
        for col in &mut columns {
            if pk.contains(&col.name) {
                col.not_null = true;
            }
        }
        // The primary key's constraint name: its own, or PostgreSQL's `<table>_pkey`.
        let pk_name = c
            .table_elts
            .iter()
            .find_map(|elt| match &elt.node {
                Some(NodeEnum::Constraint(con))
                    if con.contype == ConstrType::ConstrPrimary as i32 =>
                {
                    Some(con.conname.clone())
                }
                Some(NodeEnum::ColumnDef(col)) => {
                    col.constraints.iter().find_map(|k| match &k.node {
                        Some(NodeEnum::Constraint(con))
                            if con.contype == ConstrType::ConstrPrimary as i32 =>
                        {
                            Some(con.conname.clone())
                        }
                        _ => None,
                    })
                }
                _ => None,
            })
            .map(|n| {
                if n.is_empty() {
                    format!("{}_pkey", name.name)
                } else {
                    n
                }
            });
        // `PARTITION OF parent`: the parent is partitioned, and this is one of its
        // partitions.
        if let Some(bound) = &c.partbound {
            for parent in &c.inh_relations {
                if let Some(NodeEnum::RangeVar(p)) = &parent.node {
                    self.learn_partition(&RelName::from_range_var(p), &name, bound.is_default);
                }
            }
        }
        self.create_table(
            name.clone(),
            columns,
            Some(c.partspec.is_some()),
            c.if_not_exists,
            options,
        );
        if let Some(t) = self.tables.get_mut(&name.name)
            && t.created_in_unit
        {
            t.primary_key = Some(pk_name);
        }
        for elt in &c.table_elts {
            match &elt.node {
                Some(NodeEnum::Constraint(con)) => {
                    self.learn_check(&name, con, None);
                    self.learn_constraint_index(&name, con, None);
                    self.learn_foreign_key(&name, con, None);
                }
                Some(NodeEnum::ColumnDef(col)) => self.learn_column_constraint_indexes(&name, col),
                _ => {}
            }
        }
    }

    /// The indexes of a column's own `PRIMARY KEY` / `UNIQUE` constraints.
    fn learn_column_constraint_indexes(
        &mut self,
        table: &RelName,
        col: &pg_query::protobuf::ColumnDef,
    ) {
        for k in &col.constraints {
            if let Some(NodeEnum::Constraint(con)) = &k.node {
                self.learn_constraint_index(table, con, Some(&col.colname));
                self.learn_foreign_key(table, con, Some(&col.colname));
            }
        }
    }

    /// A `FOREIGN KEY` / `REFERENCES` constraint, under the name PostgreSQL gives it: the
    /// constraint's, else `<table>_<columns>_fkey` (none when longer than 63 bytes).
    fn learn_foreign_key(
        &mut self,
        table: &RelName,
        con: &pg_query::protobuf::Constraint,
        column: Option<&str>,
    ) {
        if con.contype != ConstrType::ConstrForeign as i32 {
            return;
        }
        let Some(referenced) = con.pktable.as_ref().map(RelName::from_range_var) else {
            return;
        };
        let mut columns = string_list(&con.fk_attrs);
        if columns.is_empty() {
            columns.extend(column.map(str::to_string));
        }
        let name = if con.conname.is_empty() {
            Some(format!("{}_{}_fkey", table.name, columns.join("_"))).filter(|n| n.len() <= 63)
        } else {
            Some(con.conname.clone())
        };
        self.foreign_keys.push(ForeignKey {
            name,
            table: table.clone(),
            columns,
            referenced,
        });
    }

    /// The index a `PRIMARY KEY` or `UNIQUE` constraint builds (or takes over with `USING
    /// INDEX`, renaming it to the constraint's name), under the name PostgreSQL gives it:
    /// the constraint's, else `<table>_pkey` or `<table>_<columns>_key` (left unknown
    /// when that is longer than PostgreSQL's 63 bytes: it truncates).
    fn learn_constraint_index(
        &mut self,
        table: &RelName,
        con: &pg_query::protobuf::Constraint,
        column: Option<&str>,
    ) {
        let primary = con.contype == ConstrType::ConstrPrimary as i32;
        if !primary && con.contype != ConstrType::ConstrUnique as i32 {
            return;
        }
        let mut columns = string_list(&con.keys);
        if columns.is_empty() {
            columns.extend(column.map(str::to_string));
        }
        let taken_over = (!con.indexname.is_empty())
            .then(|| self.indexes.remove(&con.indexname))
            .flatten();
        let name = if !con.conname.is_empty() {
            con.conname.clone()
        } else if !con.indexname.is_empty() {
            con.indexname.clone()
        } else if primary {
            format!("{}_pkey", table.name)
        } else if columns.is_empty() {
            return;
        } else {
            format!("{}_{}_key", table.name, columns.join("_"))
        };
        if name.len() > 63 {
            return;
        }
        let index = match taken_over {
            Some(i) => IndexInfo {
                name: name.clone(),
                ..i
            },
            None => IndexInfo {
                name: name.clone(),
                table: table.clone(),
                plain: !columns.is_empty(),
                columns,
                unique: true,
            },
        };
        self.indexes.insert(name, index);
    }

    /// `partition` is a partition of `parent` (its DEFAULT one when `default`).
    fn learn_partition(&mut self, parent: &RelName, partition: &RelName, default: bool) {
        let p = self.table_entry(parent);
        p.partitioned = Some(true);
        if !p.partitions.iter().any(|q| q.same_as(partition)) {
            p.partitions.push(partition.clone());
        }
        if default {
            p.default_partition = Some(partition.clone());
        }
    }

    fn table_entry(&mut self, name: &RelName) -> &mut TableInfo {
        self.tables
            .entry(name.name.clone())
            .or_insert_with(|| TableInfo {
                name: name.clone(),
                created_in_unit: false,
                columns: Vec::new(),
                partitioned: None,
                has_rows: false,
                partitions: Vec::new(),
                partitions_complete: false,
                default_partition: None,
                primary_key: None,
                replica_identity: None,
                if_created_locks: None,
                renamed_in_unit: false,
            })
    }

    /// A column of a table, known or not yet (an existing column the unit only alters:
    /// nothing known about it but what the unit does to it).
    fn column_entry(&mut self, table: &RelName, name: &str) -> &mut ColumnInfo {
        let t = self.table_entry(table);
        let at = match t.columns.iter().position(|c| c.name == name) {
            Some(at) => at,
            None => {
                t.columns.push(ColumnInfo {
                    name: name.to_string(),
                    type_name: String::new(),
                    not_null: false,
                    added_in_unit: false,
                    default: None,
                });
                t.columns.len() - 1
            }
        };
        &mut t.columns[at]
    }

    fn learn_alter_table(&mut self, table: &RelName, cmds: &[pg_query::Node]) {
        for cmd in cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
                continue;
            };
            let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
            match AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined) {
                AlterTableType::AtAddColumn => {
                    if let Some(NodeEnum::ColumnDef(col)) = def {
                        self.learn_column_constraint_indexes(table, col);
                        let info = column_info(col);
                        let t = self.table_entry(table);
                        t.columns.retain(|c| c.name != info.name);
                        t.columns.push(info);
                    }
                }
                AlterTableType::AtAlterColumnType => {
                    if let Some(NodeEnum::ColumnDef(col)) = def
                        && let Some(t) = col.type_name.as_ref()
                    {
                        self.column_entry(table, &cmd.name).type_name = type_name(t);
                    }
                }
                AlterTableType::AtSetNotNull | AlterTableType::AtDropNotNull => {
                    self.column_entry(table, &cmd.name).not_null =
                        cmd.subtype == AlterTableType::AtSetNotNull as i32;
                }
                AlterTableType::AtColumnDefault => {
                    self.column_entry(table, &cmd.name).default = Some(cmd.def.is_some());
                }
                AlterTableType::AtAddConstraint => {
                    if let Some(NodeEnum::Constraint(con)) = def {
                        self.learn_check(table, con, None);
                        self.learn_constraint_index(table, con, None);
                        self.learn_foreign_key(table, con, None);
                        if con.contype == ConstrType::ConstrPrimary as i32 {
                            let pk = if con.conname.is_empty() {
                                format!("{}_pkey", table.name)
                            } else {
                                con.conname.clone()
                            };
                            self.table_entry(table).primary_key = Some(Some(pk));
                        }
                    }
                }
                AlterTableType::AtValidateConstraint => {
                    if let Some(c) = self.checks.get_mut(&cmd.name) {
                        c.validated = true;
                    }
                }
                AlterTableType::AtDropColumn => {
                    self.foreign_keys
                        .retain(|k| !(k.table.same_as(table) && k.columns.contains(&cmd.name)));
                }
                AlterTableType::AtDropConstraint => {
                    self.foreign_keys.retain(|k| {
                        !(k.table.same_as(table) && k.name.as_deref() == Some(&cmd.name))
                    });
                    self.checks.remove(&cmd.name);
                    let t = self.table_entry(table);
                    if t.primary_key
                        .as_ref()
                        .is_some_and(|pk| pk.as_deref() == Some(&cmd.name))
                    {
                        t.primary_key = Some(None);
                    }
                }
                AlterTableType::AtReplicaIdentity => {
                    if let Some(NodeEnum::ReplicaIdentityStmt(r)) = def {
                        self.table_entry(table).replica_identity = Some(r.identity_type.clone());
                    }
                }
                AlterTableType::AtAttachPartition => {
                    if let Some(NodeEnum::PartitionCmd(p)) = def
                        && let Some(part) = &p.name
                    {
                        let default = p.bound.as_ref().is_some_and(|b| b.is_default);
                        self.learn_partition(table, &RelName::from_range_var(part), default);
                    }
                }
                AlterTableType::AtDetachPartition => {
                    if let Some(NodeEnum::PartitionCmd(p)) = def
                        && let Some(part) = &p.name
                    {
                        let part = RelName::from_range_var(part);
                        let t = self.table_entry(table);
                        t.partitions.retain(|q| !q.same_as(&part));
                        if t.default_partition
                            .as_ref()
                            .is_some_and(|d| d.same_as(&part))
                        {
                            t.default_partition = None;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn learn_check(
        &mut self,
        table: &RelName,
        con: &pg_query::protobuf::Constraint,
        column: Option<&str>,
    ) {
        if con.contype != ConstrType::ConstrCheck as i32 {
            return;
        }
        let not_null_column = con.raw_expr.as_deref().and_then(is_not_null_test);
        let name = if con.conname.is_empty() {
            // PostgreSQL's generated name: <table>_<first column>_check.
            let col = not_null_column.as_deref().or(column).unwrap_or("");
            if col.is_empty() {
                format!("{}_check", table.name)
            } else {
                format!("{}_{col}_check", table.name)
            }
        } else {
            con.conname.clone()
        };
        self.checks.insert(
            name.clone(),
            CheckInfo {
                name,
                table: table.clone(),
                not_null_column,
                validated: !con.skip_validation,
            },
        );
    }
}

/// What a rename or `SET SCHEMA` changes of a relation's name.
#[derive(Debug, Clone)]
enum Renamed {
    /// `RENAME TO name`.
    Name(String),
    /// `SET SCHEMA schema`.
    Schema(String),
}

/// Whether an object type of `RENAME` / `SET SCHEMA` is a relation (not an index:
/// `ALTER INDEX ... RENAME` renames an index, handled on its own).
fn is_relation(object_type: i32) -> bool {
    use pg_query::protobuf::ObjectType as O;
    matches!(
        O::try_from(object_type),
        Ok(O::ObjectTable | O::ObjectView | O::ObjectMatview | O::ObjectForeignTable)
    )
}

/// The relations a view's query reads (deduplicated), or `None` when lint cannot be
/// sure it found them all.
fn view_base_tables(query: &pg_query::Node) -> Option<Vec<RelName>> {
    let node = query.node.as_ref()?;
    let mut found: Vec<RelName> = Vec::new();
    let mut reached = 0;
    for (n, ..) in node.nodes() {
        if let pg_query::NodeRef::RangeVar(r) = n {
            reached += 1;
            let name = RelName::from_range_var(r);
            if !found.contains(&name) {
                found.push(name);
            }
        }
    }
    // pg_query's walker does not enter every kind of expression (a subquery in an
    // array constructor, a window clause): when the tree holds relations it did not
    // reach, lint does not know them all.
    let all = format!("{node:?}").matches("RangeVar {").count();
    (all == reached && !found.is_empty()).then_some(found)
}

/// The session settings lint follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guc {
    LockTimeout,
    TimeZone,
}

/// `set_config('lock_timeout', value, is_local)` -> (setting, the fact lint follows
/// about its value, is_local).
fn set_config(expr: &pg_query::Node) -> Option<(Guc, bool, bool)> {
    use pg_query::protobuf::a_const::Val;
    let NodeEnum::FuncCall(f) = expr.node.as_ref()? else {
        return None;
    };
    if string_list(&f.funcname).last().map(String::as_str) != Some("set_config") {
        return None;
    }
    let [name, value, local] = f.args.as_slice() else {
        return None;
    };
    let constant = |n: &pg_query::Node| match n.node.as_ref() {
        Some(NodeEnum::AConst(c)) => c.val.clone(),
        Some(NodeEnum::TypeCast(t)) => match t.arg.as_deref().and_then(|a| a.node.as_ref()) {
            Some(NodeEnum::AConst(c)) => c.val.clone(),
            _ => None,
        },
        _ => None,
    };
    let guc = match constant(name)? {
        Val::Sval(s) if s.sval.eq_ignore_ascii_case("lock_timeout") => Guc::LockTimeout,
        Val::Sval(s) if s.sval.eq_ignore_ascii_case("timezone") => Guc::TimeZone,
        _ => return None,
    };
    let is_local = match constant(local)? {
        Val::Boolval(b) => b.boolval,
        Val::Sval(s) => matches!(s.sval.to_ascii_lowercase().as_str(), "true" | "on" | "t"),
        _ => return None,
    };
    let fact = match guc {
        Guc::LockTimeout => nonzero(value),
        Guc::TimeZone => utc_value(value),
    };
    Some((guc, fact, is_local))
}

/// A `SET TIME ZONE` value that is UTC: a name of a zone with offset 0 and no daylight
/// saving (`UTC`, `Etc/UTC`, `GMT`, `Zulu`...), or a zero offset (`0`, `'+00:00'`,
/// `INTERVAL '0' HOUR`). PostgreSQL skips the rewrite of `timestamp` <-> `timestamptz`
/// exactly for fixed zero-offset zones (`TimestampTimestampTzRequiresRewrite`).
fn utc_value(value: &pg_query::Node) -> bool {
    use pg_query::protobuf::a_const::Val;
    match value.node.as_ref() {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(Val::Ival(i)) => i.ival == 0,
            Some(Val::Fval(f)) => f.fval.parse::<f64>().is_ok_and(|v| v == 0.0),
            Some(Val::Sval(s)) => utc_zone(&s.sval),
            _ => false,
        },
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(utc_value),
        _ => false,
    }
}

/// A time zone name or offset PostgreSQL treats as UTC.
fn utc_zone(name: &str) -> bool {
    const UTC: &[&str] = &[
        "utc",
        "uct",
        "gmt",
        "zulu",
        "universal",
        "greenwich",
        "gmt0",
        "gmt+0",
        "gmt-0",
        "utc0",
    ];
    let zone = name.trim().to_ascii_lowercase();
    let zone = zone.strip_prefix("etc/").unwrap_or(&zone);
    let offset = zone.trim_start_matches(['+', '-']);
    UTC.contains(&zone)
        || (offset.starts_with('0') && offset.chars().all(|c| matches!(c, '0' | ':' | '.')))
}

/// `col IS NOT NULL` -> `col`.
pub(crate) fn is_not_null_test(expr: &pg_query::Node) -> Option<String> {
    match expr.node.as_ref()? {
        NodeEnum::NullTest(n)
            if n.nulltesttype == pg_query::protobuf::NullTestType::IsNotNull as i32 =>
        {
            match n.arg.as_deref()?.node.as_ref()? {
                NodeEnum::ColumnRef(c) => string_list(&c.fields).pop(),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The strings of a name list (`a.b` -> `["a", "b"]`).
pub(crate) fn string_list(nodes: &[pg_query::Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

fn column_info(col: &pg_query::protobuf::ColumnDef) -> ColumnInfo {
    let not_null = col.is_not_null
        || col.constraints.iter().any(|c| {
            matches!(&c.node, Some(NodeEnum::Constraint(k))
                if k.contype == ConstrType::ConstrNotnull as i32
                    || k.contype == ConstrType::ConstrPrimary as i32)
        });
    ColumnInfo {
        name: col.colname.clone(),
        type_name: col.type_name.as_ref().map(type_name).unwrap_or_default(),
        not_null,
        added_in_unit: true,
        default: Some(
            crate::locks::has_default(col)
                || col
                    .type_name
                    .as_ref()
                    .is_some_and(crate::locks::is_serial_type),
        ),
    }
}

/// A type as written, lowercased, without `pg_catalog.`: `varchar(255)`, `int8`.
pub(crate) fn type_name(t: &pg_query::protobuf::TypeName) -> String {
    let names: Vec<String> = string_list(&t.names)
        .into_iter()
        .filter(|n| n != "pg_catalog")
        .collect();
    let mut s = names.join(".");
    let mods: Vec<String> = t
        .typmods
        .iter()
        .filter_map(|m| match &m.node {
            Some(NodeEnum::AConst(c)) => match &c.val {
                Some(pg_query::protobuf::a_const::Val::Ival(i)) => Some(i.ival.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if !mods.is_empty() {
        s.push_str(&format!("({})", mods.join(",")));
    }
    if !t.array_bounds.is_empty() {
        s.push_str("[]");
    }
    s
}

/// A `SET lock_timeout` value that sets a timeout (`0` switches it off).
fn nonzero(value: &pg_query::Node) -> bool {
    use pg_query::protobuf::a_const::Val;
    match value.node.as_ref() {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(Val::Ival(i)) => i.ival != 0,
            Some(Val::Fval(f)) => f.fval.parse::<f64>().is_ok_and(|v| v != 0.0),
            Some(Val::Sval(s)) => {
                let digits: String = s
                    .sval
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                digits.parse::<f64>().is_ok_and(|v| v != 0.0)
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lint_sql;

    fn rules(sql: &str, options: &LintOptions) -> Vec<&'static str> {
        lint_sql(sql, UnitKind::Migration { transaction: false }, options)
            .unwrap()
            .findings
            .iter()
            .map(|f| f.rule.name())
            .collect()
    }

    #[test]
    fn a_schema_makes_existing_columns_known_but_keeps_tables_existing() {
        let schema = Schema::from_sql(
            "CREATE TABLE sessions (token text NOT NULL, user_id int);\n\
             CREATE UNIQUE INDEX sessions_token_idx ON sessions (token);\n",
        )
        .unwrap();
        assert_eq!(schema.table_count(), 1);
        assert!(
            schema
                .tables
                .values()
                .flat_map(|t| &t.columns)
                .all(|c| !c.added_in_unit)
        );
        let with = LintOptions {
            schema: Some(Arc::new(schema)),
            ..LintOptions::default()
        };
        let pk = "ALTER TABLE sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY USING INDEX sessions_token_idx;";
        assert_eq!(
            rules(pk, &LintOptions::default()),
            ["primary-key-using-index-nullable"]
        );
        assert_eq!(rules(pk, &with), Vec::<&str>::new());
        assert_eq!(
            rules("CREATE INDEX s_user ON sessions (user_id);", &with),
            ["require-concurrent-index-creation"]
        );
    }

    #[test]
    fn a_type_change_updates_the_known_type() {
        let sql = "CREATE TABLE t (a varchar(10));\nALTER TABLE t ALTER COLUMN a TYPE text;";
        let statements = crate::split(sql, 0..sql.len()).unwrap();
        let options = LintOptions::default();
        let mut state = UnitState::new(UnitKind::PlainSql, &options);
        for s in &statements {
            state.apply(
                s.node.as_ref().unwrap(),
                &StatementLocks::default(),
                &options,
            );
        }
        let t = RelName {
            schema: None,
            name: "t".into(),
        };
        assert_eq!(
            state.table(&t).unwrap().column("a").unwrap().type_name,
            "text"
        );
        assert!(state.is_new_table(&t));
    }
}

#[cfg(test)]
mod index_table_tests {
    use std::sync::Arc;

    use super::*;
    use crate::lint_sql;

    /// (line, rule) of each finding, the unit run in one transaction.
    fn found(sql: &str, schema: Option<Schema>) -> Vec<(usize, &'static str)> {
        let options = LintOptions {
            assume_in_transaction: true,
            schema: schema.map(Arc::new),
            ..LintOptions::default()
        };
        lint_sql(sql, UnitKind::PlainSql, &options)
            .unwrap()
            .findings
            .iter()
            .map(|f| (f.span.line, f.rule.name()))
            .collect()
    }

    fn earlier(sql: &str) -> Schema {
        let mut s = Schema::default();
        s.learn_from_sql(sql).unwrap();
        s
    }

    fn table_of(s: &Schema, index: &str) -> Option<String> {
        s.indexes.get(index).map(|i| i.table.to_string())
    }

    #[test]
    fn the_implicit_indexes_of_a_new_table_are_its_own() {
        let sql = "CREATE TABLE t (id int PRIMARY KEY, code text UNIQUE, a int, b int, UNIQUE (a, b));\n\
                   DROP INDEX t_code_key;\nDROP INDEX t_a_b_key;\nDROP INDEX t_pkey;";
        assert_eq!(found(sql, None), []);
    }

    #[test]
    fn a_constraint_index_dropped_later_is_on_a_table_already_held() {
        let sql = "SET lock_timeout = '2s';\n\
                   ALTER TABLE jobs ADD COLUMN parent uuid;\n\
                   ALTER TABLE jobs ADD CONSTRAINT jobs_uq UNIQUE USING INDEX jobs_ns_name;\n\
                   ALTER TABLE jobs ADD PRIMARY KEY (id);\n\
                   DROP INDEX jobs_uq;\nDROP INDEX jobs_pkey;";
        let f = found(sql, None);
        assert!(f.iter().all(|(line, _)| *line < 5), "{f:?}");
    }

    #[test]
    fn column_types_of_earlier_migrations_tell_a_type_change_from_a_no_op() {
        // kratos 20210410175418000064_network: `nid` became uuid in ...000061, so
        // `ALTER COLUMN nid TYPE UUID` rewrites nothing (judged false in seed 20).
        let s = earlier(
            "CREATE TABLE identities (id uuid PRIMARY KEY, traits text);\n\
             ALTER TABLE identities ADD COLUMN nid UUID;\n\
             ALTER TABLE identities ALTER COLUMN traits TYPE jsonb USING traits::jsonb;\n\
             ALTER TABLE identities RENAME TO people;\n",
        );
        let rules = |sql: &str| -> Vec<&'static str> {
            found(sql, Some(s.clone()))
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| *r == "changing-column-type")
                .collect()
        };
        assert_eq!(
            rules("ALTER TABLE people ALTER COLUMN nid TYPE UUID;"),
            Vec::<&str>::new()
        );
        assert_eq!(
            rules("ALTER TABLE people ALTER COLUMN traits TYPE jsonb;"),
            Vec::<&str>::new()
        );
        assert_eq!(
            rules("ALTER TABLE people ALTER COLUMN nid TYPE text;"),
            ["changing-column-type"]
        );
        // Under its old name the table is another one, whose columns lint does not know.
        assert_eq!(
            rules("ALTER TABLE identities ALTER COLUMN nid TYPE uuid;"),
            ["changing-column-type"]
        );
    }

    #[test]
    fn indexes_created_by_earlier_migrations_map_to_their_tables() {
        let s = earlier(
            "CREATE TABLE post_aggregates (id int PRIMARY KEY, score int);\n\
             CREATE INDEX idx_pa_score ON post_aggregates (score);\n\
             CREATE INDEX idx_pa_hot ON post_aggregates (score);\n",
        );
        let sql =
            "DROP INDEX idx_pa_score;\nDROP INDEX idx_pa_hot;\nDROP INDEX post_aggregates_pkey;";
        // Only the first drop waits for the table: the transaction holds it after.
        assert_eq!(
            found(sql, Some(s)),
            [
                (1, "missing-lock-timeout"),
                (1, "require-concurrent-index-deletion")
            ]
        );
        // Not known: each drop is its own table's as far as lint knows.
        assert_eq!(found(sql, None).len(), 6);
    }

    #[test]
    fn later_renames_and_drops_update_the_map() {
        let mut s = earlier("CREATE INDEX a_idx ON a (x);\nCREATE INDEX b_idx ON b (x);");
        s.learn_from_sql(
            "ALTER INDEX a_idx RENAME TO a_x_idx;\nDROP INDEX b_idx;\n\
             ALTER TABLE a RENAME TO a2;\nCREATE INDEX c_idx ON c (x);\nDROP TABLE c;\n\
             CREATE INDEX IF NOT EXISTS a_x_idx ON blob (x);",
        )
        .unwrap();
        assert_eq!(table_of(&s, "a_x_idx").as_deref(), Some("a2"));
        assert_eq!(table_of(&s, "a_idx"), None);
        assert_eq!(table_of(&s, "b_idx"), None);
        assert_eq!(table_of(&s, "c_idx"), None);
    }

    #[test]
    fn views_of_earlier_migrations_are_read_through_their_base_tables() {
        // lemmy: split_user_table_2 created the views, move_matrix_id_to_person alters
        // person and then drops them in Diesel's transaction.
        let mut s = earlier(
            "CREATE TABLE person (id int);\n\
             CREATE VIEW person_alias_1 AS SELECT * FROM person;\n\
             CREATE OR REPLACE VIEW person_alias_2 AS SELECT * FROM local_user;\n\
             CREATE MATERIALIZED VIEW mv AS SELECT id FROM person;\n\
             CREATE VIEW gone AS SELECT * FROM person;\n\
             CREATE VIEW arr AS SELECT p.id, ARRAY[(SELECT 1 FROM ban b WHERE b.id = p.id)] FROM person p;",
        );
        s.learn_from_sql(
            "CREATE OR REPLACE VIEW person_alias_2 AS SELECT * FROM person;\n\
             ALTER VIEW person_alias_1 RENAME TO pa1;\nDROP VIEW gone;",
        )
        .unwrap();
        let sql = "ALTER TABLE person ADD COLUMN a text;\nDROP VIEW pa1, person_alias_2;\n\
                   DROP MATERIALIZED VIEW mv;\nDROP VIEW gone;\nDROP VIEW person_alias_1;\nDROP VIEW arr;";
        // A materialized view is read without its base tables; `gone` is another view
        // now; `person_alias_1` is not known any more; `arr` reads ban in a subquery
        // pg_query's walker does not reach.
        assert_eq!(
            found(sql, Some(s))
                .into_iter()
                .filter(|(_, r)| *r == "missing-lock-timeout")
                .map(|(l, _)| l)
                .collect::<Vec<_>>(),
            [1, 3, 4, 5, 6]
        );
    }

    #[test]
    fn known_indexes_alone_do_not_make_other_tables_absent() {
        // With a schema dump, a table it lacks is new; indexes learned from earlier
        // migrations say nothing of which tables exist.
        let s = earlier("CREATE INDEX a_idx ON a (x);");
        let sql = "CREATE TABLE IF NOT EXISTS users (id int);\nALTER TABLE users ADD COLUMN n int;";
        assert_eq!(found(sql, Some(s)), found(sql, None));
    }

    /// The tables a statement reaches through the foreign keys the unit knows, `table
    /// MODE`, after `before` ran.
    fn reached(schema: Schema, before: &str, sql: &str) -> Vec<String> {
        let options = LintOptions {
            schema: Some(Arc::new(schema)),
            ..LintOptions::default()
        };
        let mut state = UnitState::new(UnitKind::PlainSql, &options);
        for stmt in crate::split(before, 0..before.len()).unwrap() {
            let node = stmt.node.unwrap();
            let locks = crate::locks::statement_locks(&node, PgVersion::DEFAULT);
            state.apply(&node, &locks, &options);
        }
        let mut locks = crate::locks::sql_statement_locks(sql, PgVersion::DEFAULT);
        state.lock_through_foreign_keys(&mut locks);
        locks
            .locks
            .iter()
            .map(|l| format!("{} {}", l.target, l.mode))
            .collect()
    }

    #[test]
    fn dropped_foreign_keys_lock_their_referenced_tables_known_from_any_source() {
        let dump = || {
            Schema::from_sql(
                "CREATE TABLE p (id int PRIMARY KEY);
                 CREATE TABLE c (id int, p_id int REFERENCES p, q int,                  CONSTRAINT c_q FOREIGN KEY (q) REFERENCES s.q (id));",
            )
            .unwrap()
        };
        let both = ["c ACCESS EXCLUSIVE", "p ACCESS EXCLUSIVE"];
        assert_eq!(
            reached(dump(), "", "ALTER TABLE c DROP CONSTRAINT c_p_id_fkey"),
            both
        );
        assert_eq!(reached(dump(), "", "ALTER TABLE c DROP COLUMN p_id"), both);
        assert_eq!(
            reached(dump(), "", "DROP TABLE c"),
            [
                "c ACCESS EXCLUSIVE",
                "p ACCESS EXCLUSIVE",
                "s.q ACCESS EXCLUSIVE"
            ]
        );
        assert_eq!(
            reached(dump(), "", "TRUNCATE p CASCADE"),
            ["p ACCESS EXCLUSIVE", "c ACCESS EXCLUSIVE"]
        );
        // Not a key, a key of another table, a key already dropped or renamed.
        assert_eq!(
            reached(dump(), "", "ALTER TABLE c DROP COLUMN id"),
            ["c ACCESS EXCLUSIVE"]
        );
        assert_eq!(reached(dump(), "", "TRUNCATE p"), ["p ACCESS EXCLUSIVE"]);
        assert_eq!(
            reached(
                dump(),
                "ALTER TABLE c DROP CONSTRAINT c_q;",
                "ALTER TABLE c DROP COLUMN q"
            ),
            ["c ACCESS EXCLUSIVE"]
        );
        assert_eq!(
            reached(
                dump(),
                "ALTER TABLE c RENAME CONSTRAINT c_q TO c_q2;\nALTER TABLE s.q RENAME TO r;",
                "ALTER TABLE c DROP CONSTRAINT c_q2"
            ),
            ["c ACCESS EXCLUSIVE", "s.r ACCESS EXCLUSIVE"]
        );
        // Learned from an earlier migration of the directory, or earlier in the file.
        assert_eq!(
            reached(
                earlier("ALTER TABLE c ADD CONSTRAINT k FOREIGN KEY (x) REFERENCES p (id);"),
                "",
                "ALTER TABLE c DROP CONSTRAINT k"
            ),
            both
        );
        assert_eq!(
            reached(
                Schema::default(),
                "ALTER TABLE c ADD COLUMN x int REFERENCES p;",
                "ALTER TABLE c DROP CONSTRAINT c_x_fkey"
            ),
            both
        );
    }
}
