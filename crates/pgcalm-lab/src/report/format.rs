//! How figures are worded in every table and chart (one place for units and labels).

use crate::results::{BlockLevel, Blocking, Form, FormRun, PoolTopology};

/// A latency: `0.05 ms`, `2.4 ms`, `37 ms`, `3.0 s`.
pub(super) fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.2} ms")
    } else if v < 10.0 {
        format!("{v:.1} ms")
    } else if v < 1000.0 {
        format!("{v:.0} ms")
    } else {
        seconds(v)
    }
}

/// A duration given in ms, in seconds: `7.2 s`.
pub(super) fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}

/// WAL bytes: `0 B`, `840 kB`, `12.3 MB`.
pub(super) fn bytes(v: i64) -> String {
    let v = v.max(0) as f64;
    if v < 1000.0 {
        format!("{v:.0} B")
    } else if v < 1e6 {
        format!("{:.0} kB", v / 1e3)
    } else {
        format!("{:.1} MB", v / 1e6)
    }
}

/// The replica's largest lag of a run: `1.2 MB, 0.3 s`; None without a replica.
pub(super) fn replica_lag(f: &FormRun) -> Option<String> {
    let t = f.topology_figures.as_ref()?;
    let b = t.max_replica_lag_bytes?;
    let secs = t
        .max_replica_lag_ms
        .map_or("replay time unknown".into(), seconds);
    Some(format!("{}, {secs}", bytes(b)))
}

/// The pooler's waiting clients of a run: `none waited`, `12 waiting at most, longest
/// wait 2.9 s`; None without a pooler.
pub(super) fn pool_waits(f: &FormRun) -> Option<String> {
    let t = f.topology_figures.as_ref()?;
    let waiting = t.max_clients_waiting?;
    let wait = t.max_wait_ms.unwrap_or(0.0);
    Some(if waiting == 0 && wait == 0.0 {
        "none waited".into()
    } else {
        format!("{waiting} waiting at most, longest wait {}", ms(wait))
    })
}

/// `Risky, shared pool`, `Safe, separate pools`.
pub fn form_label(form: Form, topology: PoolTopology) -> String {
    let form = match form {
        Form::Risky => "Risky",
        Form::Safe => "Safe",
    };
    let pools = match topology {
        PoolTopology::Shared => "shared pool",
        PoolTopology::Separate => "separate pools",
        PoolTopology::SharedSeedLike => "shared pool (seed-like app)",
    };
    format!("{form}, {pools}")
}

/// The seed's ✅ Yes / ❌ No, with the level and the longest hold: `✅ Yes, blocked
/// 12.7 s`, `⚠️ Yes, queued 0.3 s`, `❌ No`.
pub(super) fn yes_no_blocked(b: Blocking) -> String {
    match b.level {
        BlockLevel::Blocked => format!("✅ Yes, {}", level_cell(b)),
        BlockLevel::Queued => format!("⚠️ Yes, {}", level_cell(b)),
        BlockLevel::No => "❌ No".into(),
    }
}

/// The level and the longest hold: `blocked 12.7 s`, `queued 0.3 s`, `no`.
pub fn level_cell(b: Blocking) -> String {
    match b.level {
        BlockLevel::No => "no".into(),
        level => format!("{} {}", level.as_str(), seconds(b.held_s * 1000.0)),
    }
}

/// How a form did against the safe criteria. A risky form within them is not safe (its
/// hazard grows with the table), so it only met them: no tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CriteriaMark {
    /// A safe form within the criteria.
    Pass,
    /// A risky form within the criteria.
    Met,
    /// Outside the criteria.
    Fail,
}

impl CriteriaMark {
    /// The mark of `f`'s verdict.
    pub(super) fn of(f: &FormRun) -> Self {
        match (f.verdict.safe_criteria.passed, f.form) {
            (true, Form::Safe) => CriteriaMark::Pass,
            (true, Form::Risky) => CriteriaMark::Met,
            (false, _) => CriteriaMark::Fail,
        }
    }

    /// `pass` / `met` / `fail`.
    pub(super) fn word(self) -> &'static str {
        match self {
            CriteriaMark::Pass => "pass",
            CriteriaMark::Met => "met",
            CriteriaMark::Fail => "fail",
        }
    }

    /// The word with the report's tick or cross: `✅ pass`, `met`, `❌ fail`.
    pub(super) fn marked(self) -> String {
        match self {
            CriteriaMark::Pass => format!("✅ {}", self.word()),
            CriteriaMark::Met => self.word().to_string(),
            CriteriaMark::Fail => format!("❌ {}", self.word()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_keep_two_significant_figures_or_more() {
        assert_eq!(ms(0.052), "0.05 ms");
        assert_eq!(ms(2.44), "2.4 ms");
        assert_eq!(ms(37.4), "37 ms");
        assert_eq!(ms(3000.0), "3.0 s");
        assert_eq!(seconds(7250.0), "7.2 s");
    }
}
