//! One SVG timeline per scenario and form: every probe request's latency over time
//! (log axis), failures as red marks, the migration's start and end, the stretches
//! where sessions waited for locks, the index build's phases, and one availability lane
//! per endpoint. Self-contained (no fonts, scripts or links), readable without a caption.

use std::fmt::Write as _;

use crate::results::{
    FormRun, IndexBuildSample, LockWait, Outcome, RecordedSample, RunOptions, ScenarioResult,
    TimeSpan,
};

use super::format::{bytes, form_label, ms, seconds};
use super::xml_escape as esc;
use crate::verdict::HUNG_MS;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 24.0;
const PLOT_TOP: f64 = 112.0;
const PLOT_HEIGHT: f64 = 260.0;
const PHASE_TOP: f64 = 68.0;
const PHASE_HEIGHT: f64 = 18.0;
const LANE_TOP: f64 = PLOT_TOP + PLOT_HEIGHT + 56.0;
const LANE_HEIGHT: f64 = 14.0;
const LANE_STEP: f64 = 20.0;

/// Colours of the endpoints, in probe target order (colour-blind safe: Okabe–Ito).
const ENDPOINT_COLOURS: [&str; 6] = [
    "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];
/// Failures (timeouts and errors), lock waits, and index build phases.
const FAIL: &str = "#D7191C";
const SLOW: &str = "#F0A30A";
const LOCK_WAIT: &str = "#FDAE61";
/// Bars of the replica-lag and pool-waits lanes.
const METRIC: &str = "#7B3294";
const PHASE_COLOURS: [&str; 4] = ["#C6DBEF", "#9ECAE1", "#6BAED6", "#DEEBF7"];

/// Width of one character of the 12 px sans-serif labels, for fitting labels.
const CHAR_WIDTH: f64 = 6.6;
/// Height of one caption line under the lanes.
const CAPTION_LINE: f64 = 16.0;

/// Observations closer than this belong to one stretch of lock waiting (the monitor
/// samples a few times a second; a gap longer than this means the waiting stopped).
const LOCK_WAIT_GAP_MS: f64 = 1500.0;

/// The timeline of one form of one scenario, as an `<svg>` element with id
/// `timeline-<scenario>-<form key>`.
pub fn timeline_svg(options: &RunOptions, scenario: &ScenarioResult, run: &FormRun) -> String {
    let endpoints = endpoint_names(options, run);
    let phases = index_phase_stretches(&run.index_builds, run.migration.ended.rel_ms);
    let caption = phase_caption_lines(&phases, run.probe_window.start_ms);
    let metrics = metric_lanes(run);
    let captions_top = LANE_TOP + (endpoints.len() + metrics.len()) as f64 * LANE_STEP + 8.0;
    let height = captions_top + caption.len() as f64 * CAPTION_LINE + 8.0;
    let x = TimeAxis::new(run.probe_window);
    let timeout_ms = options
        .probe_targets
        .iter()
        .map(|t| t.timeout_ms)
        .max()
        .unwrap_or(0) as f64;
    let y = LatencyAxis::new(&run.samples, timeout_ms);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" id="{timeline_id}" data-scenario="{id}" data-form="{key}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12" role="img" aria-label="{label}">"#,
        timeline_id = esc(&timeline_id(scenario, run)),
        id = esc(&scenario.name),
        key = run.key(),
        label = esc(&format!(
            "{}: {}",
            scenario.title,
            form_label(run.form, run.topology)
        )),
    );
    let _ = write!(
        s,
        r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    title(&mut s, scenario, run);
    legend(&mut s, &endpoints);
    windows(&mut s, &x, run);
    lock_wait_bands(&mut s, &x, &run.lock_waits);
    axes(&mut s, &x, &y);
    if timeout_ms > 0.0 {
        let ty = y.at(timeout_ms);
        let _ = write!(
            s,
            r##"<line class="timeout-line" x1="{LEFT}" x2="{:.1}" y1="{ty:.1}" y2="{ty:.1}" stroke="#555" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">probe timeout {}</text>"##,
            WIDTH - RIGHT,
            WIDTH - RIGHT - 4.0,
            ty - 4.0,
            seconds(timeout_ms)
        );
    }
    for (i, name) in endpoints.iter().enumerate() {
        latency_series(
            &mut s,
            &x,
            &y,
            name,
            ENDPOINT_COLOURS[i % ENDPOINT_COLOURS.len()],
            &run.samples,
        );
    }
    migration_markers(&mut s, &x, run);
    phase_band(&mut s, &x, &phases);
    for (i, name) in endpoints.iter().enumerate() {
        availability_lane(&mut s, &x, i, name, &run.samples);
    }
    for (i, lane) in metrics.iter().enumerate() {
        metric_lane(&mut s, &x, endpoints.len() + i, lane);
    }
    for (i, line) in caption.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text class="phase-caption" x="{LEFT}" y="{:.1}" fill="#333">{}</text>"##,
            captions_top + (i as f64 + 0.7) * CAPTION_LINE,
            esc(line)
        );
    }
    s.push_str("</svg>");
    s
}

/// The element id of a form's timeline: `timeline-add_index-risky-shared`.
pub fn timeline_id(scenario: &ScenarioResult, run: &FormRun) -> String {
    format!("timeline-{}-{}", scenario.name, run.key())
}

/// Probe targets in configuration order, then any other endpoint the samples name.
fn endpoint_names(options: &RunOptions, run: &FormRun) -> Vec<String> {
    let mut names: Vec<String> = options
        .probe_targets
        .iter()
        .map(|t| t.name.clone())
        .collect();
    for e in run
        .endpoints
        .iter()
        .map(|e| &e.endpoint)
        .chain(run.samples.iter().map(|s| &s.endpoint))
    {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    names
}

/// Seconds since the form's probe started, mapped onto the plot's width.
struct TimeAxis {
    start_ms: f64,
    end_ms: f64,
}

impl TimeAxis {
    fn new(window: TimeSpan) -> Self {
        let end_ms = if window.end_ms > window.start_ms {
            window.end_ms
        } else {
            window.start_ms + 1000.0
        };
        TimeAxis {
            start_ms: window.start_ms,
            end_ms,
        }
    }

    fn at(&self, rel_ms: f64) -> f64 {
        let f = ((rel_ms - self.start_ms) / (self.end_ms - self.start_ms)).clamp(0.0, 1.0);
        LEFT + f * (WIDTH - LEFT - RIGHT)
    }

    /// Tick positions in seconds since the probe started: at most about 15 ticks.
    fn ticks(&self) -> Vec<f64> {
        let span_s = (self.end_ms - self.start_ms) / 1000.0;
        let step = [
            0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
        ]
        .into_iter()
        .find(|step| span_s / step <= 15.0)
        .unwrap_or(1200.0);
        (0..)
            .map(|i| i as f64 * step)
            .take_while(|t| *t <= span_s + 1e-9)
            .collect()
    }
}

/// Latency on a log10 scale, whole decades from below the fastest request to above the
/// slowest (or the timeout).
struct LatencyAxis {
    lo_exp: i32,
    hi_exp: i32,
}

impl LatencyAxis {
    fn new(samples: &[RecordedSample], timeout_ms: f64) -> Self {
        let positive = samples.iter().map(|s| s.latency_ms).filter(|v| *v > 0.0);
        let min = positive.clone().fold(f64::INFINITY, f64::min);
        let max = positive.fold(timeout_ms, f64::max);
        let lo_exp = if min.is_finite() {
            min.log10().floor() as i32
        } else {
            0
        }
        .max(-1);
        let hi_exp = if max > 0.0 {
            max.log10().ceil() as i32
        } else {
            3
        }
        .max(lo_exp + 2);
        LatencyAxis { lo_exp, hi_exp }
    }

    fn at(&self, latency_ms: f64) -> f64 {
        let v = latency_ms.max(10f64.powi(self.lo_exp)).log10();
        let f = (v - self.lo_exp as f64) / (self.hi_exp - self.lo_exp) as f64;
        PLOT_TOP + PLOT_HEIGHT - f.clamp(0.0, 1.0) * PLOT_HEIGHT
    }
}

fn title(s: &mut String, scenario: &ScenarioResult, run: &FormRun) {
    let v = &run.verdict;
    let blocked = |what: &str, b: crate::results::Blocking| {
        format!("{what} {}", super::format::level_cell(b))
    };
    let summary = format!(
        "{} · {} · migration {}",
        blocked("reads", v.reads),
        blocked("writes", v.writes),
        seconds(run.migration.wall_ms)
    );
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="20" font-size="15" font-weight="bold" fill="#222">{} — {}</text><text x="{LEFT}" y="38" fill="#444">{}</text>"##,
        esc(&scenario.title),
        form_label(run.form, run.topology),
        esc(&summary)
    );
}

fn legend(s: &mut String, endpoints: &[String]) {
    let y = 56.0;
    // Each item: a glyph drawn at its x, then its label.
    type Glyph = Box<dyn Fn(f64) -> String>;
    let mut items: Vec<(Glyph, String)> = Vec::new();
    for (i, name) in endpoints.iter().enumerate() {
        let c = ENDPOINT_COLOURS[i % ENDPOINT_COLOURS.len()];
        items.push((
            Box::new(move |x| {
                format!(r#"<circle cx="{:.1}" cy="{y}" r="4" fill="{c}"/>"#, x + 5.0)
            }),
            name.clone(),
        ));
    }
    items.push((
        Box::new(move |x| cross(x + 5.0, y, 4.5, "legend-timeout")),
        "timed out".into(),
    ));
    items.push((
        Box::new(move |x| triangle(x + 5.0, y, 5.0, "legend-error")),
        "error".into(),
    ));
    items.push((
        Box::new(move |x| format!(r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{LOCK_WAIT}" fill-opacity="0.45"/>"#, y - 5.0)),
        "lock waiters seen".into(),
    ));
    items.push((
        Box::new(move |x| format!(r##"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="#000" fill-opacity="0.06"/>"##, y - 5.0)),
        "baseline".into(),
    ));
    items.push((
        Box::new(move |x| {
            format!(
                r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#222" stroke-width="1.5" stroke-dasharray="5 3"/>"##,
                x + 5.0,
                x + 5.0,
                y - 6.0,
                y + 6.0
            )
        }),
        "migration start / end".into(),
    ));
    s.push_str(r#"<g class="legend">"#);
    let mut x = LEFT;
    for (glyph, label) in items {
        let _ = write!(
            s,
            r##"<g class="legend-item">{}<text x="{:.1}" y="{:.1}" fill="#222">{}</text></g>"##,
            glyph(x),
            x + 14.0,
            y + 4.0,
            esc(&label)
        );
        x += 26.0 + label.len() as f64 * CHAR_WIDTH;
    }
    s.push_str("</g>");
}

fn windows(s: &mut String, x: &TimeAxis, run: &FormRun) {
    let (x0, x1) = (x.at(run.baseline.start_ms), x.at(run.baseline.end_ms));
    if x1 > x0 {
        let _ = write!(
            s,
            r##"<rect class="baseline" x="{x0:.1}" y="{PLOT_TOP}" width="{:.1}" height="{PLOT_HEIGHT}" fill="#000" fill-opacity="0.06"/><text x="{:.1}" y="{:.1}" fill="#666">baseline</text>"##,
            x1 - x0,
            x0 + 4.0,
            PLOT_TOP + 14.0
        );
    }
}

fn lock_wait_bands(s: &mut String, x: &TimeAxis, waits: &[LockWait]) {
    for (i, band) in lock_wait_stretches(waits).iter().enumerate() {
        let (x0, x1) = (x.at(band.start_ms), x.at(band.end_ms));
        let w = (x1 - x0).max(4.0);
        let waiters: Vec<String> = {
            let mut v: Vec<String> = waits
                .iter()
                .filter(|w| band.contains(w.at_ms))
                .map(|w| {
                    format!(
                        "{} ({}) wants {}{}",
                        w.waiter_app,
                        w.waiter_pid,
                        w.mode,
                        w.relation
                            .as_ref()
                            .map(|r| format!(" on {r}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let _ = write!(
            s,
            r#"<rect class="lock-wait" x="{x0:.1}" y="{PLOT_TOP}" width="{w:.1}" height="{PLOT_HEIGHT}" fill="{LOCK_WAIT}" fill-opacity="0.45"><title>lock waiters seen {} to {}: {}</title></rect>"#,
            seconds(band.start_ms - x.start_ms),
            seconds(band.end_ms - x.start_ms),
            esc(&waiters.join("; "))
        );
        if i == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#A6611A">lock waiters</text>"##,
                x0 + 4.0,
                PLOT_TOP + PLOT_HEIGHT - 6.0
            );
        }
    }
}

/// Stretches of time in which the monitor saw sessions waiting for locks.
pub fn lock_wait_stretches(waits: &[LockWait]) -> Vec<TimeSpan> {
    let mut at: Vec<f64> = waits.iter().map(|w| w.at_ms).collect();
    at.sort_by(f64::total_cmp);
    let mut out: Vec<TimeSpan> = Vec::new();
    for t in at {
        match out.last_mut() {
            Some(last) if t - last.end_ms <= LOCK_WAIT_GAP_MS => last.end_ms = t,
            _ => out.push(TimeSpan {
                start_ms: t,
                end_ms: t,
            }),
        }
    }
    out
}

fn axes(s: &mut String, x: &TimeAxis, y: &LatencyAxis) {
    let bottom = PLOT_TOP + PLOT_HEIGHT;
    let right = WIDTH - RIGHT;
    for e in y.lo_exp..=y.hi_exp {
        let v = 10f64.powi(e);
        let py = y.at(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{right}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
            LEFT - 6.0,
            py + 4.0,
            decade_label(e)
        );
    }
    for t in x.ticks() {
        let px = x.at(x.start_ms + t * 1000.0);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{PLOT_TOP}" y2="{bottom}" stroke="#eee"/><line x1="{px:.1}" x2="{px:.1}" y1="{bottom}" y2="{:.1}" stroke="#333"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#333">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            trim_float(t)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{PLOT_TOP}" width="{:.1}" height="{PLOT_HEIGHT}" fill="none" stroke="#333"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222">time since the probe started (s)</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle" fill="#222">latency (ms, log scale)</text>"##,
        right - LEFT,
        (LEFT + right) / 2.0,
        bottom + 36.0,
        PLOT_TOP + PLOT_HEIGHT / 2.0
    );
}

fn decade_label(e: i32) -> String {
    match e {
        ..=-1 => format!("{} ms", 10f64.powi(e)),
        0..=2 => format!("{} ms", 10i64.pow(e as u32)),
        _ => format!("{} s", 10i64.pow(e as u32 - 3)),
    }
}

fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn latency_series(
    s: &mut String,
    x: &TimeAxis,
    y: &LatencyAxis,
    name: &str,
    colour: &str,
    samples: &[RecordedSample],
) {
    let mine: Vec<&RecordedSample> = samples.iter().filter(|p| p.endpoint == name).collect();
    if mine.is_empty() {
        return;
    }
    let _ = write!(s, r#"<g class="series" data-endpoint="{}">"#, esc(name));
    // Lines join consecutive successful requests only: a failure breaks the line, so
    // a line always means "answered, this fast".
    for run in mine
        .split(|p| p.outcome != Outcome::Ok)
        .filter(|run| run.len() > 1)
    {
        let points: Vec<String> = run
            .iter()
            .map(|p| format!("{:.1},{:.1}", x.at(p.at_ms), y.at(p.latency_ms)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.2" stroke-opacity="0.6"/>"#,
            points.join(" ")
        );
    }
    for p in &mine {
        let (px, py) = (x.at(p.at_ms), y.at(p.latency_ms));
        let tip = esc(&sample_tooltip(p, x.start_ms));
        match p.outcome {
            Outcome::Ok => {
                let _ = write!(
                    s,
                    r#"<circle class="ok" cx="{px:.1}" cy="{py:.1}" r="2.5" fill="{colour}"><title>{tip}</title></circle>"#
                );
            }
            Outcome::Timeout => {
                let _ = write!(
                    s,
                    r#"<g class="fail timeout">{}<title>{tip}</title></g>"#,
                    cross(px, py, 5.0, "")
                );
            }
            Outcome::Error => {
                let _ = write!(
                    s,
                    r#"<g class="fail error">{}<title>{tip}</title></g>"#,
                    triangle(px, py, 6.0, "")
                );
            }
        }
    }
    s.push_str("</g>");
}

fn sample_tooltip(p: &RecordedSample, start_ms: f64) -> String {
    let what = match (p.outcome, &p.error, p.status) {
        (Outcome::Ok, _, Some(status)) => format!("HTTP {status}"),
        (Outcome::Ok, _, None) => "ok".into(),
        (Outcome::Timeout, _, _) => "timed out".into(),
        (Outcome::Error, Some(kind), _) => format!("error {}", kind.key()),
        (Outcome::Error, None, Some(status)) => format!("error HTTP {status}"),
        (Outcome::Error, None, None) => "error".into(),
    };
    format!(
        "{} at {}: {}, {}",
        p.endpoint,
        seconds(p.at_ms - start_ms),
        what,
        ms(p.latency_ms)
    )
}

fn cross(cx: f64, cy: f64, r: f64, class: &str) -> String {
    format!(
        r#"<path class="{class}" d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{FAIL}" stroke-width="2.2" fill="none"/>"#,
        cx - r,
        cy - r,
        cx + r,
        cy + r,
        cx - r,
        cy + r,
        cx + r,
        cy - r
    )
}

fn triangle(cx: f64, cy: f64, r: f64, class: &str) -> String {
    format!(
        r#"<path class="{class}" d="M{cx:.1} {:.1}L{:.1} {:.1}L{:.1} {:.1}Z" fill="{FAIL}"/>"#,
        cy - r,
        cx + r,
        cy + r * 0.8,
        cx - r,
        cy + r * 0.8
    )
}

fn migration_markers(s: &mut String, x: &TimeAxis, run: &FormRun) {
    let span = run.migration.span();
    let (x0, x1) = (x.at(span.start_ms), x.at(span.end_ms));
    let bottom = PLOT_TOP + PLOT_HEIGHT;
    let line = |class: &str, px: f64| {
        format!(
            r##"<line class="{class}" x1="{px:.1}" x2="{px:.1}" y1="{PHASE_TOP}" y2="{bottom}" stroke="#222" stroke-width="1.5" stroke-dasharray="5 3"/>"##
        )
    };
    s.push_str(&line("migration-start", x0));
    s.push_str(&line("migration-end", x1));
    let failed = if run.migration.succeeded {
        ""
    } else {
        ", failed"
    };
    let start_label = format!("migration start {}", seconds(span.start_ms - x.start_ms));
    let end_label = format!(
        "end {} (took {}{failed})",
        seconds(span.end_ms - x.start_ms),
        seconds(run.migration.wall_ms)
    );
    // Above the plot: the start label left of its line, the end label right of its
    // line, so neither covers the other however short the migration; each flips to
    // the other side of its line at the chart's edges.
    let (start_w, end_w) = (
        start_label.len() as f64 * CHAR_WIDTH,
        end_label.len() as f64 * CHAR_WIDTH,
    );
    let label = |s: &mut String, px: f64, text: &str, width: f64, prefer_left: bool| {
        let left = if prefer_left {
            px - 4.0 - width >= LEFT
        } else {
            px + 4.0 + width > WIDTH - RIGHT
        };
        let (tx, anchor) = if left {
            (px - 4.0, "end")
        } else {
            (px + 4.0, "start")
        };
        let _ = write!(
            s,
            r##"<text class="migration-label" x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="#222" font-weight="bold">{}</text>"##,
            PLOT_TOP - 6.0,
            esc(text)
        );
    };
    label(s, x0, &start_label, start_w, true);
    label(s, x1, &end_label, end_w, false);
}

/// Consecutive observations of the same phase, as (phase, stretch).
pub fn index_phase_stretches(
    builds: &[IndexBuildSample],
    migration_end_ms: f64,
) -> Vec<(String, TimeSpan)> {
    let mut sorted: Vec<&IndexBuildSample> = builds.iter().collect();
    sorted.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut out: Vec<(String, TimeSpan)> = Vec::new();
    for b in sorted {
        match out.last_mut() {
            Some((phase, span)) if *phase == b.phase => span.end_ms = b.at_ms,
            _ => {
                if let Some((_, prev)) = out.last_mut() {
                    prev.end_ms = b.at_ms;
                }
                out.push((
                    b.phase.clone(),
                    TimeSpan {
                        start_ms: b.at_ms,
                        end_ms: b.at_ms,
                    },
                ));
            }
        }
    }
    // The last phase lasts until the build was last seen or the migration ended.
    if let Some((_, last)) = out.last_mut() {
        last.end_ms = last.end_ms.max(migration_end_ms);
    }
    out
}

fn phase_band(s: &mut String, x: &TimeAxis, stretches: &[(String, TimeSpan)]) {
    if stretches.is_empty() {
        return;
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">index build</text>"##,
        LEFT - 6.0,
        PHASE_TOP + 13.0
    );
    // Each phase is numbered in the band (the caption under the chart names it) and
    // also named in the band when it is wide enough.
    for (i, (phase, span)) in stretches.iter().enumerate() {
        let (x0, x1) = (x.at(span.start_ms), x.at(span.end_ms));
        let w = (x1 - x0).max(3.0);
        let _ = write!(
            s,
            r##"<rect class="index-phase" x="{x0:.1}" y="{PHASE_TOP}" width="{w:.1}" height="{PHASE_HEIGHT}" fill="{}" stroke="#fff"><title>{} ({} to {})</title></rect>"##,
            PHASE_COLOURS[i % PHASE_COLOURS.len()],
            esc(phase),
            seconds(span.start_ms - x.start_ms),
            seconds(span.end_ms - x.start_ms)
        );
        let number = (i + 1).to_string();
        let named = format!("{number} {}", short_phase(phase));
        let text = if w > named.len() as f64 * 6.0 + 6.0 {
            named
        } else if w > number.len() as f64 * 6.0 + 3.0 {
            number
        } else {
            continue;
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#08306B" font-size="11">{}</text>"##,
            x0 + 2.0,
            PHASE_TOP + 13.0,
            esc(&text)
        );
    }
}

/// `building index: scanning table` as `scanning table`.
fn short_phase(phase: &str) -> &str {
    phase.strip_prefix("building index: ").unwrap_or(phase)
}

/// The caption naming each numbered phase with its times, in lines that fit the chart.
fn phase_caption_lines(stretches: &[(String, TimeSpan)], start_ms: f64) -> Vec<String> {
    let items: Vec<String> = stretches
        .iter()
        .enumerate()
        .map(|(i, (phase, span))| {
            format!(
                "{} {} {}–{}",
                i + 1,
                short_phase(phase),
                trim_float(((span.start_ms - start_ms) / 100.0).round() / 10.0),
                seconds(span.end_ms - start_ms)
            )
        })
        .collect();
    let mut lines: Vec<String> = Vec::new();
    let max_chars = ((WIDTH - LEFT - RIGHT) / CHAR_WIDTH) as usize;
    for item in items {
        match lines.last_mut() {
            Some(line) if line.len() + 3 + item.len() <= max_chars => {
                line.push_str(" · ");
                line.push_str(&item);
            }
            _ => lines.push(if lines.is_empty() {
                format!("index build phases: {item}")
            } else {
                item
            }),
        }
    }
    lines
}

/// A lane of one figure sampled over time (the replica's lag, the pooler's waiting
/// clients): a bar per sample, as high as its value against the lane's largest.
struct MetricLane {
    /// `data-lane` and the label at the left.
    name: &'static str,
    /// (ms since the run started, value).
    points: Vec<(f64, f64)>,
    /// The largest value, in words, at the right.
    max_label: String,
}

/// The replica-lag and pool-waits lanes of a run that measured them.
fn metric_lanes(run: &FormRun) -> Vec<MetricLane> {
    let Some(t) = &run.topology_figures else {
        return Vec::new();
    };
    let mut lanes = Vec::new();
    let lag: Vec<(f64, f64)> = t
        .samples
        .iter()
        .filter_map(|s| s.replica_lag_bytes.map(|b| (s.at_ms, b as f64)))
        .collect();
    if !lag.is_empty() {
        let max = lag.iter().map(|p| p.1).fold(0.0, f64::max);
        lanes.push(MetricLane {
            name: "replica lag",
            points: lag,
            max_label: format!("max {}", bytes(max as i64)),
        });
    }
    let waiting: Vec<(f64, f64)> = t
        .samples
        .iter()
        .filter_map(|s| s.clients_waiting.map(|w| (s.at_ms, w as f64)))
        .collect();
    if !waiting.is_empty() {
        let max = waiting.iter().map(|p| p.1).fold(0.0, f64::max);
        let wait = t
            .samples
            .iter()
            .filter_map(|s| s.max_wait_ms)
            .fold(0.0, f64::max);
        lanes.push(MetricLane {
            name: "pool waiting",
            points: waiting,
            max_label: format!("max {max:.0} clients, longest wait {}", ms(wait)),
        });
    }
    lanes
}

fn metric_lane(s: &mut String, x: &TimeAxis, index: usize, lane: &MetricLane) {
    let top = LANE_TOP + index as f64 * LANE_STEP;
    let width = WIDTH - LEFT - RIGHT;
    let _ = write!(
        s,
        r##"<g class="lane metric-lane" data-lane="{n}"><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{n}</text><rect x="{LEFT}" y="{top:.1}" width="{width:.1}" height="{LANE_HEIGHT}" fill="#f2f2f2"/>"##,
        LEFT - 6.0,
        top + 11.0,
        n = esc(lane.name)
    );
    let max = lane.points.iter().map(|p| p.1).fold(0.0, f64::max);
    if max > 0.0 {
        for (i, &(at, v)) in lane.points.iter().enumerate() {
            if v <= 0.0 {
                continue;
            }
            let a = x.at(at);
            let b = lane.points.get(i + 1).map_or(a + 1.5, |n| x.at(n.0));
            let h = (v / max * LANE_HEIGHT).max(1.0);
            let _ = write!(
                s,
                r#"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{METRIC}"/>"#,
                top + LANE_HEIGHT - h,
                (b - a).max(1.5)
            );
        }
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{}</text></g>"##,
        WIDTH - RIGHT - 4.0,
        top + 11.0,
        esc(&lane.max_label)
    );
}

fn availability_lane(
    s: &mut String,
    x: &TimeAxis,
    index: usize,
    name: &str,
    samples: &[RecordedSample],
) {
    let top = LANE_TOP + index as f64 * LANE_STEP;
    let _ = write!(
        s,
        r##"<g class="lane" data-endpoint="{n}"><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{n}</text><rect x="{LEFT}" y="{top:.1}" width="{:.1}" height="{LANE_HEIGHT}" fill="#f2f2f2"/>"##,
        LEFT - 6.0,
        top + 11.0,
        WIDTH - LEFT - RIGHT,
        n = esc(name)
    );
    let mine: Vec<&RecordedSample> = samples.iter().filter(|p| p.endpoint == name).collect();
    // Each request colours the lane from when it was sent to when the next one was;
    // runs of one colour merge into one rectangle.
    let mut run: Option<(&str, f64, f64)> = None;
    let flush = |s: &mut String, run: Option<(&str, f64, f64)>| {
        if let Some((colour, a, b)) = run {
            let _ = write!(
                s,
                r#"<rect x="{a:.1}" y="{top:.1}" width="{:.1}" height="{LANE_HEIGHT}" fill="{colour}"/>"#,
                (b - a).max(1.5)
            );
        }
    };
    for (i, p) in mine.iter().enumerate() {
        let colour = match p.outcome {
            Outcome::Ok if p.latency_ms >= HUNG_MS => SLOW,
            Outcome::Ok => "#7FBF7B",
            Outcome::Timeout | Outcome::Error => FAIL,
        };
        let a = x.at(p.at_ms);
        let b = mine
            .get(i + 1)
            .map_or(x.at(p.at_ms + p.latency_ms.max(1.0)), |n| x.at(n.at_ms));
        run = match run {
            Some((c, start, _)) if c == colour => Some((c, start, b)),
            other => {
                flush(s, other);
                Some((colour, a, b))
            }
        };
    }
    flush(s, run);
    s.push_str("</g>");
    if index == 0 {
        let _ = write!(
            s,
            r##"<text x="{LEFT}" y="{:.1}" fill="#444">availability per endpoint (each request from when it was sent): <tspan fill="#3C8C38">■ ok</tspan>  <tspan fill="{SLOW}">■ ok but hung {}+</tspan>  <tspan fill="{FAIL}">■ failed or timed out</tspan></text>"##,
            LANE_TOP - 8.0,
            ms(HUNG_MS)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(at_ms: f64) -> LockWait {
        LockWait {
            at_ms,
            waiter_pid: 1,
            waiter_app: "app".into(),
            mode: "RowExclusiveLock".into(),
            relation: None,
            blocker_pids: vec![2],
            waited_ms: None,
            query: None,
        }
    }

    #[test]
    fn lock_waits_merge_into_stretches_split_by_gaps() {
        let waits = [wait(1000.0), wait(1500.0), wait(2200.0), wait(9000.0)];
        let got = lock_wait_stretches(&waits);
        assert_eq!(
            got,
            vec![
                TimeSpan {
                    start_ms: 1000.0,
                    end_ms: 2200.0
                },
                TimeSpan {
                    start_ms: 9000.0,
                    end_ms: 9000.0
                }
            ]
        );
    }

    #[test]
    fn index_phases_run_until_the_next_phase_or_the_end() {
        let sample = |at_ms, phase: &str| IndexBuildSample {
            at_ms,
            index: None,
            command: "CREATE INDEX".into(),
            phase: phase.into(),
            done: None,
            total: None,
            unit: None,
        };
        let builds = [
            sample(100.0, "scan"),
            sample(300.0, "scan"),
            sample(500.0, "sort"),
            sample(700.0, "sort"),
        ];
        let got = index_phase_stretches(&builds, 900.0);
        assert_eq!(
            got,
            vec![
                (
                    "scan".to_string(),
                    TimeSpan {
                        start_ms: 100.0,
                        end_ms: 500.0
                    }
                ),
                (
                    "sort".to_string(),
                    TimeSpan {
                        start_ms: 500.0,
                        end_ms: 900.0
                    }
                ),
            ]
        );
    }

    #[test]
    fn log_axis_covers_whole_decades_around_the_samples() {
        let axis = LatencyAxis::new(&[], 3000.0);
        assert_eq!((axis.lo_exp, axis.hi_exp), (0, 4));
        assert_eq!(decade_label(-1), "0.1 ms");
        assert_eq!(decade_label(2), "100 ms");
        assert_eq!(decade_label(4), "10 s");
    }
}
