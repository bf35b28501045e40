//! pgcalm-trace: run a migration on a throwaway database and record what it really does.
//!
//! Owns: the scratch database ([`Server`], [`ScratchDb`]: a fresh `pgcalm_trace_<random>`
//! database on the embedded cluster, a throwaway cluster, or an empty database the user
//! names), the setup before the traced file ([`Script`]: the app's earlier migrations,
//! or `--setup` files for plain SQL), a few seeded rows per existing table ([`Seeded`]),
//! executing the traced statements one by one while reading `pg_locks` and the catalog
//! around each ([`trace`]), and turning what was seen into findings with lint's rule
//! names ([`pgcalm_lint::RuleId`]), marked with who saw them: lint, trace or both
//! ([`build_report`]). The modules are private; what other crates use is re-exported
//! below.
//!
//! ```no_run
//! # async fn t() -> Result<(), pgcalm_trace::TraceError> {
//! use pgcalm_trace::{Script, Server, TraceOptions, trace};
//! let server = Server::start_throwaway()?;
//! let db = server.fresh_database().await?;
//! let script = Script::load("migrations/demoapp/0002_add_email_index_concurrently.sql".as_ref(), &[])?;
//! let traced = trace(db.target(), &script, &TraceOptions::default()).await?;
//! for s in &traced.statements {
//!     println!("line {}: {:?}", s.line, s.locks);
//! }
//! db.dispose().await?;
//! server.shutdown()?;
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: catalog SQL (`pg_locks`, `pg_class`, `pg_constraint`) lives in
//! `pgcalm-pg` (`catalog::trace`); this crate only orchestrates and compares. It never
//! prints.
#![cfg_attr(test, allow(unused_crate_dependencies))] // unit tests use some dev-dependencies
#![warn(missing_docs)]

mod error;
mod report;
mod scratch;
mod script;
mod seed;
mod tracer;

pub use error::TraceError;
// Where a trace runs and what it runs.
pub use scratch::{ScratchDb, Server};
pub use script::{Script, ScriptStatement};
// Running it, and what each statement did.
pub use seed::Seeded;
pub use tracer::{
    ConstraintChange, IndexBuilt, NotNullSet, ObservedLock, StatementTrace, Trace, TraceOptions,
    trace,
};
// Findings with lint's rule names, marked with who saw them.
pub use report::{StatementReport, TraceReport, build_report};
