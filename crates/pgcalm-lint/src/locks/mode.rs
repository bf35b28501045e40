//! The table-level lock modes and PostgreSQL's conflict matrix: what a mode blocks
//! and which held modes cover a request.

use std::fmt;

use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn conflict_matrix_is_symmetric_and_names_reads_and_writes() {
        for a in LockMode::ALL {
            for b in LockMode::ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} {b}");
            }
            assert_eq!(LockMode::from_name(a.pg_locks_name()), Some(a));
        }
        let blocking: Vec<(LockMode, bool, bool)> = LockMode::ALL
            .into_iter()
            .map(|m| (m, m.blocks().reads, m.blocks().writes))
            .collect();
        use LockMode::*;
        assert_eq!(
            blocking,
            [
                (AccessShare, false, false),
                (RowShare, false, false),
                (RowExclusive, false, false),
                (ShareUpdateExclusive, false, false),
                (Share, false, true),
                (ShareRowExclusive, false, true),
                (Exclusive, false, true),
                (AccessExclusive, true, true),
            ]
        );
    }

    #[test]
    fn lock_table_modes_are_the_ones_lock_table_in_mode_names() {
        use crate::locks::test_support::facts;
        for m in LockMode::ALL {
            let sql = format!("LOCK TABLE t IN {} MODE", m.sql_name());
            assert_eq!(facts(&sql, 15), [format!("t {m} rewrite no scan no")]);
        }
        // No mode: ACCESS EXCLUSIVE.
        assert_eq!(
            facts("LOCK t", 15),
            ["t ACCESS EXCLUSIVE rewrite no scan no"]
        );
    }
}
