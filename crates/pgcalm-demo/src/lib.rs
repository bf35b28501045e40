//! pgcalm-demo: the demo application pgcalm migrates under load.
//!
//! Owns:
//! - the seed ([`seed`]): fills `small_email` / `large_email` (10M rows in seconds:
//!   binary `COPY` over parallel connections, ids reserved up front, committed in
//!   batches, cancellable).
//! - the demo HTTP API ([`Server`]: the Django peer's views) that probes and the lab
//!   watch while migrations run; JSON errors, 503 while the database is away, recovery
//!   on its own (following the database to a new port or password when told how to find
//!   it, [`ServeOptions::retarget`]), graceful shutdown; and, for a server run in the
//!   background, its record ([`ServeRecord`]) and [`stop_background`].
//!
//! Depends on `pgcalm-pg` only (connections, the catalog's identity sequence); the
//! experiments that run migrations against this app are `pgcalm-lab`'s.
//!
//! Architecture invariant: this crate never prints. Progress and request logs reach the
//! caller through callbacks ([`SeedEvent`], [`RequestLog`]); errors are typed
//! ([`SeedError`], [`ServeError`]).
//!
//! ```no_run
//! # async fn demo(target: &pgcalm_pg::Target) -> Result<(), Box<dyn std::error::Error>> {
//! use pgcalm_demo::{SeedOptions, ServeOptions, Server, seed};
//! let opts = SeedOptions { large_count: 1_000_000, ..Default::default() };
//! let report = seed(target, &opts, &|_| {}, Default::default()).await?;
//! assert_eq!(report.large_rows, 1_000_000);
//! let server = Server::bind(target, ServeOptions::default()).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies

mod seed;
mod serve;
mod utc;

// The seed.
pub use seed::{
    DEFAULT_BATCH_SIZE, DEFAULT_LARGE_COUNT, DEFAULT_SMALL_COUNT, DEFAULT_STREAMS, SeedError,
    SeedEvent, SeedOptions, SeedReport, seed,
};
// The demo HTTP API.
pub use serve::{
    DEFAULT_BODY_LIMIT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_POOL_SIZE, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, Method, RequestLog, RequestLogger,
    Retarget, ServeError, ServeOptions, Server, Version,
};
// The API in the background (`pgcalm serve --detach`): its record, stopping it.
pub use serve::{
    LOCK_FILE, LOG_FILE, RECORD_FILE, ServeRecord, StoppedServe, delete_background_dir,
    stop_background,
};
// Timestamps of the request log (and the lab's results).
pub use utc::format_utc;

/// The demo tables' migration (`migrations/demoapp/0001_initial.sql`, which is this
/// crate's `migrations/demoapp` through a symlink at the repository root), embedded so
/// the lab and the tests work outside the repository.
pub const DEMOAPP_INITIAL_MIGRATION: &str = include_str!("../migrations/demoapp/0001_initial.sql");
