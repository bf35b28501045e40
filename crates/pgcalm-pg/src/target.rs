//! Where the database is and how to reach it: a typed connection target built from
//! `DATABASE_URL` or from the embedded cluster's port, with a display form that never
//! shows the password.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::config::Host;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, error::DbError};

use crate::error::PgError;

/// The database pgcalm works on by default (the seed's name).
pub const DEFAULT_DATABASE: &str = "risky_migrations";

/// Where a target came from; decides what `status` can say and what `up` may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// pgcalm's own cluster on this loopback port.
    Embedded,
    /// A server named by `DATABASE_URL`.
    External,
}

/// A PostgreSQL database to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    config: Config,
    origin: Origin,
}

impl Target {
    /// The embedded cluster on `127.0.0.1:port`, user `postgres` (trust auth).
    pub fn embedded(port: u16, dbname: &str) -> Self {
        let mut config = Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .dbname(dbname)
            .application_name("pgcalm");
        Self {
            config,
            origin: Origin::Embedded,
        }
    }

    /// A server named by a URL or `key=value` string (e.g. `DATABASE_URL`). The
    /// database defaults to [`DEFAULT_DATABASE`] when the string names none.
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        let mut config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::BadUrl(e.to_string()))?;
        if config.get_dbname().is_none() {
            config.dbname(DEFAULT_DATABASE);
        }
        if config.get_user().is_none() {
            config.user(std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
        }
        if config.get_application_name().is_none() {
            config.application_name("pgcalm");
        }
        Ok(Self {
            config,
            origin: Origin::External,
        })
    }

    /// Where this target came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The driver configuration (for pools and other crates).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Database name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or(DEFAULT_DATABASE)
    }

    /// User name.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// First host, printable.
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }

    /// First port (5432 when none was given).
    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// The same server, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut t = self.clone();
        t.config.dbname(dbname);
        t
    }

    /// The same target with another `application_name` (shown in `pg_stat_activity`).
    pub fn with_application_name(&self, name: &str) -> Self {
        let mut t = self.clone();
        t.config.application_name(name);
        t
    }

    /// A URL for display and for tools: the password, if any, is replaced by `****`.
    pub fn masked_url(&self) -> String {
        let password = if self.config.get_password().is_some() {
            ":****"
        } else {
            ""
        };
        let host = self.host();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!(
            "postgresql://{}{password}@{host}:{}/{}",
            self.user(),
            self.port(),
            self.dbname()
        )
    }

    /// The environment variables that point `psql` (or any libpq tool) at this target,
    /// so the password travels in `PGPASSWORD`, never on a command line.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host()),
            ("PGPORT", self.port().to_string()),
            ("PGUSER", self.user().to_string()),
            ("PGDATABASE", self.dbname().to_string()),
        ];
        if let Some(pw) = self.config.get_password() {
            env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
        }
        env
    }

    /// Connects; the connection is driven on a background task. Errors name host and
    /// port, never the password.
    pub async fn connect(&self) -> Result<Client, PgError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Connects and returns the server's NOTICE/WARNING messages on a channel: the
    /// migration runner shows them beside the statement that raised them.
    pub async fn connect_with_notices(
        &self,
    ) -> Result<(Client, mpsc::UnboundedReceiver<DbError>), PgError> {
        let (client, mut connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.unreachable(e))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(msg) = messages.next().await {
                match msg {
                    Ok(AsyncMessage::Notice(notice)) => {
                        let _ = tx.send(notice);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Ok((client, rx))
    }

    /// Asks the server to cancel the statement running on the session `token` belongs
    /// to (a cancel request on a connection of its own, as psql's Ctrl-C). The server
    /// answers nothing: the statement fails with SQLSTATE 57014 on its own connection, or
    /// has already ended. Errors name host and port.
    pub async fn cancel_query(&self, token: &tokio_postgres::CancelToken) -> Result<(), PgError> {
        token
            .cancel_query(NoTls)
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Creates the database on the server if it does not exist (connecting to the
    /// `postgres` maintenance database). Returns true when it was created.
    pub async fn ensure_database(&self) -> Result<bool, PgError> {
        let admin = self.with_dbname("postgres").connect().await?;
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&self.dbname()],
            )
            .await
            .map_err(PgError::query("checking whether the database exists"))?
            .is_some();
        if exists {
            return Ok(false);
        }
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(self.dbname())))
            .await
            .map_err(PgError::query(format!(
                "creating database {}",
                self.dbname()
            )))?;
        Ok(true)
    }

    fn unreachable(&self, e: tokio_postgres::Error) -> PgError {
        let cause = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                msg
            }
        };
        let hint = match self.origin {
            Origin::Embedded => "; `pgcalm up` starts the embedded server".to_string(),
            Origin::External => "; DATABASE_URL names it".to_string(),
        };
        PgError::Unreachable {
            host: self.host(),
            port: self.port(),
            dbname: self.dbname().to_string(),
            cause,
            hint,
        }
    }
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_password_in_urls() {
        let t = Target::from_url("postgres://app:s3cret@db.example:6543/shop").unwrap();
        assert_eq!(t.masked_url(), "postgresql://app:****@db.example:6543/shop");
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "Debug must not leak the password"
        );
        let kv = Target::from_url("host=h user=u password=pw dbname=d").unwrap();
        assert_eq!(kv.masked_url(), "postgresql://u:****@h:5432/d");
        assert!(!kv.masked_url().contains("pw"));
    }

    #[test]
    fn defaults_database_name() {
        let t = Target::from_url("postgres://u@h").unwrap();
        assert_eq!(t.dbname(), DEFAULT_DATABASE);
        assert_eq!(
            Target::embedded(5555, "x").masked_url(),
            "postgresql://postgres@127.0.0.1:5555/x"
        );
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
