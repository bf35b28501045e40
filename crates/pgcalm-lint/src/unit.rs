//! What lint reads ([`LintUnit`], [`LintOptions`]) and what it learns while it walks a
//! unit's statements in order ([`UnitState`]: transactions, lock_timeout, tables,
//! columns, indexes and constraints created or changed earlier in the unit).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, TransactionStmtKind, VariableSetKind};
use serde::Serialize;

use crate::locks::{LockMode, PgVersion, RelName, RelationLock, StatementLocks, Target};
use crate::split::{SourceStatement, SyntaxError, for_each_statement};

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

/// A sequence of statements linted together (a file, a migration section).
#[derive(Debug, Clone, Copy)]
pub struct LintUnit<'a> {
    /// The whole source text the statements' spans point into.
    pub source: &'a str,
    /// The statements, in order.
    pub statements: &'a [SourceStatement],
    /// How they run.
    pub kind: UnitKind,
}

/// Which rules run: all rules that are on by default, minus `disable`, plus `enable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleSelection {
    /// Rules switched off (`[lint] disable`).
    pub disable: BTreeSet<String>,
    /// Rules switched on, including ones off by default (`[lint] enable`).
    pub enable: BTreeSet<String>,
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
}

/// Facts about existing tables, learned from a schema's SQL (`pg_dump --schema-only`,
/// Rails' structure.sql) the same way lint learns from a unit's statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    tables: HashMap<String, TableInfo>,
    indexes: HashMap<String, IndexInfo>,
    checks: HashMap<String, CheckInfo>,
}

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
            for c in &mut t.columns {
                c.added_in_unit = false;
            }
        }
        Ok(Schema {
            tables: state.tables,
            indexes: state.indexes,
            checks: state.checks,
        })
    }

    /// Number of tables it knows.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            pg_version: PgVersion::DEFAULT,
            assume_in_transaction: false,
            rules: RuleSelection::default(),
            schema: None,
        }
    }
}

/// A column known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The type as written, lowercased (`varchar(255)`, `bigint`).
    pub type_name: String,
    /// Declared NOT NULL (or part of a primary key, or SET NOT NULL later).
    pub not_null: bool,
    /// Created in this unit (CREATE TABLE, ADD COLUMN); false for columns of the
    /// existing schema and for existing columns the unit only altered.
    pub added_in_unit: bool,
}

/// A table known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Its name.
    pub name: RelName,
    /// Created in this unit: nobody else uses it yet, so its locks block no one.
    pub created_in_unit: bool,
    /// Columns seen (all of them for a table created in the unit; the added ones
    /// otherwise).
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// An index known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// Its table.
    pub table: RelName,
    /// Key columns (expressions are left out).
    pub columns: Vec<String>,
    /// UNIQUE.
    pub unique: bool,
}

/// A CHECK constraint known from earlier in the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInfo {
    /// Constraint name (PostgreSQL's generated one when unnamed).
    pub name: String,
    /// Its table.
    pub table: RelName,
    /// The column when the check is exactly `col IS NOT NULL`.
    pub not_null_column: Option<String>,
    /// Validated (added without NOT VALID, or VALIDATEd since).
    pub validated: bool,
}

/// What lint knows before a statement, from the statements before it in the unit.
#[derive(Debug, Clone, Default)]
pub struct UnitState {
    /// Inside a transaction block (explicit BEGIN, a transactional migration, or
    /// `--assume-in-transaction`).
    pub in_transaction: bool,
    /// Session-level `lock_timeout` is set to a non-zero value.
    session_lock_timeout: bool,
    /// Transaction-level (`SET LOCAL`) value, while in a transaction.
    local_lock_timeout: Option<bool>,
    /// Session value at BEGIN (restored by ROLLBACK).
    session_lock_timeout_at_begin: bool,
    /// Tables created or altered earlier in the unit, by name.
    pub tables: HashMap<String, TableInfo>,
    /// Indexes created earlier in the unit, by name.
    pub indexes: HashMap<String, IndexInfo>,
    /// CHECK constraints added earlier in the unit, by name.
    pub checks: HashMap<String, CheckInfo>,
    /// Locks on existing relations held by the current transaction (taken by earlier
    /// statements of it), strongest per relation.
    pub held: Vec<RelationLock>,
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
            tables: schema.tables,
            indexes: schema.indexes,
            checks: schema.checks,
            ..UnitState::default()
        }
    }

    /// Takes over the tables `other` created (with their indexes and checks) as new
    /// ones: a migration's down section may drop what its up section created, since the
    /// application it rolls back to never used them.
    pub fn adopt_new_tables(&mut self, other: &UnitState) {
        for (key, t) in other.tables.iter().filter(|(_, t)| t.created_in_unit) {
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
    pub fn lock_timeout_set(&self) -> bool {
        self.local_lock_timeout.unwrap_or(self.session_lock_timeout)
    }

    /// The table if it was created or altered earlier in the unit.
    pub fn table(&self, name: &RelName) -> Option<&TableInfo> {
        self.tables.get(&name.name).filter(|t| t.name.same_as(name))
    }

    /// Created earlier in this unit (so no one else uses it yet).
    pub fn is_new_table(&self, name: &RelName) -> bool {
        self.table(name).is_some_and(|t| t.created_in_unit)
    }

    /// Whether a lock target is a relation that existed before the unit.
    pub fn is_existing(&self, target: &Target) -> bool {
        match target {
            Target::Table(t) | Target::IndexesOf(t) => !self.is_new_table(t),
            Target::Index(i) | Target::TableOfIndex(i) => self
                .indexes
                .get(&i.name)
                .is_none_or(|idx| !self.is_new_table(&idx.table)),
            Target::Database => true,
        }
    }

    /// The column is known NOT NULL: declared so in the unit, or (PostgreSQL 12+)
    /// proven by a validated `CHECK (col IS NOT NULL)` added in the unit.
    pub fn known_not_null(&self, table: &RelName, column: &str, pg: PgVersion) -> bool {
        self.table(table)
            .and_then(|t| t.column(column))
            .is_some_and(|c| c.not_null)
            || (pg.at_least(12) && self.validated_not_null_check(table, column).is_some())
    }

    /// A validated `CHECK (column IS NOT NULL)` on the table, added in the unit.
    pub fn validated_not_null_check(&self, table: &RelName, column: &str) -> Option<&CheckInfo> {
        self.checks.values().find(|c| {
            c.validated && c.table.same_as(table) && c.not_null_column.as_deref() == Some(column)
        })
    }

    /// The strongest lock the current transaction already holds on a relation.
    pub fn held_on(&self, target: &Target) -> Option<LockMode> {
        self.held
            .iter()
            .filter(|l| &l.target == target)
            .map(|l| l.mode)
            .max()
    }

    /// Learns from a statement that ran (after the rules looked at it).
    pub fn apply(&mut self, node: &NodeEnum, locks: &StatementLocks, options: &LintOptions) {
        match node {
            NodeEnum::TransactionStmt(t) => self.apply_transaction(t.kind, options),
            NodeEnum::VariableSetStmt(v) if v.name.eq_ignore_ascii_case("lock_timeout") => {
                let value = match VariableSetKind::try_from(v.kind) {
                    Ok(VariableSetKind::VarSetValue) => v.args.first().is_some_and(nonzero),
                    // DEFAULT / RESET: back to the server's, which is 0 by default.
                    _ => false,
                };
                self.set_lock_timeout(value, v.is_local);
            }
            NodeEnum::VariableSetStmt(v)
                if VariableSetKind::try_from(v.kind) == Ok(VariableSetKind::VarResetAll) =>
            {
                self.session_lock_timeout = false;
                self.local_lock_timeout = None;
            }
            NodeEnum::SelectStmt(select) => {
                // SELECT set_config('lock_timeout', '2s', is_local): what some tools emit.
                for target in &select.target_list {
                    if let Some(NodeEnum::ResTarget(t)) = &target.node
                        && let Some((value, is_local)) =
                            t.val.as_deref().and_then(set_config_lock_timeout)
                    {
                        self.set_lock_timeout(value, is_local);
                    }
                }
            }
            NodeEnum::CreateStmt(c) => self.learn_create_table(c),
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(r) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.new_table(RelName::from_range_var(r), Vec::new());
                }
            }
            NodeEnum::IndexStmt(i) => {
                if let Some(r) = &i.relation
                    && !i.idxname.is_empty()
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
                            columns,
                            unique: i.unique,
                        },
                    );
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                if let Some(r) = &a.relation {
                    self.learn_alter_table(&RelName::from_range_var(r), &a.cmds);
                }
            }
            _ => {}
        }
        // Locks on existing relations stay held until the transaction ends.
        if self.in_transaction {
            for l in &locks.locks {
                if self.is_existing(&l.target) && self.held_on(&l.target) < Some(l.mode) {
                    self.held.retain(|h| h.target != l.target);
                    self.held.push(l.clone());
                }
            }
        } else {
            self.held.clear();
        }
    }

    fn set_lock_timeout(&mut self, nonzero: bool, local: bool) {
        if local {
            // SET LOCAL outside a transaction block only warns and does nothing.
            if self.in_transaction {
                self.local_lock_timeout = Some(nonzero);
            }
        } else {
            self.session_lock_timeout = nonzero;
            if self.in_transaction {
                self.local_lock_timeout = None;
            }
        }
    }

    fn apply_transaction(&mut self, kind: i32, options: &LintOptions) {
        use TransactionStmtKind as K;
        match K::try_from(kind).unwrap_or(K::Undefined) {
            K::TransStmtBegin | K::TransStmtStart => {
                if !self.in_transaction {
                    self.session_lock_timeout_at_begin = self.session_lock_timeout;
                }
                self.in_transaction = true;
            }
            k @ (K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare) => {
                if k != K::TransStmtCommit {
                    self.session_lock_timeout = self.session_lock_timeout_at_begin;
                }
                self.local_lock_timeout = None;
                self.held.clear();
                // Under --assume-in-transaction the tool's own transaction goes on.
                self.in_transaction = options.assume_in_transaction;
                self.session_lock_timeout_at_begin = self.session_lock_timeout;
            }
            _ => {}
        }
    }

    fn new_table(&mut self, name: RelName, columns: Vec<ColumnInfo>) {
        self.tables.insert(
            name.name.clone(),
            TableInfo {
                name,
                created_in_unit: true,
                columns,
            },
        );
    }

    fn learn_create_table(&mut self, c: &pg_query::protobuf::CreateStmt) {
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
        self.new_table(name.clone(), columns);
        for elt in &c.table_elts {
            if let Some(NodeEnum::Constraint(con)) = &elt.node {
                self.learn_check(&name, con, None);
            }
        }
    }

    fn table_entry(&mut self, name: &RelName) -> &mut TableInfo {
        self.tables
            .entry(name.name.clone())
            .or_insert_with(|| TableInfo {
                name: name.clone(),
                created_in_unit: false,
                columns: Vec::new(),
            })
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
                        let type_name = type_name(t);
                        let table = self.table_entry(table);
                        match table.columns.iter_mut().find(|c| c.name == cmd.name) {
                            Some(c) => c.type_name = type_name,
                            None => table.columns.push(ColumnInfo {
                                name: cmd.name.clone(),
                                type_name,
                                not_null: false,
                                added_in_unit: false,
                            }),
                        }
                    }
                }
                AlterTableType::AtSetNotNull | AlterTableType::AtDropNotNull => {
                    let not_null = cmd.subtype == AlterTableType::AtSetNotNull as i32;
                    let t = self.table_entry(table);
                    match t.columns.iter_mut().find(|c| c.name == cmd.name) {
                        Some(c) => c.not_null = not_null,
                        None => t.columns.push(ColumnInfo {
                            name: cmd.name.clone(),
                            type_name: String::new(),
                            not_null,
                            added_in_unit: false,
                        }),
                    }
                }
                AlterTableType::AtAddConstraint => {
                    if let Some(NodeEnum::Constraint(con)) = def {
                        self.learn_check(table, con, None);
                    }
                }
                AlterTableType::AtValidateConstraint => {
                    if let Some(c) = self.checks.get_mut(&cmd.name) {
                        c.validated = true;
                    }
                }
                AlterTableType::AtDropConstraint => {
                    self.checks.remove(&cmd.name);
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

/// `set_config('lock_timeout', value, is_local)` -> (value is non-zero, is_local).
fn set_config_lock_timeout(expr: &pg_query::Node) -> Option<(bool, bool)> {
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
    match constant(name)? {
        Val::Sval(s) if s.sval.eq_ignore_ascii_case("lock_timeout") => {}
        _ => return None,
    }
    let is_local = match constant(local)? {
        Val::Boolval(b) => b.boolval,
        Val::Sval(s) => matches!(s.sval.to_ascii_lowercase().as_str(), "true" | "on" | "t"),
        _ => return None,
    };
    Some((nonzero(value), is_local))
}

/// `col IS NOT NULL` -> `col`.
pub fn is_not_null_test(expr: &pg_query::Node) -> Option<String> {
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
pub fn string_list(nodes: &[pg_query::Node]) -> Vec<String> {
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
    }
}

/// A type as written, lowercased, without `pg_catalog.`: `varchar(255)`, `int8`.
pub fn type_name(t: &pg_query::protobuf::TypeName) -> String {
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
            .map(|f| f.rule)
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
