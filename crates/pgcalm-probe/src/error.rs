//! Errors of the probe: bad targets (named, with the expected form) and sample files.

use std::path::PathBuf;

/// What went wrong setting up a probe or writing its samples.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A TARGET argument that does not parse.
    #[error(
        "target `{target}`: {why}; expected [NAME=][METHOD ]URL, e.g. list=http://127.0.0.1:8001/list_large/ or add=POST http://127.0.0.1:8001/add_large/"
    )]
    BadTarget {
        /// The argument as given.
        target: String,
        /// What is wrong with it.
        why: String,
    },
    /// A target whose host is not loopback, without `allow_remote`.
    #[error(
        "target `{target}` points at {host}, which is not loopback; probes only target loopback addresses (127.0.0.0/8, ::1, or a name resolving to them only, such as localhost) unless remote targets are allowed (--allow-remote)"
    )]
    NotLoopback {
        /// Target name.
        target: String,
        /// The host it names (and, for a name, what it resolves to).
        host: String,
    },
    /// A target's host name that does not resolve (without `allow_remote`, every name is
    /// resolved to check that it is loopback).
    #[error(
        "target `{target}`: cannot resolve {host} ({why}); give a loopback address such as 127.0.0.1, or a name that resolves to loopback only (e.g. in /etc/hosts)"
    )]
    Resolve {
        /// Target name.
        target: String,
        /// The host name.
        host: String,
        /// The resolver's answer.
        why: String,
    },
    /// Two targets with the same name.
    #[error("two targets are named `{0}`; give each a different NAME= prefix")]
    DuplicateName(String),
    /// No target at all, or a zero interval / timeout.
    #[error("{0}")]
    BadConfig(String),
    /// `--out` with an extension we do not write.
    #[error(
        "{}: unknown sample file type; use a .csv file, or .jsonl / .ndjson / .json for JSON lines",
        .0.display()
    )]
    UnknownOutFormat(PathBuf),
    /// Creating or writing the sample file failed.
    #[error("writing samples to {}: {source}", path.display())]
    Write {
        /// The sample file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
}
