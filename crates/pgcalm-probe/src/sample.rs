//! One request's result, and how a failure is classified.

use serde::{Deserialize, Serialize};

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx/3xx answer with its whole body within the timeout.
    Ok,
    /// No complete answer within the timeout (a blocked or hung server).
    Timeout,
    /// An answer or failure that is not a success; see [`ErrorKind`].
    Error,
}

impl Outcome {
    /// `ok` / `timeout` / `error`: the name in JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// Why a request failed without timing out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Nothing listens on the port (the server is down).
    #[serde(rename = "connect_refused")]
    ConnectRefused,
    /// Other connection failures (unreachable, reset during connect).
    #[serde(rename = "connect")]
    Connect,
    /// The server answered 5xx.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// The server answered 4xx.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// The answer's body broke off.
    #[serde(rename = "body")]
    Body,
    /// Anything else (connection closed before an answer, protocol errors).
    #[serde(rename = "other")]
    Other,
}

impl ErrorKind {
    /// Every kind, in display order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::ConnectRefused,
        ErrorKind::Connect,
        ErrorKind::Http5xx,
        ErrorKind::Http4xx,
        ErrorKind::Body,
        ErrorKind::Other,
    ];

    /// Short label (`connect refused`, `HTTP 5xx`, ...).
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Http5xx => "HTTP 5xx",
            ErrorKind::Http4xx => "HTTP 4xx",
            ErrorKind::Body => "body",
            ErrorKind::Other => "other",
        }
    }

    /// The name used in JSON and CSV (`connect_refused`, `http_5xx`, ...).
    pub fn key(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Body => "body",
            ErrorKind::Other => "other",
        }
    }
}

/// One request: which target, when it started, how long it took, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Target name.
    pub target: String,
    /// Index of the target in the probe's configuration.
    pub target_index: usize,
    /// Tick number: the request was scheduled at `start + seq * interval`.
    pub seq: u64,
    /// When the request was sent, Unix time in milliseconds.
    pub started_at_ms: u64,
    /// When the request was sent, milliseconds since the probe started.
    pub offset_ms: f64,
    /// Time to the complete answer (the timeout for timeouts), milliseconds.
    pub latency_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, for [`Outcome::Error`].
    pub error: Option<ErrorKind>,
    /// HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The error message for failures.
    pub detail: Option<String>,
}

impl Sample {
    /// Whether the request got a successful answer.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// When the request ended (or timed out), Unix time in milliseconds.
    pub fn ended_at_ms(&self) -> u64 {
        self.started_at_ms + self.latency_ms.round() as u64
    }
}
