//! Typed errors of `pgcalm-pg`. Every message says what happened and what to do next,
//! and none contains a password.

use std::path::PathBuf;

/// Everything that can go wrong while managing or talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No directory with `initdb` and `pg_ctl` was found.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; searched: {searched}\n  \
         fix: install them with `apt-get install -y postgresql` (Debian/Ubuntu: package \
         postgresql-15 or newer), or point PG_BIN at the directory that holds initdb, \
         or set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound {
        /// The directories that were looked at, in order.
        searched: String,
    },

    /// The binaries in a data directory's major version are not available.
    #[error(
        "data directory {data_dir} was created by PostgreSQL {data_major}, but the server \
         binaries found are PostgreSQL {bin_major} ({bindir})\n  \
         fix: install PostgreSQL {data_major} (`apt-get install -y postgresql-{data_major}`) or \
         point PG_BIN at its bin directory; to upgrade the data use pg_upgrade; to throw the \
         data away and start fresh run `pgcalm down --volumes` (deletes all data)"
    )]
    VersionMismatch {
        /// The cluster's data directory.
        data_dir: PathBuf,
        /// Major version recorded in `PG_VERSION`.
        data_major: u32,
        /// Major version of the binaries found.
        bin_major: u32,
        /// Where those binaries are.
        bindir: PathBuf,
    },

    /// A program could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// `pg_ctl --version` printed something unexpected.
    #[error("could not read the PostgreSQL version from {program}: {output:?}")]
    BadVersion {
        /// The program asked.
        program: String,
        /// What it printed.
        output: String,
    },

    /// A server program exited with an error.
    #[error("{step} failed ({status}):\n{output}{hint}")]
    Command {
        /// What pgcalm was doing (e.g. "initdb").
        step: String,
        /// Exit status.
        status: String,
        /// Its stderr/stdout, trimmed.
        output: String,
        /// Extra advice, possibly empty.
        hint: String,
    },

    /// The recorded port is used by another program.
    #[error(
        "port {port} on 127.0.0.1 is already in use by another program, so the embedded \
         PostgreSQL cannot start there\n  fix: stop that program, or choose another port with \
         `pgcalm up --port <PORT>` (it is remembered in {state_file})"
    )]
    PortTaken {
        /// The port.
        port: u16,
        /// Where pgcalm remembers the port.
        state_file: PathBuf,
    },

    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("creating", "reading", ...).
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The cluster directory exists but cannot be used.
    #[error("{0}")]
    Unusable(String),

    /// A cluster directory holds something pgcalm did not create (`pgcalm up`).
    #[error(
        "refusing to use {path} for the embedded cluster: it is not empty and was not \
         created by pgcalm (no PGCALM_CLUSTER file in it; it holds {found}); nothing was \
         changed\n  fix: point --data-dir (or PGCALM_DATA_DIR, `[database] data_dir`) at a \
         new or empty directory, where pgcalm creates the cluster"
    )]
    ForeignDir {
        /// The directory.
        path: PathBuf,
        /// A few of its entries.
        found: String,
    },

    /// A directory to delete was not created by pgcalm (`pgcalm down --volumes`).
    #[error(
        "refusing to delete {path}: it was not created by pgcalm (no PGCALM_CLUSTER file in \
         it; it holds {found}); nothing was deleted\n  fix: check --data-dir / \
         PGCALM_DATA_DIR; `pgcalm down --volumes` deletes only cluster directories pgcalm \
         created, anything else is yours to delete"
    )]
    NotDeletable {
        /// The directory.
        path: PathBuf,
        /// A few of its entries.
        found: String,
    },

    /// Another process holds the cluster's lock (creating, starting or deleting it).
    #[error(
        "another pgcalm up is creating or starting the cluster in {root} (pid {pid})\n  \
         fix: wait for it to finish, then run the command again"
    )]
    Busy {
        /// The cluster directory.
        root: PathBuf,
        /// The holder's pid, as its lock file says (or "unknown").
        pid: String,
    },

    /// The embedded cluster's password file exists but cannot be read.
    #[error(
        "cannot read the embedded server's password file {path}: {cause}\n  fix: run \
         pgcalm as the user who ran `pgcalm up` (the file is theirs, mode 0600), or set \
         DATABASE_URL to connect otherwise"
    )]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not a source: said once).
        cause: std::io::Error,
    },

    /// The server could not be reached or refused the login. Never carries the password.
    #[error(
        "cannot connect to PostgreSQL at {host}:{port} (database {dbname}): {cause}\n  fix: {fix}"
    )]
    Unreachable {
        /// Host (or socket directory).
        host: String,
        /// Port.
        port: u16,
        /// Database name.
        dbname: String,
        /// The driver's message (which never includes the password).
        cause: String,
        /// Why, in the terms `pgcalm status` reports.
        failure: ConnectFailure,
        /// What to do about it.
        fix: String,
    },

    /// The server answered "no TLS" while the sslmode requires TLS.
    #[error(
        "the server at {host}:{port} does not accept TLS connections, and sslmode={mode} \
         requires TLS\n  fix: turn TLS on in the server (ssl = on in postgresql.conf, with \
         ssl_cert_file and ssl_key_file), or use sslmode=prefer to allow an unencrypted \
         connection"
    )]
    TlsNotOffered {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The sslmode in effect.
        mode: crate::tls::SslMode,
    },

    /// The server's certificate failed the check the sslmode asks for.
    #[error(
        "refusing the server at {host}:{port} (sslmode={mode}, {roots}): {reason}\n  fix: {fix}"
    )]
    TlsRejected {
        /// Host, as the certificate was checked against it.
        host: String,
        /// Port.
        port: u16,
        /// The sslmode in effect.
        mode: crate::tls::SslMode,
        /// Where the trusted roots came from.
        roots: String,
        /// Why (unknown issuer, name mismatch, expired).
        reason: String,
        /// What to change.
        fix: String,
    },

    /// The trusted root certificates could not be loaded.
    #[error(
        "cannot load {roots}: {cause}\n  fix: point sslrootcert at a readable PEM file \
         holding the CA certificate that signed the server's certificate, or use \
         sslmode=require to encrypt without checking the certificate"
    )]
    TlsRoots {
        /// Where the roots were to come from.
        roots: String,
        /// Why they could not be used.
        cause: String,
    },

    /// `DATABASE_URL` could not be parsed.
    #[error("DATABASE_URL is not a valid PostgreSQL connection string: {0}")]
    BadUrl(String),

    /// A query failed.
    #[error("{context}: {source}")]
    Query {
        /// What the query was for.
        context: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// No PgBouncer binary (`pgcalm up --pooler`).
    #[error(
        "PgBouncer (pgbouncer) not found; searched: {searched}\n  fix: install the Debian \
         package pgbouncer (`./dev.sh setup` installs it, or `apt-get install -y pgbouncer`), \
         or point PGCALM_PGBOUNCER at the pgbouncer binary"
    )]
    PoolerNotFound {
        /// The paths that were looked at, in order.
        searched: String,
    },

    /// The standby started but does not stream from the primary.
    #[error(
        "the replica in {dir} (127.0.0.1:{port}) is not streaming from the primary after \
         {waited_secs} s; the last lines of its log {log}:\n{log_tail}\n  fix: {fix}"
    )]
    ReplicaNotStreaming {
        /// The replica's directory.
        dir: PathBuf,
        /// Its port.
        port: u16,
        /// How long pgcalm waited.
        waited_secs: u64,
        /// Its server log.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
        /// What to do.
        fix: String,
    },

    /// The directory of a part beside the server (the replica, the pooler) holds
    /// something pgcalm did not create.
    #[error(
        "refusing to {action} {path}: it was not created by pgcalm for the {part} (no \
         {marker} file in it; it holds {found}); nothing was changed\n  fix: move it out of \
         the way (pgcalm uses and deletes only what it created), then run the command again"
    )]
    ForeignPartDir {
        /// "use" or "delete".
        action: &'static str,
        /// "replica" or "pooler".
        part: &'static str,
        /// The directory.
        path: PathBuf,
        /// The marker file pgcalm writes there.
        marker: &'static str,
        /// A few of its entries.
        found: String,
    },

    /// The port a part (the replica, the pooler) listened on before is in use.
    #[error(
        "port {port} on 127.0.0.1, where the {part} listened before, is in use by another \
         program\n  fix: stop that program, or delete {remembered_in} and the next `pgcalm up` \
         picks a free port"
    )]
    PartPortTaken {
        /// "replica" or "pooler".
        part: &'static str,
        /// The port.
        port: u16,
        /// The file that remembers it.
        remembered_in: PathBuf,
    },

    /// The server (or a pooler in front of it) answered a query in a way PostgreSQL
    /// never does (no row where one is always returned).
    #[error("{0}")]
    UnexpectedAnswer(String),

    /// The table asked for does not exist.
    #[error(
        "table {0} does not exist\n  fix: check the name (schema-qualify it if it is not on the search_path)"
    )]
    NoSuchTable(String),
}

/// Why a connection failed: what `pgcalm status` tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// Nothing listens at the address (connection refused).
    Refused,
    /// The server refused the login: wrong or missing password, unknown role, no
    /// `pg_hba.conf` rule.
    AuthFailed,
    /// Anything else (timeout, unknown host, TLS, a server error).
    Other,
}

impl ConnectFailure {
    /// Classifies a driver error from a connection attempt.
    pub fn of(e: &tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            // PgBouncer refuses a login with 08P01 and its own words
            // ("SASL authentication failed", "password authentication failed").
            let pooler_refused = *code == SqlState::PROTOCOL_VIOLATION
                && db.message().contains("authentication failed");
            return if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || pooler_refused
            {
                Self::AuthFailed
            } else {
                Self::Other
            };
        }
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return Self::Refused;
            }
            // The driver's own words when the server asks for a password none was given.
            if s.to_string() == "password missing" {
                return Self::AuthFailed;
            }
            source = s.source();
        }
        Self::Other
    }
}

impl PgError {
    /// Why a connection failed, when this is a connection failure.
    pub fn connect_failure(&self) -> Option<ConnectFailure> {
        match self {
            PgError::Unreachable { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// Wraps a driver error with what the query was for.
    pub fn query(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| PgError::Query { context, source }
    }

    /// Wraps an I/O error with the action and path.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PgError::Io {
            action,
            path,
            source,
        }
    }
}
