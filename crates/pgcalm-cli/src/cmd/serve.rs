//! `pgcalm serve`: the seed's web app on :8001 (`/list_large/` and friends).

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pgcalm_demo::format_utc;
use pgcalm_demo::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_SIZE, DEFAULT_PORT, RequestLog,
    ServeOptions, Server,
};
use tokio::sync::mpsc;

use crate::settings::Settings;

/// Flags of `pgcalm serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, env = "PGCALM_SERVE_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address to listen on. Loopback by default; anything else exposes the demo API.
    #[arg(long, env = "PGCALM_SERVE_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Maximum database connections.
    #[arg(long, default_value_t = DEFAULT_POOL_SIZE)]
    pub pool_size: usize,
    /// Longest a request may take (e.g. 5s, 500ms); past it the answer is 504 and the
    /// query is cancelled.
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Most client connections open at once; further ones get a 503 and are closed.
    /// Default: 4096, or less when the open-file limit (raised toward its hard limit at
    /// start) cannot hold that many.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a complete request head (from connecting, or from the
    /// first byte of a later request); past it the connection is closed.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    pub header_timeout: Duration,
    /// Longest silence of a kept-alive connection between two requests; past it the
    /// connection is closed.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub idle_timeout: Duration,
    /// Log every request to stderr (logfmt; JSON lines with --format json). Requests
    /// answered 5xx because of a database or driver error are logged with that error
    /// either way (the client only gets a generic message).
    #[arg(long, short)]
    pub verbose: bool,
    /// Keep running the query of a request whose client gave up (or that timed out),
    /// holding its connection until the query ends, like the seed's Django app on sync
    /// workers. By default such a query is cancelled and its connection freed.
    #[arg(long)]
    pub keep_abandoned_queries: bool,
}

/// Serves until SIGINT/SIGTERM, then finishes the requests in flight.
pub(crate) async fn run(ctx: &Settings, args: Args) -> anyhow::Result<()> {
    // Not `ctx.target()`: the server starts while the database is down and recovers
    // when it comes up.
    let target = ctx.target_unchecked()?;
    let log_task = spawn_request_log(ctx.json(), args.verbose);
    let opts = ServeOptions {
        bind: args.bind,
        port: args.port,
        pool_size: args.pool_size,
        request_timeout: args.request_timeout,
        body_limit: args.body_limit,
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        on_request: Some(log_task.0.clone()),
        cancel_abandoned_queries: !args.keep_abandoned_queries,
        retarget: None,
    };
    let server = Server::bind(&target, opts).await?;
    let addr = server.local_addr();
    if !args.bind.is_loopback() {
        eprintln!("warning: listening on {addr}: the demo API is reachable from other machines");
    }
    say!(
        "Serving the demo app on http://{addr}/list_large/ (database {}, pool {}, request timeout {}, up to {} connections)",
        target.masked_url(),
        args.pool_size,
        pgcalm_migrate::duration::human(args.request_timeout),
        server.max_connections()
    );
    if args.max_connections.is_none() && server.max_connections() < DEFAULT_MAX_CONNECTIONS {
        eprintln!(
            "warning: at most {} connections: the open-file limit allows no more (raise it \
             with ulimit -Hn, or LimitNOFILE= for a systemd service)",
            server.max_connections()
        );
    }
    if let Err(e) = server.check_database().await {
        eprintln!(
            "warning: the database is not ready: {e}\n  requests get 503 (or 500) until it is; \
             `pgcalm up` starts and prepares it"
        );
    }
    say!("Press Ctrl-C to stop.");

    let shutdown = async {
        crate::signals::interrupted().await;
        say!("Shutting down: finishing the requests in flight (Ctrl-C again to quit now)");
        tokio::spawn(async {
            crate::signals::interrupted().await;
            std::process::exit(130);
        });
    };
    server.run(shutdown).await?;
    let (logger, task) = log_task;
    drop(logger);
    let _ = task.await;
    say!("Stopped.");
    Ok(())
}

/// The request log: requests hand their record to a channel; one task writes the lines,
/// so serving never waits on the terminal. Every request when `all`, else only those
/// with an error behind them.
fn spawn_request_log(
    json: bool,
    all: bool,
) -> (pgcalm_demo::RequestLogger, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(SystemTime, RequestLog)>();
    let task = tokio::spawn(async move {
        let mut out = std::io::BufWriter::new(std::io::stderr());
        while let Some((at, log)) = rx.recv().await {
            let _ = writeln!(out, "{}", format_request(at, &log, json));
            if rx.is_empty() {
                let _ = out.flush();
            }
        }
        let _ = out.flush();
    });
    let logger: pgcalm_demo::RequestLogger = Arc::new(move |log: RequestLog| {
        if all || log.error.is_some() {
            let _ = tx.send((SystemTime::now(), log));
        }
    });
    (logger, task)
}

fn format_request(at: SystemTime, log: &RequestLog, json: bool) -> String {
    let ts = format_utc(at);
    let ms = log.latency.as_secs_f64() * 1000.0;
    if json {
        let mut line = serde_json::json!({
            "ts": ts,
            "method": log.method.as_str(),
            "uri": log.uri,
            "status": log.status,
            "latency_ms": (ms * 1000.0).round() / 1000.0,
        });
        if let Some(error) = &log.error {
            line["error"] = error.as_str().into();
        }
        line.to_string()
    } else {
        let mut line = format!(
            "ts={ts} method={} uri={:?} status={} latency_ms={ms:.3}",
            log.method, log.uri, log.status
        );
        if let Some(error) = &log.error {
            line.push_str(&format!(" error={error:?}"));
        }
        line
    }
}

/// A duration longer than zero (`5s`, `500ms`), in the workspace's one duration syntax.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match pgcalm_migrate::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("`{s}` must be longer than 0 (e.g. 5s)")),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn timeouts_are_positive_durations() {
        assert_eq!(positive_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(positive_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(positive_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(positive_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(
            positive_duration("0s"),
            Err("`0s` must be longer than 0 (e.g. 5s)".into())
        );
        assert!(positive_duration("fast").is_err());
    }

    #[test]
    fn request_log_lines_are_logfmt_or_json() {
        let log = RequestLog {
            method: axum_method(),
            uri: "/lookup/?email=user1@example.com".into(),
            version: pgcalm_demo::Version::HTTP_11,
            status: 200,
            latency: Duration::from_micros(1500),
            error: None,
        };
        let line = format_request(UNIX_EPOCH, &log, false);
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z method=GET uri=\"/lookup/?email=user1@example.com\" status=200 latency_ms=1.500"
        );
        let v: serde_json::Value =
            serde_json::from_str(&format_request(UNIX_EPOCH, &log, true)).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"], 1.5);
        assert_eq!(v.get("error"), None);

        let failed = RequestLog {
            status: 500,
            error: Some(r#"db error: ERROR: relation "large_email" does not exist"#.into()),
            ..log
        };
        let line = format_request(UNIX_EPOCH, &failed, false);
        assert!(
            line.ends_with(
                r#"status=500 latency_ms=1.500 error="db error: ERROR: relation \"large_email\" does not exist""#
            ),
            "{line}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&format_request(UNIX_EPOCH, &failed, true)).unwrap();
        assert_eq!(v["error"], failed.error.unwrap().as_str());
    }

    fn axum_method() -> pgcalm_demo::Method {
        pgcalm_demo::Method::GET
    }
}
