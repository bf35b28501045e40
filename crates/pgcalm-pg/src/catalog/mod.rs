//! Catalog queries. Architecture invariant: this module is the only place in pgcalm that
//! writes SQL against `pg_catalog` / `pg_stat_*`; every other crate calls these functions.

pub mod activity;
pub mod keys;
pub mod monitor;
pub mod pooling;
pub mod progress;
pub mod sizes;
pub mod table;
pub mod topology;
pub mod trace;

pub use activity::{
    Blocker, LockQueue, Queued, SessionInfo, advisory_lock_holder, backend_pid,
    checks_client_connection, column_exists, lock_queue, relation_exists, session, session_tls,
    sessions_named, terminate_idle_blocker,
};
pub use keys::{PrimaryKey, estimated_rows, primary_key};
pub use monitor::{
    DatabaseMonitor, DatabaseSnapshot, LockWait, MaintenanceProgress, SessionActivity, snapshot,
};
pub use pooling::{Pooling, session_pooling};
pub use progress::{
    IndexBuildProgress, IndexState, index_build_progress, index_builds, index_state,
};
pub use sizes::{TableSize, table_sizes};
pub use table::{
    ColumnInfo, ConstraintInfo, IndexInfo, RowCount, TableReport, column_sequence, describe_table,
    server_version,
};
pub use topology::{
    PoolStats, ReplicaLag, SlotInfo, StandbyReplay, WalSender, max_replica_lag, replication_slots,
    standby_replay, wal_senders,
};
pub use trace::{
    ColumnState, ConstraintState, HeldLock, IndexValidity, RelationState, SchemaSnapshot,
    relation_locks, schema_snapshot, server_major_version, user_tables,
};
