//! How figures are worded in every table and chart (one place for units and labels).

use crate::lab::results::{Blocking, Form, PoolTopology};

/// A latency: `0.05 ms`, `2.4 ms`, `37 ms`, `3.0 s`.
pub fn ms(v: f64) -> String {
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
pub fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
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
    };
    format!("{form}, {pools}")
}

/// The seed's ✅ Yes / ❌ No, with the longest stretch when blocked.
pub fn yes_no_blocked(b: Blocking) -> String {
    if b.blocked {
        format!("✅ Yes ({})", seconds(b.longest_stretch_s * 1000.0))
    } else {
        "❌ No".into()
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
