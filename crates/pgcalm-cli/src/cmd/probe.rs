//! `pgcalm probe`: the seed's curl loop, measured. A line per request
//! (`10:42:07 - ✓ API responded (4 ms)`) in the order the requests were sent, a summary
//! table per target on exit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use pgcalm_migrate::parse_duration;
use pgcalm_probe::{
    ErrorKind, Outcome, Probe, ProbeConfig, ProbeReport, ProbeTarget, Sample, SampleWriter,
    StopWhen, TargetSummary,
};

use crate::output;
use crate::settings::Settings;

/// Flags of `pgcalm probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Endpoints: `[NAME=][METHOD ]URL`, e.g. `list=http://127.0.0.1:8001/list_large/`
    /// or `'add=POST http://127.0.0.1:8001/add_large/'`.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Time between two requests to a target (e.g. 1s, 200ms); requests start on this
    /// schedule even while earlier ones hang.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// A request without a complete answer after this long counts as blocked/timeout.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests per target.
    #[arg(long)]
    pub count: Option<u64>,
    /// Write every sample to this file: .csv, or .jsonl / .ndjson / .json for JSON lines.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Reuse connections (default: a fresh connection per request, like curl).
    #[arg(long)]
    pub keep_alive: bool,
    /// Allow targets that are not on this machine (loopback only by default).
    #[arg(long)]
    pub allow_remote: bool,
}

/// Probes until --duration, --count or Ctrl-C, then prints the summary.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let targets = args
        .targets
        .iter()
        .map(|t| ProbeTarget::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let config = ProbeConfig {
        targets,
        interval: args.interval,
        timeout: args.timeout,
        keep_alive: args.keep_alive,
        allow_remote: args.allow_remote,
    };
    let probe = Probe::new(config).await?;
    let mut out = args.out.as_deref().map(SampleWriter::create).transpose()?;
    let mut out_error = None;

    let stop = StopWhen {
        duration: args.duration,
        count: args.count,
        ..StopWhen::default()
    };
    crate::signals::cancel_on_interrupt(stop.cancel.clone());

    let lines = Lines {
        json: settings.json(),
        colour: output::stdout_colour(),
        named: probe.config().targets.len() > 1,
    };
    let mut emit = |sample: &Sample| {
        lines.print(sample);
        if let Some(w) = out.as_mut()
            && out_error.is_none()
            && let Err(e) = w.write(sample)
        {
            out_error = Some(e);
        }
    };
    let mut in_order = SendOrder::new(probe.config().targets.len());
    let report = probe
        .run(stop, |sample| in_order.push(sample.clone(), &mut emit))
        .await;
    // Requests dropped by Ctrl-C never answer: the lines held behind them go out now.
    in_order.flush(&mut emit);
    if let Some(e) = out_error {
        return Err(e.into());
    }
    if let Some(w) = out {
        w.finish()?;
    }
    if settings.json() {
        output::print_json(&report)
    } else {
        say!("\n{}", summary_table(&report));
        if let Some(path) = &args.out {
            say!("Samples written to {}", path.display());
        }
        Ok(())
    }
    .context("printing the probe summary")
}

/// Samples in the order their requests were sent (tick, then target), as the seed's curl
/// loop printed them: a request that answers late holds back the lines of the requests
/// sent after it until it answers or times out, so the times on the lines never go back.
struct SendOrder {
    targets: usize,
    /// The next (tick, target) to print.
    next: (u64, usize),
    waiting: std::collections::BTreeMap<(u64, usize), Sample>,
}

impl SendOrder {
    fn new(targets: usize) -> Self {
        SendOrder {
            targets: targets.max(1),
            next: (0, 0),
            waiting: std::collections::BTreeMap::new(),
        }
    }

    /// Takes a finished request; emits it and every one held behind it that is now due.
    fn push(&mut self, sample: Sample, emit: &mut impl FnMut(&Sample)) {
        self.waiting
            .insert((sample.seq, sample.target_index), sample);
        while let Some(sample) = self.waiting.remove(&self.next) {
            emit(&sample);
            self.next = if self.next.1 + 1 == self.targets {
                (self.next.0 + 1, 0)
            } else {
                (self.next.0, self.next.1 + 1)
            };
        }
    }

    /// Emits what is still held, in send order.
    fn flush(&mut self, emit: &mut impl FnMut(&Sample)) {
        for sample in std::mem::take(&mut self.waiting).into_values() {
            emit(&sample);
        }
    }
}

/// How sample lines are printed.
struct Lines {
    json: bool,
    colour: bool,
    named: bool,
}

impl Lines {
    fn print(&self, s: &Sample) {
        if self.json {
            return;
        }
        say!("{}", self.line(s));
    }

    /// `10:42:07 - ✓ list: API responded (4 ms)`, in the seed's wording.
    fn line(&self, s: &Sample) -> String {
        let (mark, colour) = match s.outcome {
            Outcome::Ok => ("✓", "\x1b[32m"),
            _ => ("✗", "\x1b[31m"),
        };
        let mark = if self.colour {
            format!("{colour}{mark}\x1b[0m")
        } else {
            mark.to_string()
        };
        let name = if self.named {
            format!("{}: ", s.target)
        } else {
            String::new()
        };
        let what = match (s.outcome, s.error) {
            (Outcome::Ok, _) => format!("API responded ({})", ms(s.latency_ms)),
            (Outcome::Timeout, _) => format!("API blocked/timeout ({})", ms(s.latency_ms)),
            (Outcome::Error, Some(ErrorKind::Http5xx | ErrorKind::Http4xx)) => {
                format!(
                    "API error: HTTP {} ({})",
                    s.status.unwrap_or_default(),
                    ms(s.latency_ms)
                )
            }
            (Outcome::Error, kind) => format!(
                "API error: {}",
                kind.map(ErrorKind::label).unwrap_or("other")
            ),
        };
        format!("{} - {mark} {name}{what}", output::clock(s.started_at_ms))
    }
}

/// Milliseconds, as whole numbers above 10 ms.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// The per-target summary as a psql-style table.
fn summary_table(report: &ProbeReport) -> String {
    let title = format!(
        "Probe summary ({:.1} s, every {} ms, timeout {} ms, {} connections{})",
        report.duration_ms as f64 / 1000.0,
        report.interval_ms,
        report.timeout_ms,
        if report.keep_alive {
            "kept-alive"
        } else {
            "fresh"
        },
        if report.cancelled {
            ", interrupted"
        } else {
            ""
        }
    );
    let rows: Vec<Vec<String>> = report.targets.iter().map(summary_row).collect();
    output::psql_table(
        Some(&title),
        &[
            "target",
            "requests",
            "ok",
            "timeouts",
            "errors",
            "p50",
            "p90",
            "p99",
            "max",
            "longest without an answer",
        ],
        &rows,
    )
}

fn summary_row(t: &TargetSummary) -> Vec<String> {
    let errors = if t.errors == 0 {
        "0".to_string()
    } else {
        let kinds: Vec<String> = ErrorKind::ALL
            .iter()
            .filter_map(|k| {
                t.errors_by_kind
                    .get(k.key())
                    .map(|n| format!("{n} {}", k.label()))
            })
            .collect();
        format!("{} ({})", t.errors, kinds.join(", "))
    };
    let latency = |f: fn(&pgcalm_probe::LatencySummary) -> f64| {
        t.latency
            .as_ref()
            .map(|l| ms(f(l)))
            .unwrap_or_else(|| "-".into())
    };
    let outage = match &t.longest_outage {
        None => "none".to_string(),
        Some(o) => format!(
            "{:.1} s, {} to {}{} ({} failed)",
            o.duration_ms as f64 / 1000.0,
            output::clock(o.start_ms),
            output::clock(o.end_ms),
            if o.recovered { "" } else { ", not recovered" },
            o.failed_requests
        ),
    };
    vec![
        t.name.clone(),
        t.requests.to_string(),
        t.ok.to_string(),
        t.timeouts.to_string(),
        errors,
        latency(|l| l.p50_ms),
        latency(|l| l.p90_ms),
        latency(|l| l.p99_ms),
        latency(|l| l.max_ms),
        outage,
    ]
}
