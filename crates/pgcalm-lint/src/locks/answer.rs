//! What the lock table answers for one statement: per relation the mode and what the
//! statement costs under it (rewrite, scan), and for the statement whether it must run
//! outside a transaction.

use std::fmt;

use pg_query::protobuf::RangeVar;
use serde::Serialize;

use super::{Blocks, LockMode, LockTarget, RelName};

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
    /// The costlier of two: yes over unless over no.
    pub(super) fn max(self, other: Effect) -> Effect {
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
    pub target: LockTarget,
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
    /// `CASCADE`: it also drops or empties every object that depends on the ones it names
    /// (the tables whose foreign keys reference a truncated table, a dropped table's views
    /// and the foreign keys of other tables to it), taking ACCESS EXCLUSIVE on each table
    /// it reaches; which ones, only the catalog knows.
    pub cascades: bool,
    /// On a partitioned table, what it also takes on each partition (`CREATE INDEX`
    /// builds an index on every one under SHARE). The text cannot tell whether the table
    /// is partitioned; the unit or `--schema` may.
    pub each_partition: Option<IndirectLock>,
    /// What it takes on the parent's DEFAULT partition, if it has one: `ATTACH PARTITION`
    /// and `CREATE TABLE ... PARTITION OF` scan it under ACCESS EXCLUSIVE (no row of it
    /// may belong to the new partition), `DETACH PARTITION` locks it.
    pub default_partition: Option<IndirectLock>,
    /// PostgreSQL refuses it on a partitioned table (`CREATE INDEX CONCURRENTLY`, 0A000).
    pub refused_if_partitioned: bool,
    /// What it takes on every table with a column of the domain it alters (`ALTER DOMAIN
    /// ... ADD CONSTRAINT`, `SET NOT NULL`, `VALIDATE CONSTRAINT` read each such column
    /// under SHARE); only the catalog knows which tables those are.
    pub tables_using_domain: Option<IndirectLock>,
    /// What it reaches through foreign keys (a dropped key's referenced table, the tables
    /// referencing one it empties or drops with CASCADE); lint resolves them with the keys
    /// it knows ([`StatementLocks::lock_through_foreign_keys`]).
    pub foreign_keys: Vec<ForeignKeyReach>,
}

/// What a statement reaches through foreign keys, which only the catalog (or the keys
/// lint saw in the file or `--schema`) knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ForeignKeyReach {
    /// Drops the foreign keys of `table` that `keys` says: PostgreSQL takes ACCESS
    /// EXCLUSIVE on each one's referenced table too (it removes the key's triggers there,
    /// `RemoveTriggerById`), so reads of that table wait as well.
    Drops {
        /// The table whose keys go.
        table: RelName,
        /// Which of its keys.
        keys: DroppedKeys,
    },
    /// Empties or drops `table` with CASCADE: ACCESS EXCLUSIVE on every table whose
    /// foreign key references it (its rows emptied, or the key dropped).
    CascadesFrom(RelName),
}

impl ForeignKeyReach {
    /// The mode taken on each table reached: ACCESS EXCLUSIVE (reads wait too).
    pub fn mode(&self) -> LockMode {
        LockMode::AccessExclusive
    }
}

/// Which foreign keys of a table a statement drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum DroppedKeys {
    /// All of them (`DROP TABLE`).
    All,
    /// The constraint of that name, if it is a foreign key (`DROP CONSTRAINT k`).
    Constraint(String),
    /// Those on that column (`DROP COLUMN c`).
    Column(String),
}

/// A foreign key lint knows (from the file or `--schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignKey {
    /// Its constraint name (PostgreSQL's `<table>_<columns>_fkey` when unnamed); `None`
    /// when PostgreSQL would truncate it.
    pub name: Option<String>,
    /// The referencing table.
    pub table: RelName,
    /// The referencing columns.
    pub columns: Vec<String>,
    /// The referenced table.
    pub referenced: RelName,
}

impl ForeignKey {
    /// Whether `drop` of `table`'s keys drops this one.
    fn dropped_by(&self, table: &RelName, keys: &DroppedKeys) -> bool {
        self.table.same_as(table)
            && match keys {
                DroppedKeys::All => true,
                DroppedKeys::Constraint(k) => self.name.as_deref() == Some(k.as_str()),
                DroppedKeys::Column(c) => self.columns.contains(c),
            }
    }
}

/// A lock on relations a statement reaches through another object it names: the
/// partitions of a partitioned table, the tables with a column of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndirectLock {
    /// What it names: the partitioned table, the domain.
    pub via: RelName,
    /// The mode taken on each relation reached.
    pub mode: LockMode,
    /// Whether each one is read in full under it.
    pub scan: Effect,
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

    pub(super) fn add(
        &mut self,
        target: LockTarget,
        mode: LockMode,
        rewrite: Effect,
        scan: Effect,
    ) {
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

    /// Adds what the statement reaches through the foreign keys lint knows: ACCESS
    /// EXCLUSIVE on the table each dropped key references, and on each table whose key
    /// references one it empties or drops with CASCADE (not on a table the statement
    /// names itself, which it locks anyway).
    pub(crate) fn lock_through_foreign_keys<'k>(
        &mut self,
        known: impl Iterator<Item = &'k ForeignKey> + Clone,
    ) {
        let mut reached: Vec<(RelName, LockMode)> = Vec::new();
        for reach in &self.foreign_keys {
            for k in known.clone() {
                match reach {
                    ForeignKeyReach::Drops { table, keys } if k.dropped_by(table, keys) => {
                        reached.push((k.referenced.clone(), reach.mode()));
                    }
                    ForeignKeyReach::CascadesFrom(t) if k.referenced.same_as(t) => {
                        reached.push((k.table.clone(), reach.mode()));
                    }
                    _ => {}
                }
            }
        }
        for (t, mode) in reached {
            if self.on_table(&t).is_none() {
                self.add(LockTarget::Table(t), mode, Effect::No, Effect::No);
            }
        }
        self.locks.sort_by_key(|l| std::cmp::Reverse(l.mode));
    }

    pub(super) fn table(&mut self, r: Option<&RangeVar>, mode: LockMode) {
        if let Some(r) = r {
            self.add(
                LockTarget::Table(RelName::from_range_var(r)),
                mode,
                Effect::No,
                Effect::No,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::{PgVersion, sql_statement_locks};

    #[test]
    fn effects_combine_to_the_costlier() {
        let unless = Effect::Unless(Condition::BinaryCoercible);
        assert_eq!(Effect::No.max(unless), unless);
        assert_eq!(unless.max(Effect::Yes), Effect::Yes);
        assert_eq!(Effect::No.max(Effect::No), Effect::No);
        assert!(unless.possible() && !Effect::No.possible());
    }

    #[test]
    fn a_statement_answer_knows_its_strongest_lock_and_what_it_blocks() {
        let fk = sql_statement_locks(
            "ALTER TABLE t ADD CONSTRAINT k FOREIGN KEY (c) REFERENCES p (id) NOT VALID",
            PgVersion::DEFAULT,
        );
        assert_eq!(fk.strongest(), Some(LockMode::ShareRowExclusive));
        assert_eq!(fk.blocks().to_string(), "writes");
        let p = RelName {
            schema: Some("public".into()),
            name: "p".into(),
        };
        assert_eq!(
            fk.on_table(&p).map(|l| l.mode),
            Some(LockMode::ShareRowExclusive)
        );
        let validate =
            sql_statement_locks("ALTER TABLE t VALIDATE CONSTRAINT k", PgVersion::DEFAULT);
        assert!(validate.share_update_exclusive_only());
        assert!(!validate.blocks().any());
    }
}
