//! THE lock table: for a parsed statement and a PostgreSQL major version, the lock each
//! relation it touches gets, what that lock blocks, and whether the statement rewrites
//! or scans the table while holding it. Lint, trace (which compares it with `pg_locks`),
//! the runner's `--plan` and `docs/locks.md` all read it from here.
//!
//! The facts follow PostgreSQL's `AlterTableGetLockLevel` and the lock notes of each
//! command's reference page; where the answer depends on something a parse tree cannot
//! know (the column's old type, the volatility of a user function), the effect is
//! [`Effect::Unless`] with the condition spelled out.

use std::fmt;

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, ConstrType, ObjectType, RangeVar, ReindexObjectType, TransactionStmtKind,
};
use serde::Serialize;

/// A PostgreSQL major version (`15` for 15.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// What lint assumes when nobody says (`--pg-version`).
    pub const DEFAULT: PgVersion = PgVersion(15);

    /// True from major version `major` on.
    pub fn at_least(self, major: u32) -> bool {
        self.0 >= major
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {}", self.0)
    }
}

/// The table-level lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum LockMode {
    /// `SELECT`.
    #[serde(rename = "ACCESS SHARE")]
    AccessShare,
    /// `SELECT ... FOR UPDATE`, the referenced table of `VALIDATE` (foreign key).
    #[serde(rename = "ROW SHARE")]
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`.
    #[serde(rename = "ROW EXCLUSIVE")]
    RowExclusive,
    /// `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`, `VACUUM`, `ANALYZE`.
    #[serde(rename = "SHARE UPDATE EXCLUSIVE")]
    ShareUpdateExclusive,
    /// `CREATE INDEX`.
    #[serde(rename = "SHARE")]
    Share,
    /// `ADD FOREIGN KEY`, `CREATE TRIGGER`.
    #[serde(rename = "SHARE ROW EXCLUSIVE")]
    ShareRowExclusive,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`.
    #[serde(rename = "EXCLUSIVE")]
    Exclusive,
    /// Most `ALTER TABLE` forms, `DROP`, `TRUNCATE`, `VACUUM FULL`.
    #[serde(rename = "ACCESS EXCLUSIVE")]
    AccessExclusive,
}

/// Which pairs of modes conflict, in [`LockMode`] order (PostgreSQL's table 13.2).
const CONFLICTS: [[bool; 8]; 8] = {
    const F: bool = false;
    const T: bool = true;
    [
        [F, F, F, F, F, F, F, T],
        [F, F, F, F, F, F, T, T],
        [F, F, F, F, T, T, T, T],
        [F, F, F, T, T, T, T, T],
        [F, F, T, T, F, T, T, T],
        [F, F, T, T, T, T, T, T],
        [F, T, T, T, T, T, T, T],
        [T, T, T, T, T, T, T, T],
    ]
};

impl LockMode {
    /// Every mode, weakest first.
    pub const ALL: [LockMode; 8] = [
        LockMode::AccessShare,
        LockMode::RowShare,
        LockMode::RowExclusive,
        LockMode::ShareUpdateExclusive,
        LockMode::Share,
        LockMode::ShareRowExclusive,
        LockMode::Exclusive,
        LockMode::AccessExclusive,
    ];

    /// The SQL spelling: `ACCESS EXCLUSIVE`.
    pub fn sql_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// The `pg_locks.mode` spelling: `AccessExclusiveLock`.
    pub fn pg_locks_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// Parses `pg_locks.mode` (`AccessExclusiveLock`) or the SQL spelling.
    pub fn from_name(name: &str) -> Option<LockMode> {
        LockMode::ALL.into_iter().find(|m| {
            m.pg_locks_name().eq_ignore_ascii_case(name) || m.sql_name().eq_ignore_ascii_case(name)
        })
    }

    /// Whether a session holding `self` makes a request for `other` wait (symmetric).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        CONFLICTS[self as usize][other as usize]
    }

    /// Whether a transaction holding `self` gets `requested` without waiting: every mode
    /// that conflicts with `requested` conflicts with `self` too, so no other session can
    /// hold one (and a waiter that wants one queues behind this transaction). ACCESS
    /// EXCLUSIVE covers everything; SHARE does not cover ROW EXCLUSIVE (another session's
    /// SHARE, an index build, blocks it).
    pub fn covers(self, requested: LockMode) -> bool {
        requested.covered_by([self])
    }

    /// Whether a transaction holding all of `held` (on one relation) gets `self` without
    /// waiting: each mode that conflicts with `self` conflicts with one of them.
    pub fn covered_by(self, held: impl IntoIterator<Item = LockMode> + Clone) -> bool {
        LockMode::ALL.into_iter().all(|m| {
            !self.conflicts_with(m) || held.clone().into_iter().any(|h| h.conflicts_with(m))
        })
    }

    /// What holding (or queueing for) this lock blocks: reads are `SELECT`s (ACCESS
    /// SHARE), writes are `INSERT`/`UPDATE`/`DELETE` (ROW EXCLUSIVE).
    pub fn blocks(self) -> Blocks {
        Blocks {
            reads: self.conflicts_with(LockMode::AccessShare),
            writes: self.conflicts_with(LockMode::RowExclusive),
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// What the application cannot do on a table while a lock is held or queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Blocks {
    /// `SELECT`s wait.
    pub reads: bool,
    /// `INSERT`/`UPDATE`/`DELETE` wait.
    pub writes: bool,
}

impl Blocks {
    /// Either.
    pub fn any(self) -> bool {
        self.reads || self.writes
    }

    /// Union.
    pub fn or(self, other: Blocks) -> Blocks {
        Blocks {
            reads: self.reads || other.reads,
            writes: self.writes || other.writes,
        }
    }
}

impl fmt::Display for Blocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.reads, self.writes) {
            (true, true) => "reads and writes",
            (true, false) => "reads",
            (false, true) => "writes",
            (false, false) => "no reads or writes",
        })
    }
}

/// A relation name as written (`schema.name` or `name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RelName {
    /// Schema when qualified.
    pub schema: Option<String>,
    /// The relation.
    pub name: String,
}

impl RelName {
    /// From a parse-tree `RangeVar`.
    pub fn from_range_var(r: &RangeVar) -> RelName {
        RelName {
            schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
            name: r.relname.clone(),
        }
    }

    /// From a qualified-name list (`DROP TABLE a.b`): the last two strings.
    pub fn from_names(names: &[pg_query::Node]) -> Option<RelName> {
        let parts: Vec<&str> = names
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            })
            .collect();
        match parts.as_slice() {
            [] => None,
            [.., name] => Some(RelName {
                schema: (parts.len() > 1).then(|| parts[parts.len() - 2].to_string()),
                name: name.to_string(),
            }),
        }
    }

    /// Whether two names may be the same relation (an unqualified name matches any
    /// schema: lint does not know the search_path).
    pub fn same_as(&self, other: &RelName) -> bool {
        self.name == other.name
            && match (&self.schema, &other.schema) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for RelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The relation a lock is taken on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Target {
    /// A table (or view, materialized view, sequence) named in the statement.
    Table(RelName),
    /// An index named in the statement.
    Index(RelName),
    /// The table an index belongs to (the statement names only the index).
    TableOfIndex(RelName),
    /// Every index of a table (`REINDEX TABLE`).
    IndexesOf(RelName),
    /// Every table of the database (`VACUUM` with no table, `REINDEX DATABASE`).
    Database,
}

impl Target {
    /// Whether two targets may be the same relation (names compared with
    /// [`RelName::same_as`]: `post` and `public.post` may be).
    pub fn same_as(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Table(a), Target::Table(b))
            | (Target::Index(a), Target::Index(b))
            | (Target::TableOfIndex(a), Target::TableOfIndex(b))
            | (Target::IndexesOf(a), Target::IndexesOf(b)) => a.same_as(b),
            (Target::Database, Target::Database) => true,
            _ => false,
        }
    }

    /// The table this lock lands on, when the statement names it.
    pub fn table(&self) -> Option<&RelName> {
        match self {
            Target::Table(t) | Target::IndexesOf(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Table(t) => write!(f, "{t}"),
            Target::Index(i) => write!(f, "index {i}"),
            Target::TableOfIndex(i) => write!(f, "the table of index {i}"),
            Target::IndexesOf(t) => write!(f, "the indexes of {t}"),
            Target::Database => f.write_str("every table"),
        }
    }
}

/// When a cost (rewrite, scan) is avoided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// The new type is binary-coercible from the old one (varchar(n) to a wider
    /// varchar or text, numeric precision raised at the same scale, ...).
    BinaryCoercible,
    /// The column is already NOT NULL, or (PostgreSQL 12+) a validated
    /// `CHECK (col IS NOT NULL)` proves it.
    ProvenNotNull,
    /// The default's functions are not volatile (a user function pgcalm cannot see).
    NonVolatileDefault,
    /// A validated CHECK on the partition already implies its partition bound.
    PartitionConstraintImplied,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Condition::BinaryCoercible => "the new type is binary-coercible from the old",
            Condition::ProvenNotNull => {
                "the column is already NOT NULL or (PG12+) a validated CHECK (col IS NOT NULL) proves it"
            }
            Condition::NonVolatileDefault => "the default is not volatile",
            Condition::PartitionConstraintImplied => "a validated CHECK implies the partition bound",
        })
    }
}

/// Whether a statement pays a cost (rewriting the table, scanning it) under its lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Never.
    #[default]
    No,
    /// Unless the condition holds (which the parse tree alone cannot tell).
    Unless(Condition),
    /// Always.
    Yes,
}

impl Effect {
    fn max(self, other: Effect) -> Effect {
        match (self, other) {
            (Effect::Yes, _) | (_, Effect::Yes) => Effect::Yes,
            (Effect::Unless(c), _) | (_, Effect::Unless(c)) => Effect::Unless(c),
            _ => Effect::No,
        }
    }

    /// Yes, or possibly.
    pub fn possible(self) -> bool {
        self != Effect::No
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::No => f.write_str("no"),
            Effect::Yes => f.write_str("yes"),
            Effect::Unless(c) => write!(f, "yes, unless {c}"),
        }
    }
}

/// The lock one statement takes on one relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelationLock {
    /// The relation.
    pub target: Target,
    /// The strongest mode taken on it (the strictest subcommand's, for a multi-command
    /// `ALTER TABLE`).
    pub mode: LockMode,
    /// Rewrites the whole table (new relfilenode) while holding the lock.
    pub rewrite: Effect,
    /// Reads the whole table (validation, index build) while holding the lock.
    pub scan: Effect,
}

impl RelationLock {
    /// What the lock blocks.
    pub fn blocks(&self) -> Blocks {
        self.mode.blocks()
    }
}

/// Everything the lock table says about one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatementLocks {
    /// Short name: `CREATE INDEX CONCURRENTLY`, `ALTER TABLE`, ...
    pub label: String,
    /// One entry per relation, strongest mode first.
    pub locks: Vec<RelationLock>,
    /// PostgreSQL refuses it inside a transaction block.
    pub outside_transaction: bool,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT ...
    pub transaction_control: bool,
    /// Its locks cannot be known from the text (`DO`, `CALL`): review it.
    pub opaque: bool,
}

impl StatementLocks {
    /// The strongest mode over all relations.
    pub fn strongest(&self) -> Option<LockMode> {
        self.locks.iter().map(|l| l.mode).max()
    }

    /// What the statement blocks, over all relations.
    pub fn blocks(&self) -> Blocks {
        self.locks
            .iter()
            .fold(Blocks::default(), |b, l| b.or(l.blocks()))
    }

    /// Its strongest lock is SHARE UPDATE EXCLUSIVE: even while queued it blocks no
    /// reads or writes, so it may run (and wait) as long as it needs.
    pub fn share_update_exclusive_only(&self) -> bool {
        self.strongest() == Some(LockMode::ShareUpdateExclusive)
    }

    /// The lock on a table, if the statement names it.
    pub fn on_table(&self, table: &RelName) -> Option<&RelationLock> {
        self.locks
            .iter()
            .find(|l| l.target.table().is_some_and(|t| t.same_as(table)))
    }

    fn add(&mut self, target: Target, mode: LockMode, rewrite: Effect, scan: Effect) {
        if let Some(l) = self.locks.iter_mut().find(|l| l.target == target) {
            l.mode = l.mode.max(mode);
            l.rewrite = l.rewrite.max(rewrite);
            l.scan = l.scan.max(scan);
        } else {
            self.locks.push(RelationLock {
                target,
                mode,
                rewrite,
                scan,
            });
        }
    }

    fn table(&mut self, r: Option<&RangeVar>, mode: LockMode) {
        if let Some(r) = r {
            self.add(
                Target::Table(RelName::from_range_var(r)),
                mode,
                Effect::No,
                Effect::No,
            );
        }
    }
}

/// The lock table's answer for one statement's text (its first statement; nothing for
/// text that does not parse).
pub fn sql_statement_locks(sql: &str, pg: PgVersion) -> StatementLocks {
    crate::split::parse_first(sql)
        .map(|n| statement_locks(&n, pg))
        .unwrap_or_default()
}

/// The lock table: what `node` locks on PostgreSQL `pg`.
pub fn statement_locks(node: &NodeEnum, pg: PgVersion) -> StatementLocks {
    use LockMode::*;
    let mut s = StatementLocks {
        label: statement_label(node),
        ..StatementLocks::default()
    };
    match node {
        NodeEnum::IndexStmt(i) => {
            let mode = if i.concurrent {
                ShareUpdateExclusive
            } else {
                Share
            };
            if let Some(r) = &i.relation {
                s.add(
                    Target::Table(RelName::from_range_var(r)),
                    mode,
                    Effect::No,
                    Effect::Yes,
                );
            }
            s.outside_transaction = i.concurrent;
        }
        NodeEnum::DropStmt(d) => drop_locks(&mut s, d),
        NodeEnum::AlterTableStmt(a) => alter_table_locks(&mut s, a, pg),
        NodeEnum::RenameStmt(r) => {
            let renamed = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
            let mode = match renamed {
                // ALTER INDEX ... RENAME takes SHARE UPDATE EXCLUSIVE since PostgreSQL 12.
                ObjectType::ObjectIndex if pg.at_least(12) => ShareUpdateExclusive,
                _ => AccessExclusive,
            };
            if let Some(r) = &r.relation {
                let name = RelName::from_range_var(r);
                let target = if renamed == ObjectType::ObjectIndex {
                    Target::Index(name)
                } else {
                    Target::Table(name)
                };
                s.add(target, mode, Effect::No, Effect::No);
            }
        }
        NodeEnum::ReindexStmt(r) => {
            let concurrent = has_option(&r.params, "concurrently");
            let kind = ReindexObjectType::try_from(r.kind).unwrap_or(ReindexObjectType::Undefined);
            let name = r.relation.as_ref().map(RelName::from_range_var);
            let build = Effect::Yes;
            match (kind, name) {
                (ReindexObjectType::ReindexObjectIndex, Some(i)) if concurrent => {
                    s.add(
                        Target::TableOfIndex(i),
                        ShareUpdateExclusive,
                        Effect::No,
                        build,
                    );
                }
                (ReindexObjectType::ReindexObjectIndex, Some(i)) => {
                    s.add(Target::TableOfIndex(i.clone()), Share, Effect::No, build);
                    s.add(Target::Index(i), AccessExclusive, Effect::Yes, Effect::No);
                }
                (ReindexObjectType::ReindexObjectTable, Some(t)) if concurrent => {
                    s.add(Target::Table(t), ShareUpdateExclusive, Effect::No, build);
                }
                (ReindexObjectType::ReindexObjectTable, Some(t)) => {
                    s.add(Target::Table(t.clone()), Share, Effect::No, build);
                    s.add(
                        Target::IndexesOf(t),
                        AccessExclusive,
                        Effect::Yes,
                        Effect::No,
                    );
                }
                _ => {
                    let mode = if concurrent {
                        ShareUpdateExclusive
                    } else {
                        Share
                    };
                    s.add(Target::Database, mode, Effect::No, build);
                }
            }
            s.outside_transaction = concurrent
                || matches!(
                    kind,
                    ReindexObjectType::ReindexObjectSchema
                        | ReindexObjectType::ReindexObjectSystem
                        | ReindexObjectType::ReindexObjectDatabase
                );
        }
        NodeEnum::VacuumStmt(v) => {
            let full = v.is_vacuumcmd && has_option(&v.options, "full");
            let (mode, rewrite) = if full {
                (AccessExclusive, Effect::Yes)
            } else {
                (ShareUpdateExclusive, Effect::No)
            };
            let mut any = false;
            for rel in &v.rels {
                if let Some(NodeEnum::VacuumRelation(vr)) = &rel.node
                    && let Some(r) = &vr.relation
                {
                    any = true;
                    s.add(
                        Target::Table(RelName::from_range_var(r)),
                        mode,
                        rewrite,
                        Effect::Yes,
                    );
                }
            }
            if !any {
                s.add(Target::Database, mode, rewrite, Effect::Yes);
            }
            s.outside_transaction = v.is_vacuumcmd;
        }
        NodeEnum::ClusterStmt(c) => match &c.relation {
            Some(r) => s.add(
                Target::Table(RelName::from_range_var(r)),
                AccessExclusive,
                Effect::Yes,
                Effect::Yes,
            ),
            None => {
                s.add(Target::Database, AccessExclusive, Effect::Yes, Effect::Yes);
                s.outside_transaction = true;
            }
        },
        NodeEnum::TruncateStmt(t) => {
            for r in range_vars(&t.relations) {
                // New, empty files: the relfilenode changes as in a rewrite.
                s.add(
                    Target::Table(RelName::from_range_var(r)),
                    AccessExclusive,
                    Effect::Yes,
                    Effect::No,
                );
            }
        }
        NodeEnum::LockStmt(l) => {
            let mode = lock_stmt_mode(l.mode);
            for r in range_vars(&l.relations) {
                s.table(Some(r), mode);
            }
        }
        NodeEnum::CreateStmt(c) => {
            // Foreign keys lock the referenced table (not the table being created, which
            // a self-reference names); PARTITION OF locks the parent.
            let created = c.relation.as_ref().map(RelName::from_range_var);
            let mut referenced = |con: &pg_query::protobuf::Constraint| {
                let other = con.pktable.as_ref().filter(|r| {
                    created
                        .as_ref()
                        .is_none_or(|t| !t.same_as(&RelName::from_range_var(r)))
                });
                s.table(other, ShareRowExclusive);
            };
            for elt in &c.table_elts {
                match &elt.node {
                    Some(NodeEnum::ColumnDef(col)) => {
                        for con in constraints(&col.constraints) {
                            if con.contype == ConstrType::ConstrForeign as i32 {
                                referenced(con);
                            }
                        }
                    }
                    Some(NodeEnum::Constraint(con))
                        if con.contype == ConstrType::ConstrForeign as i32 =>
                    {
                        referenced(con);
                    }
                    _ => {}
                }
            }
            if c.partbound.is_some() {
                for parent in range_vars(&c.inh_relations) {
                    s.table(Some(parent), AccessExclusive);
                }
            }
        }
        NodeEnum::CreateTrigStmt(t) => s.table(t.relation.as_ref(), ShareRowExclusive),
        NodeEnum::RuleStmt(r) => s.table(r.relation.as_ref(), AccessExclusive),
        NodeEnum::CreatePolicyStmt(p) => s.table(p.table.as_ref(), AccessExclusive),
        NodeEnum::AlterPolicyStmt(p) => s.table(p.table.as_ref(), AccessExclusive),
        NodeEnum::CreateStatsStmt(st) => {
            for r in range_vars(&st.relations) {
                s.table(Some(r), ShareUpdateExclusive);
            }
        }
        NodeEnum::CommentStmt(c) => {
            let objtype = ObjectType::try_from(c.objtype).unwrap_or(ObjectType::Undefined);
            if let Some(NodeEnum::List(l)) = c.object.as_deref().and_then(|o| o.node.as_ref()) {
                let table = match objtype {
                    ObjectType::ObjectTable | ObjectType::ObjectView => {
                        RelName::from_names(&l.items)
                    }
                    ObjectType::ObjectColumn => {
                        RelName::from_names(&l.items[..l.items.len().saturating_sub(1)])
                    }
                    _ => None,
                };
                if let Some(t) = table {
                    s.add(
                        Target::Table(t),
                        ShareUpdateExclusive,
                        Effect::No,
                        Effect::No,
                    );
                }
            }
        }
        NodeEnum::AlterObjectSchemaStmt(a) => s.table(a.relation.as_ref(), AccessExclusive),
        NodeEnum::RefreshMatViewStmt(r) => {
            let (mode, rewrite) = if r.concurrent {
                (Exclusive, Effect::No)
            } else {
                (AccessExclusive, Effect::Yes)
            };
            if let Some(rel) = &r.relation {
                s.add(
                    Target::Table(RelName::from_range_var(rel)),
                    mode,
                    rewrite,
                    Effect::Yes,
                );
            }
        }
        NodeEnum::InsertStmt(i) => s.table(i.relation.as_ref(), RowExclusive),
        NodeEnum::UpdateStmt(u) => s.table(u.relation.as_ref(), RowExclusive),
        NodeEnum::DeleteStmt(d) => s.table(d.relation.as_ref(), RowExclusive),
        NodeEnum::MergeStmt(m) => s.table(m.relation.as_ref(), RowExclusive),
        NodeEnum::AlterEnumStmt(e) => {
            // ADD VALUE may run in a transaction block only from PostgreSQL 12.
            s.outside_transaction = e.old_val.is_empty() && !pg.at_least(12);
        }
        NodeEnum::DoStmt(_) | NodeEnum::CallStmt(_) => s.opaque = true,
        NodeEnum::TransactionStmt(_) => s.transaction_control = true,
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::AlterSystemStmt(_) => s.outside_transaction = true,
        _ => {}
    }
    s.locks.sort_by_key(|l| std::cmp::Reverse(l.mode));
    s
}

fn drop_locks(s: &mut StatementLocks, d: &pg_query::protobuf::DropStmt) {
    let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    let names = d.objects.iter().filter_map(|o| match &o.node {
        Some(NodeEnum::List(l)) => RelName::from_names(&l.items),
        _ => None,
    });
    match kind {
        ObjectType::ObjectIndex => {
            let mode = if d.concurrent {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::AccessExclusive
            };
            for i in names {
                s.add(Target::TableOfIndex(i), mode, Effect::No, Effect::No);
            }
            s.outside_transaction = d.concurrent;
        }
        ObjectType::ObjectTable
        | ObjectType::ObjectView
        | ObjectType::ObjectMatview
        | ObjectType::ObjectSequence
        | ObjectType::ObjectForeignTable => {
            for t in names {
                s.add(
                    Target::Table(t),
                    LockMode::AccessExclusive,
                    Effect::No,
                    Effect::No,
                );
            }
        }
        _ => {}
    }
}

/// One `ALTER TABLE` subcommand's lock on the altered table.
struct SubcommandLock {
    mode: LockMode,
    rewrite: Effect,
    scan: Effect,
}

fn alter_table_locks(
    s: &mut StatementLocks,
    a: &pg_query::protobuf::AlterTableStmt,
    pg: PgVersion,
) {
    let Some(rel) = &a.relation else { return };
    let name = RelName::from_range_var(rel);
    let target = if ObjectType::try_from(a.objtype) == Ok(ObjectType::ObjectIndex) {
        Target::Index(name)
    } else {
        Target::Table(name)
    };
    let mut only_concurrent_detach = !a.cmds.is_empty();
    for cmd in &a.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            continue;
        };
        let subtype = AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
        let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
        // Other relations a subcommand locks (the referenced table of a foreign key)
        // are listed after the altered table.
        let mut others = StatementLocks::default();
        let sub = subcommand_lock(&mut others, subtype, def, pg);
        if subtype == AlterTableType::AtDetachPartition
            && matches!(def, Some(NodeEnum::PartitionCmd(p)) if p.concurrent)
        {
            s.outside_transaction = true;
        } else {
            only_concurrent_detach = false;
        }
        s.add(target.clone(), sub.mode, sub.rewrite, sub.scan);
        for l in others.locks {
            s.add(l.target, l.mode, l.rewrite, l.scan);
        }
    }
    if only_concurrent_detach {
        s.label = "ALTER TABLE ... DETACH PARTITION CONCURRENTLY".into();
    }
}

fn subcommand_lock(
    s: &mut StatementLocks,
    subtype: AlterTableType,
    def: Option<&NodeEnum>,
    pg: PgVersion,
) -> SubcommandLock {
    use AlterTableType as At;
    use LockMode::*;
    let lock = |mode| SubcommandLock {
        mode,
        rewrite: Effect::No,
        scan: Effect::No,
    };
    match subtype {
        At::AtAddColumn => match def {
            Some(NodeEnum::ColumnDef(col)) => add_column_lock(s, col, pg),
            _ => lock(AccessExclusive),
        },
        At::AtSetNotNull => SubcommandLock {
            scan: if pg.at_least(12) {
                Effect::Unless(Condition::ProvenNotNull)
            } else {
                Effect::Yes
            },
            ..lock(AccessExclusive)
        },
        At::AtAlterColumnType => SubcommandLock {
            rewrite: Effect::Unless(Condition::BinaryCoercible),
            ..lock(AccessExclusive)
        },
        At::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => add_constraint_lock(s, c, pg),
            _ => lock(AccessExclusive),
        },
        At::AtValidateConstraint => SubcommandLock {
            scan: Effect::Yes,
            ..lock(ShareUpdateExclusive)
        },
        At::AtSetStatistics
        | At::AtSetOptions
        | At::AtResetOptions
        | At::AtClusterOn
        | At::AtDropCluster
        | At::AtSetRelOptions
        | At::AtResetRelOptions
        | At::AtDetachPartitionFinalize => lock(ShareUpdateExclusive),
        At::AtEnableTrig
        | At::AtEnableAlwaysTrig
        | At::AtEnableReplicaTrig
        | At::AtDisableTrig
        | At::AtEnableTrigAll
        | At::AtDisableTrigAll
        | At::AtEnableTrigUser
        | At::AtDisableTrigUser => lock(ShareRowExclusive),
        At::AtSetLogged
        | At::AtSetUnLogged
        | At::AtSetTableSpace
        | At::AtSetAccessMethod
        | At::AtSetExpression => SubcommandLock {
            rewrite: Effect::Yes,
            ..lock(AccessExclusive)
        },
        At::AtAttachPartition => {
            // The parent: SHARE UPDATE EXCLUSIVE since PostgreSQL 12. The partition
            // being attached is scanned under ACCESS EXCLUSIVE.
            if let Some(NodeEnum::PartitionCmd(p)) = def
                && let Some(part) = &p.name
            {
                s.add(
                    Target::Table(RelName::from_range_var(part)),
                    AccessExclusive,
                    Effect::No,
                    Effect::Unless(Condition::PartitionConstraintImplied),
                );
            }
            lock(if pg.at_least(12) {
                ShareUpdateExclusive
            } else {
                AccessExclusive
            })
        }
        At::AtDetachPartition => {
            let concurrent = matches!(def, Some(NodeEnum::PartitionCmd(p)) if p.concurrent);
            let mode = if concurrent {
                ShareUpdateExclusive
            } else {
                AccessExclusive
            };
            if let Some(NodeEnum::PartitionCmd(p)) = def
                && let Some(part) = &p.name
            {
                s.table(Some(part), mode);
            }
            lock(mode)
        }
        // DROP/SET DEFAULT, DROP NOT NULL, DROP COLUMN, DROP CONSTRAINT, identity,
        // storage, owner, replica identity, rules, row security, inheritance...
        _ => lock(AccessExclusive),
    }
}

fn add_column_lock(
    s: &mut StatementLocks,
    col: &pg_query::protobuf::ColumnDef,
    pg: PgVersion,
) -> SubcommandLock {
    let mut rewrite = Effect::No;
    let mut scan = Effect::No;
    let serial = col.type_name.as_ref().is_some_and(is_serial_type);
    if serial {
        rewrite = Effect::Yes;
    }
    for c in constraints(&col.constraints) {
        match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
            ConstrType::ConstrDefault => {
                if let Some(expr) = c.raw_expr.as_deref() {
                    rewrite = rewrite.max(default_rewrite(expr, pg));
                }
            }
            ConstrType::ConstrIdentity => rewrite = Effect::Yes,
            // Stored generated columns are computed for every row; virtual ones (PG18)
            // are not stored.
            ConstrType::ConstrGenerated if c.generated_kind != "v" => rewrite = Effect::Yes,
            ConstrType::ConstrCheck
            | ConstrType::ConstrPrimary
            | ConstrType::ConstrUnique
            | ConstrType::ConstrExclusion => scan = Effect::Yes,
            // A new column's foreign key is validated only when the column has a
            // default (PostgreSQL skips it when every row starts out NULL).
            ConstrType::ConstrForeign => {
                s.table(c.pktable.as_ref(), LockMode::ShareRowExclusive);
                if has_default(col) {
                    scan = Effect::Yes;
                }
            }
            _ => {}
        }
    }
    SubcommandLock {
        mode: LockMode::AccessExclusive,
        rewrite,
        scan,
    }
}

fn add_constraint_lock(
    s: &mut StatementLocks,
    c: &pg_query::protobuf::Constraint,
    pg: PgVersion,
) -> SubcommandLock {
    let _ = pg;
    let validated = if c.skip_validation {
        Effect::No
    } else {
        Effect::Yes
    };
    match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
        ConstrType::ConstrForeign => {
            s.table(c.pktable.as_ref(), LockMode::ShareRowExclusive);
            SubcommandLock {
                mode: LockMode::ShareRowExclusive,
                rewrite: Effect::No,
                scan: validated,
            }
        }
        ConstrType::ConstrPrimary if !c.indexname.is_empty() => SubcommandLock {
            // USING INDEX: no build, but the key columns become NOT NULL.
            mode: LockMode::AccessExclusive,
            rewrite: Effect::No,
            scan: Effect::Unless(Condition::ProvenNotNull),
        },
        ConstrType::ConstrUnique if !c.indexname.is_empty() => SubcommandLock {
            mode: LockMode::AccessExclusive,
            rewrite: Effect::No,
            scan: Effect::No,
        },
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique | ConstrType::ConstrExclusion => {
            SubcommandLock {
                mode: LockMode::AccessExclusive,
                rewrite: Effect::No,
                scan: Effect::Yes,
            }
        }
        _ => SubcommandLock {
            mode: LockMode::AccessExclusive,
            rewrite: Effect::No,
            scan: validated,
        },
    }
}

/// Whether adding a column with this default rewrites the table: from PostgreSQL 11 a
/// non-volatile default is stored once in the catalog; a volatile one (or any default
/// before 11) is written into every row.
fn default_rewrite(expr: &pg_query::Node, pg: PgVersion) -> Effect {
    if is_null_const(expr) {
        return Effect::No;
    }
    if !pg.at_least(11) {
        return Effect::Yes;
    }
    match volatility(expr) {
        Volatility::Volatile => Effect::Yes,
        Volatility::Unknown => Effect::Unless(Condition::NonVolatileDefault),
        Volatility::Stable => Effect::No,
    }
}

/// How an expression's value varies, as far as the parse tree tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Volatility {
    /// Constants, immutable and stable built-ins (`now()`, `CURRENT_TIMESTAMP`).
    Stable,
    /// A function pgcalm does not know (a user function, an extension's).
    Unknown,
    /// Differs per row: `random()`, `gen_random_uuid()`, `nextval()`, `clock_timestamp()`.
    Volatile,
}

/// Built-in volatile functions seen in defaults.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setval",
    "txid_current",
    "pg_current_xact_id",
    "gen_random_bytes",
    "random_string",
];

/// Built-in non-volatile functions common in defaults.
const STABLE_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "lower",
    "upper",
    "coalesce",
    "concat",
    "make_date",
    "make_timestamp",
    "make_timestamptz",
    "to_timestamp",
    "to_date",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "array_fill",
    "length",
    "md5",
    "abs",
    "round",
    "current_setting",
    "current_user",
    "session_user",
    "timezone",
    "date_trunc",
    "interval",
];

/// The volatility of an expression: the worst of its parts.
pub fn volatility(expr: &pg_query::Node) -> Volatility {
    let Some(node) = expr.node.as_ref() else {
        return Volatility::Stable;
    };
    let all = |nodes: &[pg_query::Node]| {
        nodes
            .iter()
            .map(volatility)
            .max()
            .unwrap_or(Volatility::Stable)
    };
    let boxed = |n: &Option<Box<pg_query::Node>>| {
        n.as_deref().map(volatility).unwrap_or(Volatility::Stable)
    };
    match node {
        NodeEnum::AConst(_) | NodeEnum::SqlvalueFunction(_) => Volatility::Stable,
        NodeEnum::TypeCast(t) => boxed(&t.arg),
        NodeEnum::AExpr(e) => boxed(&e.lexpr).max(boxed(&e.rexpr)),
        NodeEnum::BoolExpr(b) => all(&b.args),
        NodeEnum::CoalesceExpr(c) => all(&c.args),
        NodeEnum::MinMaxExpr(m) => all(&m.args),
        NodeEnum::AArrayExpr(a) => all(&a.elements),
        NodeEnum::RowExpr(r) => all(&r.args),
        NodeEnum::NullTest(n) => boxed(&n.arg),
        NodeEnum::CaseExpr(c) => {
            let whens = c
                .args
                .iter()
                .filter_map(|w| match &w.node {
                    Some(NodeEnum::CaseWhen(w)) => Some(boxed(&w.expr).max(boxed(&w.result))),
                    _ => None,
                })
                .max()
                .unwrap_or(Volatility::Stable);
            whens.max(boxed(&c.arg)).max(boxed(&c.defresult))
        }
        NodeEnum::FuncCall(f) => {
            let name = f
                .funcname
                .last()
                .and_then(|n| match &n.node {
                    Some(NodeEnum::String(s)) => Some(s.sval.to_ascii_lowercase()),
                    _ => None,
                })
                .unwrap_or_default();
            let own = if VOLATILE_FUNCTIONS.contains(&name.as_str()) {
                Volatility::Volatile
            } else if STABLE_FUNCTIONS.contains(&name.as_str()) {
                Volatility::Stable
            } else {
                Volatility::Unknown
            };
            own.max(all(&f.args))
        }
        _ => Volatility::Unknown,
    }
}

fn is_null_const(expr: &pg_query::Node) -> bool {
    match expr.node.as_ref() {
        Some(NodeEnum::AConst(c)) => c.isnull,
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(is_null_const),
        _ => false,
    }
}

/// `serial`, `bigserial`, `smallserial` (and `serial4`/`serial8`/`serial2`): an
/// implicit sequence default, filled into every existing row.
pub fn is_serial_type(t: &pg_query::protobuf::TypeName) -> bool {
    let name = t.names.last().and_then(|n| match &n.node {
        Some(NodeEnum::String(s)) => Some(s.sval.to_ascii_lowercase()),
        _ => None,
    });
    matches!(
        name.as_deref(),
        Some("serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8")
    )
}

/// A column definition with a `DEFAULT` (even `DEFAULT NULL`: PostgreSQL then validates
/// a new column's foreign key).
pub fn has_default(col: &pg_query::protobuf::ColumnDef) -> bool {
    col.raw_default.is_some()
        || constraints(&col.constraints).any(|c| c.contype == ConstrType::ConstrDefault as i32)
}

fn constraints(nodes: &[pg_query::Node]) -> impl Iterator<Item = &pg_query::protobuf::Constraint> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

fn range_vars(nodes: &[pg_query::Node]) -> impl Iterator<Item = &RangeVar> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::RangeVar(r)) => Some(r),
        _ => None,
    })
}

fn lock_stmt_mode(mode: i32) -> LockMode {
    // The parse tree carries PostgreSQL's LOCKMODE number (1 = AccessShareLock ... 8).
    match mode {
        1 => LockMode::AccessShare,
        2 => LockMode::RowShare,
        3 => LockMode::RowExclusive,
        4 => LockMode::ShareUpdateExclusive,
        5 => LockMode::Share,
        6 => LockMode::ShareRowExclusive,
        7 => LockMode::Exclusive,
        _ => LockMode::AccessExclusive,
    }
}

/// Whether a `(option, ...)` list holds `name` (`REINDEX (CONCURRENTLY)`, `VACUUM (FULL)`),
/// not switched off with `false`.
pub fn has_option(options: &[pg_query::Node], name: &str) -> bool {
    options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name) => {
            !matches!(
                d.arg.as_deref().and_then(|a| a.node.as_ref()),
                Some(NodeEnum::Boolean(b)) if !b.boolval
            ) && !matches!(
                d.arg.as_deref().and_then(|a| a.node.as_ref()),
                Some(NodeEnum::String(s)) if s.sval.eq_ignore_ascii_case("false") || s.sval.eq_ignore_ascii_case("off")
            )
        }
        _ => false,
    })
}

/// `CreateStmt` -> `CREATE TABLE` etc. for the common statements; a readable fallback
/// for the rest.
pub fn statement_label(node: &NodeEnum) -> String {
    let s = match node {
        NodeEnum::CreateStmt(_) => "CREATE TABLE",
        NodeEnum::IndexStmt(i) => match (i.unique, i.concurrent) {
            (true, true) => "CREATE UNIQUE INDEX CONCURRENTLY",
            (false, true) => "CREATE INDEX CONCURRENTLY",
            _ => "CREATE INDEX",
        },
        NodeEnum::AlterTableStmt(a) => {
            let validate_only = !a.cmds.is_empty()
                && a.cmds.iter().all(|c| {
                    matches!(&c.node, Some(NodeEnum::AlterTableCmd(cmd))
                        if cmd.subtype == AlterTableType::AtValidateConstraint as i32)
                });
            if validate_only {
                "ALTER TABLE ... VALIDATE CONSTRAINT"
            } else {
                "ALTER TABLE"
            }
        }
        NodeEnum::DropStmt(d) if d.concurrent => {
            if d.remove_type == ObjectType::ObjectIndex as i32 {
                "DROP INDEX CONCURRENTLY"
            } else {
                "DROP ... CONCURRENTLY"
            }
        }
        NodeEnum::DropStmt(d) => match ObjectType::try_from(d.remove_type) {
            Ok(ObjectType::ObjectTable) => "DROP TABLE",
            Ok(ObjectType::ObjectIndex) => "DROP INDEX",
            Ok(ObjectType::ObjectView) => "DROP VIEW",
            Ok(ObjectType::ObjectMatview) => "DROP MATERIALIZED VIEW",
            Ok(ObjectType::ObjectSequence) => "DROP SEQUENCE",
            _ => "DROP",
        },
        NodeEnum::InsertStmt(_) => "INSERT",
        NodeEnum::UpdateStmt(_) => "UPDATE",
        NodeEnum::DeleteStmt(_) => "DELETE",
        NodeEnum::SelectStmt(_) => "SELECT",
        NodeEnum::ReindexStmt(r) if has_option(&r.params, "concurrently") => "REINDEX CONCURRENTLY",
        NodeEnum::ReindexStmt(_) => "REINDEX",
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => "VACUUM",
        NodeEnum::VacuumStmt(_) => "ANALYZE",
        NodeEnum::RenameStmt(_) => "ALTER ... RENAME",
        NodeEnum::CreatedbStmt(_) => "CREATE DATABASE",
        NodeEnum::DropdbStmt(_) => "DROP DATABASE",
        NodeEnum::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        NodeEnum::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        NodeEnum::AlterSystemStmt(_) => "ALTER SYSTEM",
        NodeEnum::TransactionStmt(t) => {
            use TransactionStmtKind as K;
            match K::try_from(t.kind).unwrap_or(K::Undefined) {
                K::TransStmtBegin | K::TransStmtStart => "BEGIN",
                K::TransStmtCommit => "COMMIT",
                K::TransStmtRollback => "ROLLBACK",
                K::TransStmtSavepoint => "SAVEPOINT",
                K::TransStmtRelease => "RELEASE SAVEPOINT",
                K::TransStmtRollbackTo => "ROLLBACK TO SAVEPOINT",
                _ => "transaction control",
            }
        }
        NodeEnum::DoStmt(_) => "DO",
        NodeEnum::CreateFunctionStmt(_) => "CREATE FUNCTION",
        NodeEnum::VariableSetStmt(_) => "SET",
        NodeEnum::TruncateStmt(_) => "TRUNCATE",
        NodeEnum::ClusterStmt(_) => "CLUSTER",
        NodeEnum::LockStmt(_) => "LOCK",
        NodeEnum::CreateTrigStmt(_) => "CREATE TRIGGER",
        _ => "",
    };
    if s.is_empty() {
        // `CreateSeqStmt(..)` -> "CreateSeq" is good enough for a message. The Debug
        // output stops at its first `(`, so a big tree is not printed for nothing.
        struct VariantName(String);
        impl std::fmt::Write for VariantName {
            fn write_str(&mut self, part: &str) -> std::fmt::Result {
                match part.find('(') {
                    Some(at) => {
                        self.0.push_str(&part[..at]);
                        Err(std::fmt::Error)
                    }
                    None => {
                        self.0.push_str(part);
                        Ok(())
                    }
                }
            }
        }
        let mut name = VariantName(String::new());
        let _ = std::fmt::write(&mut name, format_args!("{node:?}"));
        name.0.trim_end_matches("Stmt").to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locks(sql: &str) -> Vec<String> {
        sql_statement_locks(sql, PgVersion::DEFAULT)
            .locks
            .iter()
            .map(|l| format!("{} {} scan {}", l.target, l.mode, l.scan))
            .collect()
    }

    #[test]
    fn a_held_lock_covers_a_request_when_it_conflicts_with_all_that_blocks_it() {
        use LockMode::*;
        for m in LockMode::ALL {
            assert!(AccessExclusive.covers(m), "{m}");
            assert!(m.covers(m), "{m}");
        }
        // Another session's SHARE (an index build) blocks ROW EXCLUSIVE and SHARE UPDATE
        // EXCLUSIVE, and a SHARE holder does not keep it out.
        assert!(!Share.covers(RowExclusive));
        assert!(!Share.covers(ShareUpdateExclusive));
        assert!(ShareRowExclusive.covers(Share));
        assert!(ShareRowExclusive.covers(RowExclusive));
        assert!(!ShareUpdateExclusive.covers(Share));
        assert!(Exclusive.covers(ShareRowExclusive));
        assert!(!Exclusive.covers(AccessExclusive));
        // Held together, SHARE and SHARE UPDATE EXCLUSIVE keep out every mode that blocks
        // ROW EXCLUSIVE.
        assert!(RowExclusive.covered_by([Share, ShareUpdateExclusive]));
    }

    #[test]
    fn a_self_referencing_foreign_key_locks_no_other_table() {
        assert_eq!(
            locks(
                "CREATE TABLE c (id int PRIMARY KEY, p int REFERENCES c (id), u int REFERENCES users (id))"
            ),
            ["users SHARE ROW EXCLUSIVE scan no"]
        );
    }

    #[test]
    fn a_new_columns_foreign_key_is_validated_only_with_a_default() {
        assert_eq!(
            locks("ALTER TABLE t ADD COLUMN p int REFERENCES p (id)"),
            [
                "t ACCESS EXCLUSIVE scan no",
                "p SHARE ROW EXCLUSIVE scan no"
            ]
        );
        assert_eq!(
            locks("ALTER TABLE t ADD COLUMN p int DEFAULT 1 REFERENCES p (id)"),
            [
                "t ACCESS EXCLUSIVE scan yes",
                "p SHARE ROW EXCLUSIVE scan no"
            ]
        );
    }
}
