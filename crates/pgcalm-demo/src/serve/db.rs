//! Pooled connections for requests: prepared statements cached per connection, and a
//! guard that cancels a query whose request was dropped mid-flight.

use deadpool_postgres::{Object, Pool};
use pgcalm_pg::TlsConnector;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::error::{ApiError, ServeError};

/// A connection checked out for one request.
///
/// While a query is in flight the checkout is "armed": if it is dropped in that state
/// (request timeout, client gone, shutdown), the query is cancelled on the server and the
/// connection is taken out of the pool instead of being handed, still busy, to the next
/// request. Otherwise it goes back to the pool as usual.
pub(crate) struct Checkout {
    conn: Option<Object>,
    armed: bool,
    /// The pool's TLS settings, for the cancel request.
    tls: TlsConnector,
}

impl Checkout {
    /// Takes a connection from the pool (opening one if needed).
    pub(crate) async fn get(pool: &Pool, tls: &TlsConnector) -> Result<Checkout, ApiError> {
        let conn = pool.get().await.map_err(|e| ApiError::from_pool(&e))?;
        Ok(Checkout {
            conn: Some(conn),
            armed: false,
            tls: tls.clone(),
        })
    }

    /// Runs a prepared (and per-connection cached) statement.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ApiError> {
        let conn = self.conn.as_ref().expect("checkout holds a connection");
        self.armed = true;
        let result = async {
            let statement = conn.prepare_cached(sql).await?;
            match conn.query(&statement, params).await {
                // A column changed type under a cached statement (a lab scenario does
                // that): forget it, prepare again, retry once. Nothing ran yet.
                Err(e) if is_stale_plan(&e) => {
                    conn.statement_cache.remove(sql, &[]);
                    let statement = conn.prepare_cached(sql).await?;
                    conn.query(&statement, params).await
                }
                other => other,
            }
        }
        .await;
        self.armed = false;
        result.map_err(|e| ApiError::from_db(&e))
    }
}

fn is_stale_plan(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
        && e.as_db_error().is_some_and(|db| {
            db.message()
                .contains("cached plan must not change result type")
        })
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        let client = Object::take(conn);
        let token = client.cancel_token();
        let tls = self.tls.clone();
        // Drop can run outside a runtime only if the runtime itself is gone; then the
        // connection dies with it anyway.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = token.cancel_query(tls).await;
                drop(client);
            });
        }
    }
}

/// Whether the demo tables answer (the server's start-up hint).
pub(crate) async fn check_tables(pool: &Pool, tls: &TlsConnector) -> Result<(), ServeError> {
    let unavailable = |e: ApiError| ServeError::Database(e.log_text());
    let mut conn = Checkout::get(pool, tls).await.map_err(unavailable)?;
    for table in ["small_email", "large_email"] {
        conn.query(&format!("SELECT 1 FROM {table} LIMIT 0"), &[])
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}
