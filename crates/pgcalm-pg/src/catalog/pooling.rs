//! Whether a connection keeps its server session, or may get one per transaction (a
//! pooler such as PgBouncer in transaction mode in front of the server). What the migration
//! runner asks before it runs anything: session state (`SET`, advisory locks) set on a
//! connection through a transaction pooler lands on whichever server connection the
//! transaction got, and stays there for the next client of that server connection.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::PgError;

/// How long a query may wait for a server connection before the wait itself counts as
/// evidence of a pooler: a server answers `SELECT pg_backend_pid()` on an open
/// connection at once.
const SERVER_WAIT: Duration = Duration::from_secs(5);

/// What [`session_pooling`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pooling {
    /// Each connection has its own server session from the start and keeps it (a direct
    /// connection, or a proxy that binds one at login): session state lasts until the
    /// connection closes.
    Session,
    /// A pooler that gives a connection a server session only when it sends a query, and
    /// no transaction of it was seen on a second server session: session pooling, or
    /// transaction pooling that happened to hand out the same one. Session state may not
    /// last.
    Unproven {
        /// What showed it.
        evidence: String,
    },
    /// Transactions of a connection ran on different server sessions (transaction
    /// pooling): session state does not follow the connection.
    Transaction {
        /// What showed it, for messages: `transactions of one connection ran on server
        /// sessions 4242 and 4243`.
        evidence: String,
    },
}

impl Pooling {
    /// Whether session state may not follow the connection (anything but
    /// [`Pooling::Session`]).
    pub fn may_lose_session(&self) -> bool {
        !matches!(self, Pooling::Session)
    }

    /// What showed a pooler, if one was found.
    pub fn evidence(&self) -> Option<&str> {
        match self {
            Pooling::Session => None,
            Pooling::Unproven { evidence } | Pooling::Transaction { evidence } => Some(evidence),
        }
    }
}

/// Finds out whether `first` and `second`, two connections to the same address, keep
/// their server sessions. `second` must be fresh (no query sent yet) and have connected
/// with the `application_name` `second_name`, unique to it. Simple query protocol only,
/// so it is safe through any pooler; a handful of round trips.
///
/// Two tests. Birth: directly, `second` has had a backend named `second_name` since it
/// connected; a pooler gives it a server session only with its first query, so `first`
/// finds none (a deterministic sign of a pooler, in either mode). Then backend pids:
/// `second` opens a transaction, which pins a server session to it, and `first` asks for
/// its pid again, and `second` after its commit. Directly, each connection sees its own
/// pid every time and the two differ; through transaction pooling the pooler hands the
/// session `first` just released to `second` (PgBouncer reuses the most recent one), or
/// `first` lands on another one, or waits for one (a pool of one): transaction pooling,
/// proven.
pub async fn session_pooling(
    first: &Client,
    second: &Client,
    second_name: &str,
) -> Result<Pooling, PgError> {
    let context = "checking whether the connection keeps its server session (a pooler in between)";
    let transaction = |evidence: String| Ok(Pooling::Transaction { evidence });
    let born_with_backend = one_value(
        first,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = {}",
            literal(second_name)
        ),
        context,
    )
    .await?
        != "0";
    let a1 = backend_pid(first, "SELECT pg_backend_pid()", context).await?;
    let b1 = backend_pid(second, "BEGIN; SELECT pg_backend_pid()", context).await?;
    if b1 == a1 {
        commit(second, context).await?;
        return transaction(format!(
            "two connections ran on the same server session (pid {a1})"
        ));
    }
    let a2 = tokio::time::timeout(
        SERVER_WAIT,
        backend_pid(first, "SELECT pg_backend_pid()", context),
    )
    .await;
    commit(second, context).await?;
    let a2 = match a2 {
        Ok(pid) => pid?,
        Err(_) => {
            return transaction(format!(
                "a query waited over {}s for a server connection while another connection \
                 held one",
                SERVER_WAIT.as_secs()
            ));
        }
    };
    if a2 != a1 {
        return transaction(format!(
            "transactions of one connection ran on server sessions {a1} and {a2}"
        ));
    }
    let b2 = backend_pid(second, "SELECT pg_backend_pid()", context).await?;
    if b2 != b1 {
        return transaction(format!(
            "transactions of one connection ran on server sessions {b1} and {b2}"
        ));
    }
    if born_with_backend {
        return Ok(Pooling::Session);
    }
    Ok(Pooling::Unproven {
        evidence: "a new connection had no server session of its own until it sent a query"
            .to_string(),
    })
}

/// An SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The first value of the first row of `sql` (simple protocol), as text.
async fn one_value(client: &Client, sql: &str, context: &str) -> Result<String, PgError> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(PgError::query(context.to_string()))?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| PgError::UnexpectedAnswer(format!("{context}: `{sql}` returned no row")))
}

async fn commit(client: &Client, context: &str) -> Result<(), PgError> {
    client
        .batch_execute("COMMIT")
        .await
        .map_err(PgError::query(context.to_string()))
}

/// The backend pid `sql` (simple protocol) returns.
async fn backend_pid(client: &Client, sql: &str, context: &str) -> Result<i32, PgError> {
    let pid = one_value(client, sql, context).await?;
    pid.parse().map_err(|_| {
        PgError::UnexpectedAnswer(format!("{context}: `{sql}` returned {pid:?}, not a pid"))
    })
}
