//! pgcalm-trace: run a migration on a throwaway database and record what it really does.
//!
//! Owns: the scratch database ([`scratch`]: a fresh `pgcalm_trace_<random>` database on
//! the embedded cluster, a throwaway cluster, or an empty database the user names), the
//! setup before the traced file ([`script`]: the app's earlier migrations, or `--setup`
//! files for plain SQL), a few seeded rows per existing table ([`seed`]), executing the
//! traced statements one by one while reading `pg_locks` and the catalog around each
//! ([`tracer`]), and turning what was seen into findings with lint's rule names, marked
//! with who saw them: lint, trace or both ([`report`]).
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

#![warn(missing_docs)]

pub mod error;
pub mod report;
pub mod scratch;
pub mod script;
pub mod seed;
pub mod tracer;

pub use error::TraceError;
pub use report::{StatementReport, TraceReport, build_report};
pub use scratch::{ScratchDb, Server};
pub use script::{Script, ScriptStatement};
pub use tracer::{StatementTrace, Trace, TraceOptions, trace};
