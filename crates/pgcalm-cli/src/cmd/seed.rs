//! `pgcalm seed`: the seed's `manage.py seed_large_table --large-count N --batch-size B`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgcalm_demo::{
    DEFAULT_BATCH_SIZE, DEFAULT_LARGE_COUNT, DEFAULT_SMALL_COUNT, DEFAULT_STREAMS, SeedEvent,
    SeedOptions, SeedReport, seed,
};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// Exit status after Ctrl-C (128 + SIGINT), as shells report an interrupted command.
const EXIT_CANCELLED: i32 = 130;

/// Flags of `pgcalm seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rows to add to large_email (`User i`, `useri@example.com`, i counting on from the
    /// table's current maximum id).
    #[arg(long, default_value_t = DEFAULT_LARGE_COUNT)]
    pub large_count: u64,
    /// Rows per COPY; each batch is committed on its own, so Ctrl-C keeps whole batches.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: u64,
    /// Empty small_email and large_email first (TRUNCATE ... RESTART IDENTITY).
    #[arg(long)]
    pub truncate: bool,
    /// Parallel COPY connections (2 is fastest on a 2-core machine; see bench/README.md).
    #[arg(long, default_value_t = DEFAULT_STREAMS)]
    pub streams: usize,
    /// Rows to add to small_email.
    #[arg(long, default_value_t = DEFAULT_SMALL_COUNT)]
    pub small_count: u64,
}

/// Seeds both tables with a progress bar; Ctrl-C stops after keeping committed batches.
pub(crate) async fn run(ctx: &Settings, args: Args) -> anyhow::Result<()> {
    let target = ctx.target().await?;
    let opts = SeedOptions {
        small_count: args.small_count,
        large_count: args.large_count,
        batch_size: args.batch_size,
        streams: args.streams,
        truncate: args.truncate,
    };
    let json = ctx.json();
    let bar = ProgressBar::with_draw_target(Some(args.large_count), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "large_email [{bar:30}] {human_pos}/{human_len} rows  {rate}  elapsed {elapsed}  ETA {eta}",
        )?
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} rows/s", indicatif::HumanCount(state.per_sec() as u64));
        })
        .progress_chars("=> "),
    );
    // Hidden until loading starts, and for JSON output.
    bar.set_draw_target(ProgressDrawTarget::hidden());

    let cancel = CancellationToken::new();
    let signals = crate::signals::cancel_on_interrupt(cancel.clone());

    let on_event = |event: SeedEvent| render_event(&bar, json, event);
    let result = seed(&target, &opts, &on_event, cancel).await;
    signals.abort();
    bar.finish_and_clear();
    let report = result?;

    if json {
        crate::output::print_json(&report_json(&report))?;
    } else {
        say!("{}", final_line(&report));
    }
    if report.cancelled {
        std::process::exit(EXIT_CANCELLED);
    }
    Ok(())
}

fn render_event(bar: &ProgressBar, json: bool, event: SeedEvent) {
    match event {
        SeedEvent::Truncated if !json => say!("Truncated small_email and large_email"),
        SeedEvent::SmallInserted { rows, .. } if !json => {
            say!("Inserted {rows} rows into small_email")
        }
        SeedEvent::LargeStarted {
            total,
            first_i,
            streams,
            batch_size,
        } if !json && total > 0 => {
            say!(
                "Loading {total} rows into large_email from id {first_i} \
                 ({streams} COPY stream(s), {batch_size} rows per batch)"
            );
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        SeedEvent::LargeProgress { written, .. } => bar.set_position(written),
        SeedEvent::Analyzing if !json => {
            bar.finish_and_clear();
            say!("Analyzing small_email and large_email");
        }
        _ => {}
    }
}

/// The peer's last line, `Done: 10 small + N large rows in Ts (large_email: Ts, R rows/s)`,
/// or what a cancelled run kept.
fn final_line(r: &SeedReport) -> String {
    let rate = indicatif::HumanCount(r.rows_per_sec().round() as u64);
    let timing = format!(
        "in {:.2}s (large_email: {:.2}s, {rate} rows/s)",
        r.elapsed.as_secs_f64(),
        r.large_elapsed.as_secs_f64()
    );
    if r.cancelled {
        format!(
            "Cancelled: {} small + {} of {} large rows committed {timing}. They stay; \
             the next seed counts on after the highest id.",
            r.small_rows, r.large_rows, r.large_requested
        )
    } else {
        format!(
            "Done: {} small + {} large rows {timing}",
            r.small_rows, r.large_rows
        )
    }
}

fn report_json(r: &SeedReport) -> serde_json::Value {
    serde_json::json!({
        "small_rows": r.small_rows,
        "large_requested": r.large_requested,
        "large_rows": r.large_rows,
        "first_id": r.first_i,
        "cancelled": r.cancelled,
        "streams": r.streams,
        "elapsed_secs": r.elapsed.as_secs_f64(),
        "large_elapsed_secs": r.large_elapsed.as_secs_f64(),
        "analyze_secs": r.analyze_elapsed.as_secs_f64(),
        "rows_per_sec": r.rows_per_sec().round(),
    })
}
