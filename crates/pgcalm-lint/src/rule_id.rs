//! Rule identities: every name a finding can carry, with what each one means in one
//! place (its name, default severity, the hazard it catches, whether it is on by
//! default, and the evidence a trace reads to confirm it). Lint's rules, trace and the
//! CLI ask [`RuleId`]; nobody keeps a table of rule names of their own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::finding::Severity;

/// The rule a finding is reported under. Serialized (findings JSON) and displayed as
/// its kebab-case name (`require-concurrent-index-creation`); parsed from the names one
/// can select (`-- pgcalm:ignore`, `[lint] disable`/`enable`), which are the lint rules
/// ([`RuleKind::Rule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)] // Each variant's meaning is its `info()` (one place).
pub enum RuleId {
    MissingLockTimeout,
    RequireConcurrentIndexCreation,
    RequireConcurrentIndexDeletion,
    ConcurrentlyInTransaction,
    ConstraintMissingNotValid,
    AddingUniqueConstraint,
    AddingPrimaryKey,
    PrimaryKeyUsingIndexNullable,
    SettingNotNull,
    AddingFieldWithVolatileDefault,
    AddingSerialColumn,
    AddingStoredGeneratedColumn,
    AddingNotNullColumnWithoutDefault,
    ChangingColumnType,
    RenamingColumn,
    RenamingTable,
    DroppingColumn,
    DroppingTable,
    DroppingDefaultOnNotNullColumn,
    AddingExclusionConstraint,
    BackfillInDdlTransaction,
    UnbatchedBackfill,
    TableRewriteCommand,
    PreferJsonb,
    ReindexNonConcurrent,
    TruncatingTable,
    DroppingWithCascade,
    DroppingSchema,
    RenamingSchema,
    RefreshMaterializedViewNonConcurrent,
    AttachingPartition,
    DetachPartitionNonConcurrent,
    ConcurrentIndexOnPartitionedTable,
    BreakingReplicaIdentity,
    DisablingTriggers,
    ConcurrentIndexIfNotExists,
    AddingDomainConstraint,
    EnumValueUsedInTransaction,
    AccumulatedLocks,
    DynamicSql,
    InvalidIgnore,
    ExpiredIgnore,
    SyntaxError,
    StatementFailed,
    LockTableMismatch,
}

/// Who reports findings under an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A lint rule (`rules/<name>.rs`): selectable, ignorable.
    Rule,
    /// About the text, not a statement's hazard: a malformed `-- pgcalm:ignore`
    /// directive, SQL that does not parse (pgcalm-migrate's file linting).
    Source,
    /// pgcalm-trace only, for what it saw that no lint rule names.
    TraceOnly,
}

/// What shows a rule's hazard when the statement runs (what pgcalm-trace looks for to
/// confirm a lint finding, and what it reports when no finding explains it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// The table gets a new `relfilenode`.
    Rewrite,
    /// The table is read in full under a lock that blocks writes (a constraint added
    /// validated, `verifying table`, SET NOT NULL without a proving CHECK).
    Scan,
    /// An index is built on an existing table under a lock that blocks writes.
    IndexBuild,
    /// A lock that blocks reads or writes on an existing relation.
    BlockingLock,
    /// The statement runs while its transaction holds such a lock from an earlier one.
    HeldLock,
    /// The statement fails on a table with rows, or inside a transaction.
    Failure,
    /// A blocking lock taken while `lock_timeout` is 0.
    NoLockTimeout,
    /// Nothing a run shows (renames, drops and types break clients, not locks; a
    /// malformed directive, a syntax error or a lock-table mismatch is no hazard of the
    /// statement's).
    Unobservable,
}

/// Everything pgcalm knows about a rule id besides its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// Kebab-case name, in output, `-- pgcalm:ignore` and `[lint] disable`.
    pub name: &'static str,
    /// Who reports it.
    pub kind: RuleKind,
    /// The severity of its findings (trace reports a missing `lock_timeout` it saw as a
    /// warning).
    pub severity: Severity,
    /// What goes wrong, in one line (`pgcalm lint --list-rules`).
    pub hazard: &'static str,
    /// On unless `[lint] disable` names it (off ones need `[lint] enable`).
    pub default_on: bool,
    /// What a trace sees when the hazard happens.
    pub evidence: Evidence,
}

/// The table of rule ids. A `const fn` so each arm is a `'static` value.
const fn info(id: RuleId) -> RuleInfo {
    use Evidence as E;
    use RuleId as R;
    use Severity::{Error, Warning};
    let (name, kind, severity, evidence, hazard) = match id {
        R::MissingLockTimeout => (
            "missing-lock-timeout",
            RuleKind::Rule,
            Error,
            E::NoLockTimeout,
            "a lock that blocks reads or writes, taken with no lock_timeout (plain SQL only)",
        ),
        R::RequireConcurrentIndexCreation => (
            "require-concurrent-index-creation",
            RuleKind::Rule,
            Error,
            E::IndexBuild,
            "CREATE INDEX without CONCURRENTLY on an existing table blocks writes for the build",
        ),
        R::RequireConcurrentIndexDeletion => (
            "require-concurrent-index-deletion",
            RuleKind::Rule,
            Error,
            E::BlockingLock,
            "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table",
        ),
        R::ConcurrentlyInTransaction => (
            "concurrently-in-transaction",
            RuleKind::Rule,
            Error,
            E::Failure,
            "CONCURRENTLY (or VACUUM...) inside a transaction block fails",
        ),
        R::ConstraintMissingNotValid => (
            "constraint-missing-not-valid",
            RuleKind::Rule,
            Error,
            E::Scan,
            "ADD FOREIGN KEY / CHECK without NOT VALID scans the table under its lock",
        ),
        R::AddingUniqueConstraint => (
            "adding-unique-constraint",
            RuleKind::Rule,
            Error,
            E::IndexBuild,
            "ADD UNIQUE builds an index under ACCESS EXCLUSIVE",
        ),
        R::AddingPrimaryKey => (
            "adding-primary-key",
            RuleKind::Rule,
            Error,
            E::IndexBuild,
            "ADD PRIMARY KEY builds an index under ACCESS EXCLUSIVE",
        ),
        R::PrimaryKeyUsingIndexNullable => (
            "primary-key-using-index-nullable",
            RuleKind::Rule,
            Warning,
            E::Scan,
            "PRIMARY KEY USING INDEX over columns not known NOT NULL scans under ACCESS EXCLUSIVE",
        ),
        R::SettingNotNull => (
            "setting-not-null",
            RuleKind::Rule,
            Error,
            E::Scan,
            "SET NOT NULL scans the table under ACCESS EXCLUSIVE unless a validated CHECK proves it (PG12+)",
        ),
        R::AddingFieldWithVolatileDefault => (
            "adding-field-with-volatile-default",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "ADD COLUMN with a volatile default (any default before PostgreSQL 11) rewrites the table",
        ),
        R::AddingSerialColumn => (
            "adding-serial-column",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "ADD COLUMN serial or GENERATED ... AS IDENTITY rewrites the table",
        ),
        R::AddingStoredGeneratedColumn => (
            "adding-stored-generated-column",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "ADD COLUMN ... GENERATED ALWAYS AS (...) STORED rewrites the table",
        ),
        R::AddingNotNullColumnWithoutDefault => (
            "adding-not-null-column-without-default",
            RuleKind::Rule,
            Error,
            E::Failure,
            "ADD COLUMN NOT NULL without a default fails on a table with rows and breaks old inserts",
        ),
        R::ChangingColumnType => (
            "changing-column-type",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "ALTER COLUMN TYPE rewrites the table unless the change is binary-coercible",
        ),
        R::RenamingColumn => (
            "renaming-column",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "RENAME COLUMN breaks application code that still uses the old name",
        ),
        R::RenamingTable => (
            "renaming-table",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "RENAME TO breaks application code that still uses the old table name",
        ),
        R::DroppingColumn => (
            "dropping-column",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "DROP COLUMN breaks application code that still uses the column",
        ),
        R::DroppingTable => (
            "dropping-table",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "DROP TABLE breaks application code that still uses the table",
        ),
        R::DroppingDefaultOnNotNullColumn => (
            "dropping-default-on-not-null-column",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "DROP DEFAULT on a NOT NULL column breaks INSERTs of code that omits the column",
        ),
        R::AddingExclusionConstraint => (
            "adding-exclusion-constraint",
            RuleKind::Rule,
            Error,
            E::Scan,
            "ADD CONSTRAINT ... EXCLUDE scans the table under ACCESS EXCLUSIVE (no NOT VALID)",
        ),
        R::BackfillInDdlTransaction => (
            "backfill-in-ddl-transaction",
            RuleKind::Rule,
            Error,
            E::HeldLock,
            "UPDATE/DELETE in the transaction that holds a DDL lock keeps the table blocked",
        ),
        R::UnbatchedBackfill => (
            "unbatched-backfill",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "UPDATE/DELETE of a whole table in one transaction",
        ),
        R::TableRewriteCommand => (
            "table-rewrite-command",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "VACUUM FULL, CLUSTER, SET TABLESPACE, SET LOGGED/UNLOGGED rewrite the table",
        ),
        R::PreferJsonb => (
            "prefer-jsonb",
            RuleKind::Rule,
            Warning,
            E::Unobservable,
            "json columns cannot be compared (DISTINCT, GROUP BY fail): use jsonb",
        ),
        R::ReindexNonConcurrent => (
            "reindex-non-concurrent",
            RuleKind::Rule,
            Error,
            E::BlockingLock,
            "REINDEX without CONCURRENTLY blocks writes (and reads using the index)",
        ),
        R::TruncatingTable => (
            "truncating-table",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "TRUNCATE empties an existing table (CASCADE: every table referencing it) under ACCESS EXCLUSIVE",
        ),
        R::DroppingWithCascade => (
            "dropping-with-cascade",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "DROP ... CASCADE also drops what depends on the object (views, other tables' foreign keys, columns of a type)",
        ),
        R::DroppingSchema => (
            "dropping-schema",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "DROP SCHEMA ... CASCADE drops every table in the schema with its rows",
        ),
        R::RenamingSchema => (
            "renaming-schema",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "ALTER SCHEMA ... RENAME breaks application code that names the old schema",
        ),
        R::RefreshMaterializedViewNonConcurrent => (
            "refresh-materialized-view-non-concurrent",
            RuleKind::Rule,
            Error,
            E::Rewrite,
            "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of the view while its query runs",
        ),
        R::AttachingPartition => (
            "attaching-partition",
            RuleKind::Rule,
            Error,
            E::Scan,
            "ATTACH PARTITION scans the table attached (and the DEFAULT partition) under ACCESS EXCLUSIVE",
        ),
        R::DetachPartitionNonConcurrent => (
            "detach-partition-non-concurrent",
            RuleKind::Rule,
            Error,
            E::BlockingLock,
            "DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the whole partitioned table",
        ),
        R::ConcurrentIndexOnPartitionedTable => (
            "concurrent-index-on-partitioned-table",
            RuleKind::Rule,
            Error,
            E::Failure,
            "CREATE INDEX CONCURRENTLY on a partitioned table fails: build it per partition",
        ),
        R::BreakingReplicaIdentity => (
            "breaking-replica-identity",
            RuleKind::Rule,
            Warning,
            E::Unobservable,
            "dropping a primary key or REPLICA IDENTITY NOTHING: UPDATE and DELETE fail on a table published for logical replication",
        ),
        R::DisablingTriggers => (
            "disabling-triggers",
            RuleKind::Rule,
            Error,
            E::Unobservable,
            "DISABLE TRIGGER ALL switches off foreign-key checks: rows written meanwhile are never checked",
        ),
        R::ConcurrentIndexIfNotExists => (
            "concurrent-index-if-not-exists",
            RuleKind::Rule,
            Warning,
            E::Unobservable,
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS skips over an INVALID index a failed build left",
        ),
        R::AddingDomainConstraint => (
            "adding-domain-constraint",
            RuleKind::Rule,
            Error,
            E::BlockingLock,
            "ALTER DOMAIN ADD CONSTRAINT / SET NOT NULL / VALIDATE reads every column of the domain under SHARE: writes wait",
        ),
        R::EnumValueUsedInTransaction => (
            "enum-value-used-in-transaction",
            RuleKind::Rule,
            Error,
            E::Failure,
            "an enum value added by ALTER TYPE ... ADD VALUE and used before COMMIT: the statement fails (55P04)",
        ),
        R::AccumulatedLocks => (
            "accumulated-locks",
            RuleKind::Rule,
            Error,
            E::HeldLock,
            "an index build, scan or rewrite after other DDL in one transaction keeps every table locked earlier blocked for its whole duration",
        ),
        R::DynamicSql => (
            "dynamic-sql",
            RuleKind::Rule,
            Warning,
            E::Unobservable,
            "a DO block or function runs SQL lint cannot read (EXECUTE of a computed string): review it by hand",
        ),
        R::InvalidIgnore => (
            "invalid-ignore",
            RuleKind::Source,
            Error,
            E::Unobservable,
            "a `-- pgcalm:ignore` directive with no rule, an unknown rule or no reason",
        ),
        R::ExpiredIgnore => (
            "expired-ignore",
            RuleKind::Source,
            Warning,
            E::Unobservable,
            "a `-- pgcalm:ignore RULE until DATE` past its date: the finding it covered is back",
        ),
        R::SyntaxError => (
            "syntax-error",
            RuleKind::Source,
            Error,
            E::Unobservable,
            "SQL that does not parse: nothing in it was linted",
        ),
        R::StatementFailed => (
            "statement-failed",
            RuleKind::TraceOnly,
            Error,
            E::Failure,
            "the statement failed when trace ran it on a database with rows",
        ),
        R::LockTableMismatch => (
            "lock-table-mismatch",
            RuleKind::TraceOnly,
            Warning,
            E::Unobservable,
            "PostgreSQL took another lock than pgcalm's lock table says",
        ),
    };
    RuleInfo {
        name,
        kind,
        severity,
        hazard,
        // Every rule is on by default today; a rule that is not says so here.
        default_on: true,
        evidence,
    }
}

impl RuleId {
    /// Every id, lint rules first in the order their findings are listed for one
    /// statement.
    pub const ALL: [RuleId; 45] = [
        RuleId::MissingLockTimeout,
        RuleId::RequireConcurrentIndexCreation,
        RuleId::RequireConcurrentIndexDeletion,
        RuleId::ConcurrentlyInTransaction,
        RuleId::ConstraintMissingNotValid,
        RuleId::AddingUniqueConstraint,
        RuleId::AddingPrimaryKey,
        RuleId::PrimaryKeyUsingIndexNullable,
        RuleId::SettingNotNull,
        RuleId::AddingFieldWithVolatileDefault,
        RuleId::AddingSerialColumn,
        RuleId::AddingStoredGeneratedColumn,
        RuleId::AddingNotNullColumnWithoutDefault,
        RuleId::ChangingColumnType,
        RuleId::RenamingColumn,
        RuleId::RenamingTable,
        RuleId::DroppingColumn,
        RuleId::DroppingTable,
        RuleId::DroppingDefaultOnNotNullColumn,
        RuleId::AddingExclusionConstraint,
        RuleId::BackfillInDdlTransaction,
        RuleId::UnbatchedBackfill,
        RuleId::TableRewriteCommand,
        RuleId::PreferJsonb,
        RuleId::ReindexNonConcurrent,
        RuleId::TruncatingTable,
        RuleId::DroppingWithCascade,
        RuleId::DroppingSchema,
        RuleId::RenamingSchema,
        RuleId::RefreshMaterializedViewNonConcurrent,
        RuleId::AttachingPartition,
        RuleId::DetachPartitionNonConcurrent,
        RuleId::ConcurrentIndexOnPartitionedTable,
        RuleId::BreakingReplicaIdentity,
        RuleId::DisablingTriggers,
        RuleId::ConcurrentIndexIfNotExists,
        RuleId::AddingDomainConstraint,
        RuleId::EnumValueUsedInTransaction,
        RuleId::AccumulatedLocks,
        RuleId::DynamicSql,
        RuleId::InvalidIgnore,
        RuleId::ExpiredIgnore,
        RuleId::SyntaxError,
        RuleId::StatementFailed,
        RuleId::LockTableMismatch,
    ];

    /// The lint rules (the ids one can select or ignore), in [`RuleId::ALL`] order.
    pub fn rules() -> impl Iterator<Item = RuleId> {
        RuleId::ALL
            .into_iter()
            .filter(|id| id.info().kind == RuleKind::Rule)
    }

    /// What pgcalm knows about it.
    pub const fn info(self) -> RuleInfo {
        info(self)
    }

    /// Kebab-case name: `require-concurrent-index-creation`.
    pub const fn name(self) -> &'static str {
        info(self).name
    }

    /// The severity of its findings.
    pub const fn severity(self) -> Severity {
        info(self).severity
    }

    /// What a trace sees when its hazard happens.
    pub const fn evidence(self) -> Evidence {
        info(self).evidence
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no lint rule's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule `{name}`; the rules are: {}", valid_names())]
pub struct UnknownRule {
    /// The name as given.
    pub name: String,
}

fn valid_names() -> String {
    RuleId::rules()
        .map(RuleId::name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for RuleId {
    type Err = UnknownRule;

    /// A lint rule by name; the ids only pgcalm reports (`invalid-ignore`,
    /// `syntax-error`, `statement-failed`, `lock-table-mismatch`) are no rule one can
    /// select.
    fn from_str(name: &str) -> Result<RuleId, UnknownRule> {
        RuleId::rules()
            .find(|id| id.name() == name)
            .ok_or_else(|| UnknownRule {
                name: name.to_string(),
            })
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RuleId, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_id_once_and_names_are_unique_kebab_case() {
        for (i, id) in RuleId::ALL.iter().enumerate() {
            assert_eq!(*id as usize, i, "{id} is out of place in RuleId::ALL");
            let name = id.name();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name}"
            );
            assert_eq!(
                RuleId::ALL
                    .iter()
                    .filter(|other| other.name() == name)
                    .count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn a_rule_name_round_trips_and_others_do_not_parse() {
        for id in RuleId::rules() {
            assert_eq!(id.name().parse::<RuleId>(), Ok(id));
            assert_eq!(id.to_string(), id.name());
        }
        assert_eq!(RuleId::rules().count(), 40);
        for id in [
            RuleId::InvalidIgnore,
            RuleId::ExpiredIgnore,
            RuleId::SyntaxError,
            RuleId::StatementFailed,
            RuleId::LockTableMismatch,
        ] {
            assert!(id.name().parse::<RuleId>().is_err(), "{id}");
        }
        let err = "require-concurrent-index-creatoin"
            .parse::<RuleId>()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "unknown rule `require-concurrent-index-creatoin`; the rules are: \
                 missing-lock-timeout, require-concurrent-index-creation, "
            ),
            "{err}"
        );
        assert!(err.ends_with(", dynamic-sql"), "{err}");
    }

    #[test]
    fn serde_uses_the_kebab_case_name() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Section {
            disable: Vec<RuleId>,
        }
        let section = Section {
            disable: vec![RuleId::SettingNotNull],
        };
        let text = toml::to_string(&section).unwrap();
        assert_eq!(text, "disable = [\"setting-not-null\"]\n");
        assert_eq!(toml::from_str::<Section>(&text).unwrap(), section);
        let err = toml::from_str::<Section>("disable = [\"setting-nul\"]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown rule `setting-nul`; the rules are: "),
            "{err}"
        );
    }

    #[test]
    fn every_rule_names_its_trace_evidence_or_is_known_unobservable() {
        // A hazard of the client code, or of the data's size: no run on a scratch
        // database shows it.
        let unobservable = [
            RuleId::PreferJsonb,
            RuleId::RenamingColumn,
            RuleId::RenamingTable,
            RuleId::DroppingColumn,
            RuleId::DroppingTable,
            RuleId::UnbatchedBackfill,
            RuleId::DroppingDefaultOnNotNullColumn,
            RuleId::DroppingWithCascade,
            RuleId::DroppingSchema,
            RuleId::RenamingSchema,
            RuleId::BreakingReplicaIdentity,
            RuleId::DisablingTriggers,
            RuleId::ConcurrentIndexIfNotExists,
            RuleId::DynamicSql,
            RuleId::InvalidIgnore,
            RuleId::ExpiredIgnore,
            RuleId::SyntaxError,
            RuleId::LockTableMismatch,
        ];
        for id in RuleId::ALL {
            assert_eq!(
                id.evidence() == Evidence::Unobservable,
                unobservable.contains(&id),
                "{id}"
            );
        }
    }
}
