//! The scheduler: request `k` to every target starts at `start + k * interval`, each in
//! its own task, so a hung request never delays the next one.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::error::ProbeError;
use crate::sample::{ErrorKind, Outcome, Sample};
use crate::summary::ProbeReport;
use crate::target::{ProbeTarget, check_targets};

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Endpoints, each probed once per interval.
    pub targets: Vec<ProbeTarget>,
    /// Time between two requests to one target (default 1 s).
    pub interval: Duration,
    /// Time after which a request counts as timed out (default 3 s).
    pub timeout: Duration,
    /// Reuse connections between requests; by default every request opens a fresh
    /// connection, like curl in a loop, so a server that stops accepting shows.
    pub keep_alive: bool,
    /// Allow targets that are not loopback.
    pub allow_remote: bool,
}

impl ProbeConfig {
    /// The defaults for these targets: 1 s interval, 3 s timeout, fresh connections.
    pub fn new(targets: Vec<ProbeTarget>) -> Self {
        Self {
            targets,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            keep_alive: false,
            allow_remote: false,
        }
    }
}

/// When a run ends: whichever comes first. With neither a duration nor a count, only
/// cancellation ends it.
#[derive(Debug, Clone, Default)]
pub struct StopWhen {
    /// No request is started after this much time.
    pub duration: Option<Duration>,
    /// Requests per target.
    pub count: Option<u64>,
    /// Ends the run now: requests in flight are dropped and not counted.
    pub cancel: CancellationToken,
}

impl StopWhen {
    /// Runs for `duration`, then waits for the requests in flight (at most a timeout).
    pub fn after(duration: Duration) -> Self {
        Self {
            duration: Some(duration),
            ..Self::default()
        }
    }

    /// Sends `count` requests per target, then waits for them.
    pub fn count(count: u64) -> Self {
        Self {
            count: Some(count),
            ..Self::default()
        }
    }
}

/// A configured probe, ready to run.
#[derive(Debug, Clone)]
pub struct Probe {
    config: Arc<ProbeConfig>,
    client: reqwest::Client,
}

/// A probe running in its own task ([`Probe::spawn`]).
#[derive(Debug)]
pub struct RunningProbe {
    /// Every sample as it completes.
    pub samples: mpsc::UnboundedReceiver<Sample>,
    /// Cancel to end the run early (in-flight requests are dropped).
    pub cancel: CancellationToken,
    handle: JoinHandle<ProbeReport>,
}

impl RunningProbe {
    /// Waits for the run to end by itself and returns its report. Samples not read
    /// from `samples` are still counted in the report.
    pub async fn finish(self) -> ProbeReport {
        self.handle.await.expect("the probe task does not panic")
    }

    /// Cancels the run and returns the report of what completed.
    pub async fn stop(self) -> ProbeReport {
        self.cancel.cancel();
        self.finish().await
    }
}

impl Probe {
    /// Checks the configuration (loopback rule, which resolves host names; names;
    /// non-zero interval and timeout) and builds the HTTP client, which connects to the
    /// addresses the names were checked at.
    pub async fn new(config: ProbeConfig) -> Result<Self, ProbeError> {
        let checked = check_targets(&config.targets, config.allow_remote).await?;
        if config.interval.is_zero() || config.timeout.is_zero() {
            return Err(ProbeError::BadConfig(
                "the interval and the timeout must be longer than 0 (e.g. 1s and 3s)".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pgcalm-probe/", env!("CARGO_PKG_VERSION")));
        if !config.keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        for (name, addrs) in &checked.pinned {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        let client = builder
            .build()
            .map_err(|e| ProbeError::Client(e.to_string()))?;
        Ok(Self {
            config: Arc::new(config),
            client,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Runs until `stop`, calling `on_sample` for every request as it completes (in
    /// completion order), and returns the summary.
    pub async fn run(&self, stop: StopWhen, mut on_sample: impl FnMut(&Sample)) -> ProbeReport {
        let config = &self.config;
        let start = Instant::now();
        let start_wall = SystemTime::now();
        let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
        let mut in_flight = JoinSet::new();
        let mut samples = Vec::new();
        let mut cancelled = false;
        let mut tick: u64 = 0;
        let deadline = stop.duration.map(|d| start + d);
        loop {
            let next = start + config.interval * u32::try_from(tick).unwrap_or(u32::MAX);
            let more = stop.count.is_none_or(|c| tick < c) && deadline.is_none_or(|d| next < d);
            if !more {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.cancel.cancelled() => {
                    cancelled = true;
                    break;
                }
                Some(sample) = rx.recv() => {
                    on_sample(&sample);
                    samples.push(sample);
                }
                _ = tokio::time::sleep_until(next.into()) => {
                    for index in 0..config.targets.len() {
                        let request = Request {
                            client: self.client.clone(),
                            config: config.clone(),
                            index,
                            seq: tick,
                            start,
                            start_wall,
                        };
                        let tx = tx.clone();
                        in_flight.spawn(async move {
                            let _ = tx.send(request.send().await);
                        });
                    }
                    tick += 1;
                    // Finished tasks only hold their (already sent) sample; reap them.
                    while in_flight.try_join_next().is_some() {}
                }
            }
        }
        drop(tx);
        if cancelled {
            in_flight.abort_all();
        }
        loop {
            tokio::select! {
                biased;
                _ = stop.cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    in_flight.abort_all();
                }
                sample = rx.recv() => match sample {
                    Some(sample) => {
                        on_sample(&sample);
                        samples.push(sample);
                    }
                    None => break,
                }
            }
        }
        let ms = |d: Duration| d.as_millis() as u64;
        ProbeReport {
            started_at_ms: ms(start_wall.duration_since(UNIX_EPOCH).unwrap_or_default()),
            duration_ms: ms(start.elapsed()),
            interval_ms: ms(config.interval),
            timeout_ms: ms(config.timeout),
            keep_alive: config.keep_alive,
            cancelled,
            targets: Vec::new(),
        }
        .summarize(&config.targets, &samples)
    }

    /// Runs in a new task; samples arrive on [`RunningProbe::samples`] as they complete
    /// and the report when it ends. For the lab, which probes while a migration runs.
    pub fn spawn(&self, stop: StopWhen) -> RunningProbe {
        let (tx, samples) = mpsc::unbounded_channel();
        let cancel = stop.cancel.clone();
        let probe = self.clone();
        let handle = tokio::spawn(async move {
            probe
                .run(stop, |s| {
                    let _ = tx.send(s.clone());
                })
                .await
        });
        RunningProbe {
            samples,
            cancel,
            handle,
        }
    }
}

/// One scheduled request.
struct Request {
    client: reqwest::Client,
    config: Arc<ProbeConfig>,
    index: usize,
    seq: u64,
    start: Instant,
    start_wall: SystemTime,
}

impl Request {
    async fn send(self) -> Sample {
        let target = &self.config.targets[self.index];
        let sent = Instant::now();
        let offset = sent - self.start;
        let started_at_ms = (self.start_wall + offset)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let exchange = async {
            let response = self
                .client
                .request(target.method.clone(), target.url.clone())
                .send()
                .await
                .map_err(|e| (classify(&e), describe(e), None))?;
            let status = response.status().as_u16();
            // The whole body counts: a server that sends headers and then stalls is down.
            response
                .bytes()
                .await
                .map_err(|e| (ErrorKind::Body, describe(e), Some(status)))?;
            Ok::<u16, (ErrorKind, String, Option<u16>)>(status)
        };
        let result = tokio::time::timeout(self.config.timeout, exchange).await;
        let latency_ms = sent.elapsed().as_secs_f64() * 1000.0;
        let (outcome, error, status, detail) = match result {
            Err(_) => (
                Outcome::Timeout,
                None,
                None,
                Some(format!(
                    "no answer within {} ms",
                    self.config.timeout.as_millis()
                )),
            ),
            Ok(Ok(status)) if status >= 500 => (
                Outcome::Error,
                Some(ErrorKind::Http5xx),
                Some(status),
                Some(format!("HTTP {status}")),
            ),
            Ok(Ok(status)) if status >= 400 => (
                Outcome::Error,
                Some(ErrorKind::Http4xx),
                Some(status),
                Some(format!("HTTP {status}")),
            ),
            Ok(Ok(status)) => (Outcome::Ok, None, Some(status), None),
            Ok(Err((kind, detail, status))) => (Outcome::Error, Some(kind), status, Some(detail)),
        };
        Sample {
            target: target.name.clone(),
            target_index: self.index,
            seq: self.seq,
            started_at_ms,
            offset_ms: offset.as_secs_f64() * 1000.0,
            latency_ms: if outcome == Outcome::Timeout {
                self.config.timeout.as_secs_f64() * 1000.0
            } else {
                latency_ms
            },
            outcome,
            error,
            status,
            detail,
        }
    }
}

/// Sorts a transport error into a kind; a refused connection is the server being down.
fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_connect() {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return ErrorKind::ConnectRefused;
            }
            source = s.source();
        }
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Body
    } else {
        ErrorKind::Other
    }
}

/// The error and its causes on one line, without the URL (the target names it).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
