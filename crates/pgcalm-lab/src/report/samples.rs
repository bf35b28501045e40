//! The raw probe samples of one form as CSV, one request per line.

use std::fmt::Write as _;

use pgcalm_probe::csv_field;

use crate::results::FormRun;

/// CSV with a header: `endpoint,at_ms,latency_ms,outcome,status,error` (times in ms
/// since the run started; empty cells for no status or no error).
pub fn samples_csv(form: &FormRun) -> String {
    let mut out = String::from("endpoint,at_ms,latency_ms,outcome,status,error\n");
    for s in &form.samples {
        let _ = writeln!(
            out,
            "{},{:.1},{:.1},{},{},{}",
            csv_field(&s.endpoint),
            s.at_ms,
            s.latency_ms,
            s.outcome.as_str(),
            s.status.map(|c| c.to_string()).unwrap_or_default(),
            s.error.map_or("", |k| k.key()),
        );
    }
    out
}
