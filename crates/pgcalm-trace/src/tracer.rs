//! Runs a [`Script`] on a scratch database and records, per statement, what it really
//! did to the relations that existed before it: the relation locks it took (read from
//! `pg_locks` on a second connection), rewrites (`relfilenode` changes), table scans and
//! NOT NULL proofs (the server's DEBUG1 messages), constraints added or validated,
//! indexes built, and its duration.
//!
//! Inside a transaction the locks are read after each statement, before the next: they
//! are held until COMMIT, so each statement's new ones show. A statement outside a
//! transaction that may run in one is wrapped in BEGIN/COMMIT for the reading; one that
//! may not (CONCURRENTLY, VACUUM) is sampled while it runs, with a helper session that
//! holds an old snapshot and ACCESS SHARE on the existing tables, so the statement waits
//! (holding its own locks) until the sample is taken, then is let go.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use pgcalm_lint::{Blocks, LockMode};
use pgcalm_migrate::Policy;
use pgcalm_migrate::policy::set_sql;
use pgcalm_pg::catalog::{self, HeldLock, SchemaSnapshot};
use pgcalm_pg::{PgError, Target, quote_ident};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Client;
use tokio_postgres::error::DbError;

use crate::error::TraceError;
use crate::script::{Script, ScriptStatement};
use crate::seed::{Seeded, seed_tables};

/// A lock seen on a relation that existed before the traced migration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservedLock {
    /// Schema-qualified relation.
    pub relation: String,
    /// `table`, `index`, `sequence`, `view`, ...
    pub relation_kind: &'static str,
    /// `pg_locks.mode` (`ShareLock`, `AccessExclusiveLock`, ...).
    pub mode: String,
    /// False when the statement was seen waiting for it.
    pub granted: bool,
}

/// A constraint of an existing table that a statement added or validated.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConstraintChange {
    /// Schema-qualified table.
    pub table: String,
    /// Constraint name.
    pub name: String,
    /// `primary key`, `unique`, `foreign key`, `check`, `exclusion`.
    pub kind: &'static str,
    /// True when it is validated after the statement (so the statement checked every row).
    pub validated: bool,
    /// True when the statement added it; false when it validated an existing one.
    pub added: bool,
}

/// An index a statement created on an existing table.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexBuilt {
    /// Schema-qualified index.
    pub index: String,
    /// Schema-qualified table.
    pub table: String,
    /// `indisvalid` after the statement.
    pub valid: bool,
}

/// A column of an existing table that a statement made NOT NULL.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotNullSet {
    /// Schema-qualified table.
    pub table: String,
    /// Column.
    pub column: String,
    /// The server said a valid CHECK constraint proves it, so no table scan was needed.
    pub proven_by_constraint: bool,
}

/// What one statement did.
#[derive(Debug, Clone, Serialize)]
pub struct StatementTrace {
    /// 1-based line in the traced file.
    pub line: usize,
    /// Where it is in the traced file.
    #[serde(skip)]
    pub span: pgcalm_lint::Span,
    /// The statement.
    pub sql: String,
    /// `CREATE INDEX`, `ALTER TABLE`, ...
    pub label: String,
    /// Ran inside the migration's transaction (its locks are held until COMMIT).
    pub in_transaction: bool,
    /// Its locks were sampled while it ran (no-transaction statements), not read after it.
    pub sampled: bool,
    /// `lock_timeout` in force when it ran (`0`: it could queue forever).
    pub lock_timeout: String,
    /// Wall time of the statement alone.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Locks it took on relations that existed before the migration.
    pub locks: Vec<ObservedLock>,
    /// Locks on existing relations its transaction already held when it started.
    pub held_before: Vec<ObservedLock>,
    /// Existing tables (and their indexes) it rewrote: new `relfilenode`.
    pub rewrites: Vec<String>,
    /// Existing tables it scanned to verify a constraint (server: `verifying table`).
    pub scans: Vec<String>,
    /// Constraints it added or validated on existing tables.
    pub constraints: Vec<ConstraintChange>,
    /// Indexes it built on existing tables.
    pub indexes: Vec<IndexBuilt>,
    /// Columns of existing tables it made NOT NULL.
    pub not_null: Vec<NotNullSet>,
    /// The server's error, when it failed (tracing stops there).
    pub error: Option<String>,
    /// Its SQLSTATE (`42P01`: the table does not exist, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

impl ObservedLock {
    /// On a table (not an index or sequence): what the application reads and writes.
    pub fn on_table(&self) -> bool {
        matches!(
            self.relation_kind,
            "table" | "partitioned table" | "materialized view"
        )
    }

    /// Its mode in the lock table's terms, which order modes weakest to strongest
    /// (`None`, below all, for a mode it does not know).
    pub fn lock_mode(&self) -> Option<LockMode> {
        LockMode::from_name(&self.mode)
    }

    /// What its mode blocks (nothing for a mode the lock table does not know).
    pub fn blocks(&self) -> Blocks {
        self.lock_mode().map(LockMode::blocks).unwrap_or_default()
    }
}

impl StatementTrace {
    /// The trace of `s` before anything about it is known but how long it took.
    pub(crate) fn new(
        s: &ScriptStatement,
        in_transaction: bool,
        duration: Duration,
    ) -> StatementTrace {
        StatementTrace {
            line: s.line(),
            span: s.span,
            sql: s.sql.clone(),
            label: s.kind.label.clone(),
            in_transaction,
            sampled: false,
            lock_timeout: String::new(),
            duration,
            locks: Vec::new(),
            held_before: Vec::new(),
            rewrites: Vec::new(),
            scans: Vec::new(),
            constraints: Vec::new(),
            indexes: Vec::new(),
            not_null: Vec::new(),
            error: None,
            error_code: None,
        }
    }
}

/// The whole trace of one file.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// `server_version` of the scratch server.
    pub server_version: String,
    /// Its major version (`15`): what lint is asked about.
    pub server_major: u32,
    /// Setup statements run before the traced ones.
    pub setup_statements: usize,
    /// Rows put into the existing tables before tracing.
    pub seeded: Vec<Seeded>,
    /// The traced statements, in order (transaction control is not listed).
    pub statements: Vec<StatementTrace>,
}

/// Options of a trace.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Rows seeded into every existing table (0: none).
    pub seed_rows: u64,
    /// The runner's policy: a pgcalm migration's statements run with the timeouts it
    /// sets ([`Policy::settings_for`]), as `pgcalm migrate` would run them.
    pub policy: Policy,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            seed_rows: 100,
            policy: Policy::default(),
        }
    }
}

/// Runs `script` on `target` (a scratch database) and records what each statement did.
pub async fn trace(
    target: &Target,
    script: &Script,
    options: &TraceOptions,
) -> Result<Trace, TraceError> {
    let (client, notices) = target
        .with_application_name("pgcalm trace")
        .connect_with_notices()
        .await?;
    let monitor = target
        .with_application_name("pgcalm trace (monitor)")
        .connect()
        .await?;
    for s in &script.setup {
        client
            .batch_execute(&s.sql)
            .await
            .map_err(|e| TraceError::Setup {
                path: s.path.clone(),
                line: s.line(),
                message: db_message(&e),
            })?;
    }
    let before = catalog::schema_snapshot(&client).await?;
    let seeded = if options.seed_rows > 0 {
        seed_tables(&client, &before, options.seed_rows).await
    } else {
        Vec::new()
    };
    let server_version = catalog::server_version(&client).await?;
    let server_major = catalog::server_major_version(&client).await?;
    // DEBUG1 tells rewrites, verification scans and NOT NULL proofs apart.
    client
        .batch_execute("SET client_min_messages = debug1")
        .await
        .map_err(PgError::query("asking for the server's DEBUG1 messages"))?;
    let pid = catalog::backend_pid(&client).await?;
    let mut t = Tracer {
        target,
        client,
        notices,
        monitor,
        pid,
        existing: before.relations.iter().map(|r| (r.oid, r.kind)).collect(),
        before_tables: before,
        last: SchemaSnapshot::default(),
        held: BTreeSet::new(),
        runner_policy: script.migration.is_some().then(|| options.policy.clone()),
    };
    t.last = t.before_tables.clone();
    let mut statements = Vec::new();
    let mut in_transaction = false;
    for s in &script.statements {
        if s.kind.transaction_control {
            t.control(&s.sql).await?;
            in_transaction = opens_transaction(&s.kind.label);
            if !in_transaction {
                t.held.clear();
            }
            continue;
        }
        let traced = if in_transaction {
            t.in_transaction(s).await?
        } else if s.kind.needs_no_transaction || s.kind.commits_itself {
            // Refused in a transaction block (a DO block that COMMITs: 2D000): sampled as
            // it runs on its own, as the runner runs it.
            t.sampled(s).await?
        } else {
            t.control("BEGIN").await?;
            let traced = t.in_transaction(s).await?;
            t.control(if traced.error.is_some() {
                "ROLLBACK"
            } else {
                "COMMIT"
            })
            .await?;
            t.held.clear();
            StatementTrace {
                in_transaction: false,
                ..traced
            }
        };
        let failed = traced.error.is_some();
        statements.push(traced);
        if failed {
            break;
        }
    }
    // A plain SQL file may end inside a transaction; nothing more will run.
    let _ = t.client.batch_execute("ROLLBACK").await;
    Ok(Trace {
        server_version,
        server_major,
        setup_statements: script.setup.len(),
        seeded,
        statements,
    })
}

fn opens_transaction(label: &str) -> bool {
    matches!(
        label,
        "BEGIN" | "SAVEPOINT" | "RELEASE SAVEPOINT" | "ROLLBACK TO SAVEPOINT"
    )
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

struct Tracer<'a> {
    target: &'a Target,
    client: Client,
    notices: UnboundedReceiver<DbError>,
    monitor: Client,
    pid: i32,
    /// (oid, relkind) of the relations that existed before the traced statements.
    existing: std::collections::HashMap<u32, char>,
    before_tables: SchemaSnapshot,
    /// The schema after the previous statement.
    last: SchemaSnapshot,
    /// (oid, mode) of the locks the open transaction holds on existing relations.
    held: BTreeSet<(u32, String)>,
    /// A pgcalm migration: the policy whose timeouts are set before each statement.
    runner_policy: Option<Policy>,
}

impl Tracer<'_> {
    async fn control(&self, sql: &str) -> Result<(), TraceError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| PgError::query(format!("running `{sql}` of the traced file"))(e).into())
    }

    fn existing_locks(&self, locks: &[HeldLock], granted_only: bool) -> BTreeSet<(u32, String)> {
        locks
            .iter()
            .filter(|l| self.existing.contains_key(&l.oid) && (l.granted || !granted_only))
            .map(|l| (l.oid, l.mode.clone()))
            .collect()
    }

    fn describe(
        &self,
        locks: &BTreeSet<(u32, String)>,
        waited: &HashSet<(u32, String)>,
    ) -> Vec<ObservedLock> {
        let mut out: Vec<ObservedLock> = locks
            .iter()
            .map(|(oid, mode)| ObservedLock {
                relation: self.relation_name(*oid),
                relation_kind: kind_name(self.existing.get(oid).copied().unwrap_or('?')),
                mode: mode.clone(),
                granted: !waited.contains(&(*oid, mode.clone())),
            })
            .collect();
        out.sort();
        out
    }

    fn relation_name(&self, oid: u32) -> String {
        self.before_tables
            .relations
            .iter()
            .find(|r| r.oid == oid)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("oid {oid}"))
    }

    fn drain_notices(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(n) = self.notices.try_recv() {
            out.push(n.message().to_string());
        }
        out
    }

    /// Sets the runner's timeouts (pgcalm migrations) and reads the `lock_timeout` the
    /// statement will run with.
    async fn prepare(
        &self,
        s: &ScriptStatement,
        in_transaction: bool,
    ) -> Result<String, TraceError> {
        if let Some(policy) = &self.runner_policy {
            let settings = policy.settings_for(&s.kind);
            self.control(&set_sql(&settings, in_transaction)).await?;
        }
        let row = self
            .client
            .query_one("SHOW lock_timeout", &[])
            .await
            .map_err(PgError::query("reading lock_timeout"))?;
        Ok(row.get(0))
    }

    /// Runs one statement inside the open transaction and reads what it did.
    async fn in_transaction(&mut self, s: &ScriptStatement) -> Result<StatementTrace, TraceError> {
        let lock_timeout = self.prepare(s, true).await?;
        self.drain_notices();
        let started = Instant::now();
        let result = self.client.batch_execute(&s.sql).await;
        let duration = started.elapsed();
        let messages = self.drain_notices();
        let mut traced = StatementTrace::new(s, true, duration);
        traced.lock_timeout = lock_timeout;
        if let Err(e) = result {
            traced.error = Some(db_message(&e));
            traced.error_code = e.as_db_error().map(|db| db.code().code().to_string());
            return Ok(traced);
        }
        let now = self.existing_locks(
            &catalog::relation_locks(&self.monitor, self.pid).await?,
            true,
        );
        let new: BTreeSet<_> = now.difference(&self.held).cloned().collect();
        traced.locks = self.describe(&new, &HashSet::new());
        traced.held_before = self.describe(&self.held, &HashSet::new());
        self.held = now;
        self.record_schema_effects(&mut traced, &messages).await?;
        Ok(traced)
    }

    /// Runs a statement that cannot run in a transaction, sampling its locks while it
    /// runs; a helper session makes it wait long enough to be seen.
    async fn sampled(&mut self, s: &ScriptStatement) -> Result<StatementTrace, TraceError> {
        let lock_timeout = self.prepare(s, false).await?;
        self.drain_notices();
        let mut holder = Some(self.hold_existing_tables().await?);
        let mut seen: BTreeSet<(u32, String)> = BTreeSet::new();
        let mut waited: HashSet<(u32, String)> = HashSet::new();
        let started = Instant::now();
        let result = {
            let fut = self.client.batch_execute(&s.sql);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = tokio::time::sleep(Duration::from_millis(2)) => {
                        let locks = catalog::relation_locks(&self.monitor, self.pid).await?;
                        for l in &locks {
                            if self.existing.contains_key(&l.oid) {
                                seen.insert((l.oid, l.mode.clone()));
                                if !l.granted {
                                    waited.insert((l.oid, l.mode.clone()));
                                }
                            }
                        }
                        // Seen waiting (its locks sampled just above), or taking long: let it
                        // go. Once let go, whether it waits no longer matters: no query.
                        if holder.is_some()
                            && (started.elapsed() > Duration::from_secs(2)
                                || catalog::session(&self.monitor, self.pid)
                                    .await?
                                    .is_some_and(|a| a.wait_event_type.as_deref() == Some("Lock")))
                        {
                            holder = None;
                        }
                    }
                }
            }
        };
        drop(holder);
        let duration = started.elapsed();
        let messages = self.drain_notices();
        let mut traced = StatementTrace::new(s, false, duration);
        traced.sampled = true;
        traced.lock_timeout = lock_timeout;
        traced.locks = self.describe(&seen, &waited);
        if let Err(e) = result {
            traced.error = Some(db_message(&e));
            traced.error_code = e.as_db_error().map(|db| db.code().code().to_string());
            return Ok(traced);
        }
        self.record_schema_effects(&mut traced, &messages).await?;
        Ok(traced)
    }

    /// A session with an old snapshot and ACCESS SHARE on every existing table: a
    /// CONCURRENTLY build or drop waits for it (holding its own locks), so the sampler
    /// sees them. Dropping the client ends the session and lets the statement go on.
    async fn hold_existing_tables(&self) -> Result<Client, TraceError> {
        let holder = self
            .target
            .with_application_name("pgcalm trace (holder)")
            .connect()
            .await?;
        let relations = |kinds: &[char]| -> Vec<String> {
            self.before_tables
                .relations
                .iter()
                .filter(|r| kinds.contains(&r.kind))
                .map(|r| qualified(&r.name))
                .collect()
        };
        let tables = relations(&['r', 'p']);
        let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ; ");
        if !tables.is_empty() {
            sql.push_str(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE; ",
                tables.join(", ")
            ));
        }
        // LOCK TABLE refuses a materialized view; reading it takes the same lock.
        for view in relations(&['m']) {
            sql.push_str(&format!("SELECT FROM {view} LIMIT 0; "));
        }
        sql.push_str("SELECT 1");
        holder.batch_execute(&sql).await.map_err(PgError::query(
            "opening the trace's snapshot-holding session",
        ))?;
        Ok(holder)
    }

    /// Diffs the schema against the one after the previous statement.
    async fn record_schema_effects(
        &mut self,
        traced: &mut StatementTrace,
        messages: &[String],
    ) -> Result<(), TraceError> {
        let now = catalog::schema_snapshot(&self.client).await?;
        let last = &self.last;
        for r in &now.relations {
            if !self.existing.contains_key(&r.oid) || !matches!(r.kind, 'r' | 'm') {
                continue;
            }
            if let Some(prev) = last.relations.iter().find(|p| p.oid == r.oid)
                && prev.relfilenode != r.relfilenode
            {
                traced.rewrites.push(r.name.clone());
            }
        }
        for m in messages {
            if let Some(table) = quoted_after(m, "verifying table ") {
                let name = self.qualify_table(&table);
                if !traced.scans.contains(&name) {
                    traced.scans.push(name);
                }
            }
        }
        for c in &now.constraints {
            if !self.existing.contains_key(&c.table_oid) {
                continue;
            }
            let prev = last
                .constraints
                .iter()
                .find(|p| p.table_oid == c.table_oid && p.name == c.name);
            let added = prev.is_none();
            let validated_now = c.validated && prev.is_some_and(|p| !p.validated);
            if added || validated_now {
                traced.constraints.push(ConstraintChange {
                    table: c.table.clone(),
                    name: c.name.clone(),
                    kind: constraint_kind(c.kind),
                    validated: c.validated,
                    added,
                });
            }
        }
        // An index on a partitioned table has no storage: nothing is built on the parent
        // (`ON ONLY` builds nothing at all); its partitions' indexes are the builds.
        let partitioned = |oid| now.relations.iter().any(|r| r.oid == oid && r.kind == 'p');
        for i in &now.indexes {
            // New by oid and by name: a rewrite rebuilds the table's indexes under new
            // oids, and `ADD PRIMARY KEY USING INDEX` renames one.
            if self.existing.contains_key(&i.table_oid)
                && !partitioned(i.table_oid)
                && !last
                    .indexes
                    .iter()
                    .any(|p| p.name == i.name || p.oid == i.oid)
            {
                traced.indexes.push(IndexBuilt {
                    index: i.name.clone(),
                    table: i.table.clone(),
                    valid: i.valid,
                });
            }
        }
        for c in &now.columns {
            if !self.existing.contains_key(&c.table_oid) || !c.not_null {
                continue;
            }
            if last
                .columns
                .iter()
                .any(|p| p.table_oid == c.table_oid && p.name == c.name && !p.not_null)
            {
                let short = c.table.rsplit('.').next().unwrap_or(&c.table);
                let proof = format!(
                    "existing constraints on column \"{short}.{}\" are sufficient",
                    c.name
                );
                traced.not_null.push(NotNullSet {
                    table: c.table.clone(),
                    column: c.name.clone(),
                    proven_by_constraint: messages.iter().any(|m| m.starts_with(&proof)),
                });
            }
        }
        self.last = now;
        Ok(())
    }

    /// `large_email` -> `public.large_email` (the existing table of that name).
    fn qualify_table(&self, name: &str) -> String {
        self.before_tables
            .relations
            .iter()
            .find(|r| r.name.rsplit('.').next() == Some(name))
            .map(|r| r.name.clone())
            .unwrap_or_else(|| name.to_string())
    }
}

/// `verifying table "t"` -> `t`.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('"')?;
    rest.strip_suffix('"').map(str::to_string)
}

/// `public.t` -> `"public"."t"`.
pub(crate) fn qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote_ident(s), quote_ident(t)),
        None => quote_ident(name),
    }
}

fn kind_name(kind: char) -> &'static str {
    match kind {
        'r' => "table",
        'p' => "partitioned table",
        'm' => "materialized view",
        'i' | 'I' => "index",
        'S' => "sequence",
        _ => "relation",
    }
}

fn constraint_kind(kind: char) -> &'static str {
    match kind {
        'p' => "primary key",
        'u' => "unique",
        'f' => "foreign key",
        'c' => "check",
        'x' => "exclusion",
        _ => "constraint",
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}
