//! pgcalm-probe: the HTTP availability probe.
//!
//! Owns: firing requests at application endpoints on a fixed cadence, classifying each
//! as ok / failed / timed out, latency histograms (`hdrhistogram`), and the timeline of
//! outages that the lab report draws.
//!
//! Architecture invariant: probes only target loopback unless the user says otherwise,
//! and the crate never prints; callers render its samples and summaries.
//!
//! Status: arrives with the probe issue.
