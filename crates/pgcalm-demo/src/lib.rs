//! pgcalm-demo: the demo application pgcalm migrates under load.
//!
//! Owns:
//! - [`seed`]: fills `small_email` / `large_email` (10M rows in seconds: binary `COPY`
//!   over parallel connections, ids reserved up front, committed in batches, cancellable).
//! - [`serve`]: the demo HTTP API (the Django peer's views) that probes and the lab watch
//!   while migrations run; JSON errors, 503 while the database is away, recovery on its
//!   own, graceful shutdown.
//!
//! Depends on `pgcalm-pg` only (connections, the catalog's identity sequence); the
//! experiments that run migrations against this app are `pgcalm-lab`'s.
//!
//! Architecture invariant: this crate never prints. Progress and request logs reach the
//! caller through callbacks ([`seed::SeedEvent`], [`serve::RequestLog`]); errors are typed
//! ([`seed::SeedError`], [`serve::ServeError`]).
//!
//! ```no_run
//! # async fn demo(target: &pgcalm_pg::Target) -> Result<(), Box<dyn std::error::Error>> {
//! use pgcalm_demo::{seed, serve};
//! let opts = seed::SeedOptions { large_count: 1_000_000, ..Default::default() };
//! let report = seed::seed(target, &opts, &|_| {}, Default::default()).await?;
//! assert_eq!(report.large_rows, 1_000_000);
//! let server = serve::Server::bind(target, serve::ServeOptions::default()).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod seed;
pub mod serve;
mod utc;

pub use utc::format_utc;
