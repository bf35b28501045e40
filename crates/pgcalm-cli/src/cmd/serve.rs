//! `pgcalm serve`: the seed's web app on :8001 (`/list_large/` and friends), in the
//! foreground or (`--detach`) in the background until `pgcalm down`. Its log is one
//! line per request, like Django's runserver.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pgcalm_demo::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_SIZE, DEFAULT_PORT, LOG_FILE,
    RequestLog, ServeOptions, ServeRecord, Server, format_utc,
};
use tokio::sync::mpsc;

use crate::background;
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
    /// Run in the background (pid and log in the project's .pgcalm/serve/) until
    /// `pgcalm down`; `pgcalm status` shows it.
    #[arg(long, short)]
    pub detach: bool,
    /// Log only the requests that failed with a database or driver error (with that
    /// error; the client only gets a generic message). By default every request gets a
    /// line on stderr, like Django's runserver (JSON lines with --format json).
    #[arg(long, short)]
    pub quiet: bool,
    /// Every request is logged by default; kept so that scripts using it still run.
    #[arg(long, short, hide = true)]
    pub verbose: bool,
    /// Where to write the record of a background serve (set by --detach).
    #[arg(long = "background-record", hide = true, value_name = "DIR")]
    pub background_record: Option<PathBuf>,
    /// Keep running the query of a request whose client gave up (or that timed out),
    /// holding its connection until the query ends, like the seed's Django app on sync
    /// workers. By default such a query is cancelled and its connection freed.
    #[arg(long)]
    pub keep_abandoned_queries: bool,
}

impl Args {
    /// These flags again, for the background serve (`--detach` left out).
    fn for_child(&self) -> Vec<OsString> {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut args: Vec<String> = vec![
            format!("--port={}", self.port),
            format!("--bind={}", self.bind),
            format!("--pool-size={}", self.pool_size),
            format!("--request-timeout={}", ms(self.request_timeout)),
            format!("--body-limit={}", self.body_limit),
            format!("--header-timeout={}", ms(self.header_timeout)),
            format!("--idle-timeout={}", ms(self.idle_timeout)),
        ];
        args.extend(
            self.max_connections
                .map(|n| format!("--max-connections={n}")),
        );
        args.extend(self.quiet.then(|| "--quiet".to_string()));
        args.extend(
            self.keep_abandoned_queries
                .then(|| "--keep-abandoned-queries".to_string()),
        );
        args.into_iter().map(OsString::from).collect()
    }
}

/// Serves until SIGINT/SIGTERM, then finishes the requests in flight; with `--detach`,
/// starts that in the background and returns once it listens.
pub(crate) async fn run(ctx: &Settings, args: Args) -> anyhow::Result<()> {
    if args.detach {
        let detached = background::start(ctx, args.for_child())?;
        say!("{}", background::describe(&detached, ctx.cwd()));
        return Ok(());
    }
    // Not `ctx.target()`: the server starts while the database is down and recovers
    // when it comes up (on another port too: `retarget` finds it again).
    let target = ctx.target_unchecked()?;
    let log_task = spawn_request_log(ctx.json(), !args.quiet);
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
        send_cancel_requests: true,
        retarget: ctx.retarget(),
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
    if let Some(dir) = &args.background_record {
        ServeRecord {
            pid: std::process::id(),
            url: format!("http://{addr}/"),
            log: dir.join(LOG_FILE),
            started_at: format_utc(SystemTime::now()),
        }
        .write(dir)?;
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
    if let Some(dir) = &args.background_record {
        ServeRecord::remove(dir, std::process::id());
    }
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

/// One request: `[02/Dec/2026 10:00:00] "GET /lookup/?email=... HTTP/1.1" 200 12ms`, Django
/// runserver's line (local time) with the time taken where it shows the size, and the
/// error behind a failure after it; or a JSON object.
fn format_request(at: SystemTime, log: &RequestLog, json: bool) -> String {
    let ms = log.latency.as_secs_f64() * 1000.0;
    if json {
        let mut line = serde_json::json!({
            "ts": format_utc(at),
            "method": log.method.as_str(),
            "uri": log.uri,
            "status": log.status,
            "latency_ms": (ms * 1000.0).round() / 1000.0,
        });
        if let Some(error) = &log.error {
            line["error"] = error.as_str().into();
        }
        return line.to_string();
    }
    let took = match ms < 10.0 {
        true => format!("{ms:.1}ms"),
        false => format!("{ms:.0}ms"),
    };
    let mut line = format!(
        "[{}] \"{} {} {:?}\" {} {took}",
        runserver_time(at),
        log.method,
        log.uri,
        log.version,
        log.status
    );
    if let Some(error) = &log.error {
        line.push_str(": ");
        line.push_str(error);
    }
    line
}

/// `02/Dec/2026 10:00:00` in local time, as Django's runserver writes it.
fn runserver_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return format_utc(at);
        }
        tm
    };
    format!(
        "{:02}/{}/{} {:02}:{:02}:{:02}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
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
    fn request_log_lines_are_runservers_or_json() {
        let log = RequestLog {
            method: axum_method(),
            uri: "/lookup/?email=user1@example.com".into(),
            version: pgcalm_demo::Version::HTTP_11,
            status: 200,
            latency: Duration::from_micros(1500),
            error: None,
        };
        // TZ is not set in tests run by cargo here; the shape is what matters.
        let line = format_request(UNIX_EPOCH, &log, false);
        let (when, rest) = line.split_once("] ").unwrap();
        assert_eq!(when.len(), "[01/Jan/1970 00:00:00".len(), "{line}");
        assert!(when.contains("/19") || when.contains("/1970 "), "{line}");
        assert_eq!(
            rest,
            "\"GET /lookup/?email=user1@example.com HTTP/1.1\" 200 1.5ms"
        );
        let slow = RequestLog {
            latency: Duration::from_millis(1234),
            ..log.clone()
        };
        assert!(format_request(UNIX_EPOCH, &slow, false).ends_with(" 200 1234ms"));
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
                r#"HTTP/1.1" 500 1.5ms: db error: ERROR: relation "large_email" does not exist"#
            ),
            "{line}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&format_request(UNIX_EPOCH, &failed, true)).unwrap();
        assert_eq!(v["error"], failed.error.unwrap().as_str());
    }

    #[test]
    fn a_detached_serve_gets_the_same_flags() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let given = Cli::parse_from([
            "serve",
            "--detach",
            "--port",
            "0",
            "--request-timeout",
            "2s",
            "--quiet",
            "--max-connections",
            "9",
        ])
        .args;
        let mut again = vec![OsString::from("serve")];
        again.extend(given.for_child());
        let child = Cli::parse_from(again).args;
        assert!(!child.detach);
        assert_eq!(
            format!(
                "{:?}",
                Args {
                    detach: true,
                    ..child
                }
            ),
            format!("{given:?}")
        );
    }

    fn axum_method() -> pgcalm_demo::Method {
        pgcalm_demo::Method::GET
    }
}
