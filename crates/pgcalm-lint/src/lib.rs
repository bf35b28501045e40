//! pgcalm-lint: static analysis of migration SQL.
//!
//! Owns: the statement summary built from PostgreSQL's own grammar (`pg_query`), the
//! rules that decide whether a statement is risky on a live table (one rule per module),
//! their diagnostics with source spans, and the suggested safe rewrites.
//!
//! Architecture invariant: this crate does no I/O and never prints; the CLI renders the
//! diagnostics it returns.
//!
//! Status: the rules arrive with the lint issue; the crate exists so the workspace map in
//! ARCHITECTURE.md holds from the first commit.
