//! pgcalm-trace: run a migration on a throwaway database and record what it really does.
//!
//! Owns: copying the schema to a scratch database, executing a migration statement by
//! statement, and diffing the catalog and `pg_locks` around each statement so reviewers
//! see the locks actually taken, not the ones a rule guesses.
//!
//! Architecture invariant: catalog SQL is borrowed from `pgcalm-pg`; this crate only
//! orchestrates and compares.
//!
//! Status: arrives with the trace issue.
