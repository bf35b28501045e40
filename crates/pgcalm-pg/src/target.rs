//! Where the database is and how to reach it: a typed connection target built from
//! `DATABASE_URL` or from the embedded cluster's port, with a display form that never
//! shows the password. Every connection of the workspace is opened here (or through
//! [`Target::tls`] by a pool), with the target's `sslmode` (see [`crate::tls`]).

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, CancelToken, Client, Config, Socket, error::DbError};

use crate::error::{ConnectFailure, PgError};
use crate::tls::{self, RootCerts, SslMode, SslParams, TlsConnector, TlsSettings};

/// A connection not yet driven (see [`Target::open`]).
pub type Connection =
    tokio_postgres::Connection<Socket, <TlsConnector as MakeTlsConnect<Socket>>::Stream>;

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
    tls: Tls,
}

/// The TLS settings and the connector built from them once (roots loaded once), shared
/// by the clones of a target.
#[derive(Clone)]
struct Tls {
    settings: TlsSettings,
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.settings.fmt(f)
    }
}

impl Tls {
    fn new(settings: TlsSettings) -> Result<Self, PgError> {
        let connector = settings.connector()?;
        Ok(Self {
            settings,
            connector,
        })
    }
}

impl Target {
    /// The embedded cluster on `127.0.0.1:port`, user `postgres`, no password yet
    /// ([`crate::Cluster::target`] adds the cluster's). Plain connections: the server
    /// listens on loopback only and has no certificate.
    pub fn embedded(port: u16, dbname: &str) -> Self {
        let mut config = Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .dbname(dbname)
            .application_name("pgcalm")
            .ssl_mode(SslMode::Disable.driver_mode());
        Self {
            config,
            origin: Origin::Embedded,
            tls: Tls::new(TlsSettings::disabled())
                .expect("a connector without roots needs no files"),
        }
    }

    /// A server named by a URL or `key=value` string (e.g. `DATABASE_URL`). The
    /// database defaults to [`DEFAULT_DATABASE`] when the string names none.
    /// `sslmode` and `sslrootcert` work as in libpq (default `prefer`; `PGSSLMODE` and
    /// `PGSSLROOTCERT` when the string names none); the roots are loaded here, so a
    /// missing root file is an error before any connection.
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        let (rest, mut given) = tls::take_ssl_params(url).map_err(PgError::BadUrl)?;
        given.mode = given.mode.or_else(|| std::env::var("PGSSLMODE").ok());
        given.root_cert = given
            .root_cert
            .or_else(|| std::env::var("PGSSLROOTCERT").ok());
        let settings =
            TlsSettings::resolve(given, tls::default_root_file()).map_err(PgError::BadUrl)?;
        let mut config: Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::BadUrl(error_chain(&e)))?;
        config.ssl_mode(settings.mode().driver_mode());
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
            tls: Tls::new(settings)?,
        })
    }

    /// Where this target came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The driver configuration (for pools, with [`Target::tls`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TLS connector for this target's `sslmode` and roots: what a pool built from
    /// [`Target::config`] must connect with.
    pub fn tls(&self) -> TlsConnector {
        self.tls.connector.clone()
    }

    /// The `sslmode` in effect.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.settings.mode()
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

    /// The same target with a password (kept out of `Debug`, [`Target::masked_url`] and
    /// errors; handed to child processes by [`Target::libpq_env`]).
    pub fn with_password(mut self, password: &str) -> Self {
        self.config.password(password);
        self
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
        let mut query = Vec::new();
        let SslParams { mode, root_cert } = self.tls.settings.explicit();
        if mode.is_some() {
            query.push(format!("sslmode={}", self.ssl_mode()));
        }
        if let Some(root) = root_cert {
            let root = percent_encoding::utf8_percent_encode(root, QUERY_VALUE);
            query.push(format!("sslrootcert={root}"));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        format!(
            "postgresql://{}{password}@{host}:{}/{}{query}",
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
        env.push(("PGSSLMODE", self.ssl_mode().to_string()));
        match self.tls.settings.explicit().root_cert.as_deref() {
            Some("system") => env.push(("PGSSLROOTCERT", "system".into())),
            Some(_) => {
                if let Some(RootCerts::File(path)) = self.tls.settings.roots() {
                    env.push(("PGSSLROOTCERT", path.display().to_string()));
                }
            }
            None => {}
        }
        env
    }

    /// Connects; the connection is driven on a background task. Errors name host and
    /// port, never the password.
    pub async fn connect(&self) -> Result<Client, PgError> {
        let (client, connection) = self.open().await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Connects and hands back the connection for the caller to drive (e.g. in a
    /// `select!`, to notice a connection that dies mid-work).
    pub async fn open(&self) -> Result<(Client, Connection), PgError> {
        self.config
            .connect(self.tls())
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Asks the server to cancel the query running on the session `token` came from
    /// (`Client::cancel_token`), over this target's TLS settings.
    pub async fn cancel_query(&self, token: &CancelToken) -> Result<(), PgError> {
        token
            .cancel_query(self.tls())
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Connects and returns the server's NOTICE/WARNING messages on a channel: the
    /// migration runner shows them beside the statement that raised them.
    pub async fn connect_with_notices(
        &self,
    ) -> Result<(Client, mpsc::UnboundedReceiver<DbError>), PgError> {
        let (client, mut connection) = self.open().await?;
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
        match admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(self.dbname())))
            .await
        {
            Ok(()) => Ok(true),
            // Another process created it between the check and here (two `up`s at once).
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
                Ok(false)
            }
            Err(e) => Err(PgError::query(format!(
                "creating database {}",
                self.dbname()
            ))(e)),
        }
    }

    fn unreachable(&self, e: tokio_postgres::Error) -> PgError {
        match tls::classify(&e) {
            Some(tls::TlsFailure::NotOffered) => {
                return PgError::TlsNotOffered {
                    host: self.host(),
                    port: self.port(),
                    mode: self.ssl_mode(),
                };
            }
            Some(tls::TlsFailure::Rejected(cert)) => {
                let settings = &self.tls.settings;
                let (reason, fix) = tls::explain(settings, &self.host(), &cert);
                return PgError::TlsRejected {
                    host: self.host(),
                    port: self.port(),
                    mode: self.ssl_mode(),
                    roots: settings
                        .roots()
                        .map_or_else(|| "no roots".into(), |r| r.to_string()),
                    reason,
                    fix,
                };
            }
            None => {}
        }
        let cause = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => error_chain(&e),
        };
        let failure = ConnectFailure::of(&e);
        let fix = match (failure, &self.origin) {
            (ConnectFailure::AuthFailed, Origin::Embedded) => {
                "the embedded server refused the password in its cluster directory's pgpass \
                 file; restore the file `pgcalm up` wrote (or use the cluster as the user who \
                 ran `pgcalm up`)"
            }
            (ConnectFailure::AuthFailed, Origin::External) => {
                "check the user and password in DATABASE_URL"
            }
            (_, Origin::Embedded) => {
                "check that the server runs and accepts TCP connections there; `pgcalm up` \
                 starts the embedded server"
            }
            (_, Origin::External) => {
                "check that the server runs and accepts TCP connections there; DATABASE_URL \
                 names it"
            }
        };
        PgError::Unreachable {
            host: self.host(),
            port: self.port(),
            dbname: self.dbname().to_string(),
            cause,
            failure,
            fix: fix.to_string(),
        }
    }
}

/// An error and its sources, joined by ": " (the driver's top message alone says little,
/// e.g. "invalid connection string").
fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// What a URL query value must escape.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'#')
    .add(b'&')
    .add(b'%')
    .add(b'+')
    .add(b'=');

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
        let with = Target::embedded(5555, "x").with_password("pw1234567");
        assert_eq!(
            with.masked_url(),
            "postgresql://postgres:****@127.0.0.1:5555/x"
        );
        assert!(!format!("{with:?}").contains("pw1234567"));
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
