//! What a lab run runs: the scenarios asked for, each one's runs (form and pool
//! topology), the probe's endpoints, and the run's metadata for the results.

use std::time::Duration;

use super::{LOOKUP_EMAIL, LOOKUP_INTERVAL, LabError, LabOptions, PROBE_INTERVAL, PROBE_TIMEOUT};
use crate::app;
use crate::results::{
    EndpointRole, Form, PoolTopology, ProbeTarget, RunClock, RunInfo, RunOptions,
};
use crate::scenario::{self, Scenario, catalogue};
use crate::verdict::Endpoint;

/// The runs of a scenario: the risky form on each of its topologies, then the safe form
/// on one shared pool.
pub(crate) fn runs_of(scenario: &Scenario) -> Vec<(Form, PoolTopology)> {
    let mut runs: Vec<(Form, PoolTopology)> = scenario
        .risky_topologies
        .iter()
        .map(|t| (Form::Risky, *t))
        .collect();
    runs.push((Form::Safe, PoolTopology::Shared));
    runs
}

/// The probe targets and their roles, in report order.
pub(crate) fn probe_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            name: "list_large".into(),
            role: EndpointRole::Read,
        },
        Endpoint {
            name: "add_large".into(),
            role: EndpointRole::Write,
        },
        Endpoint {
            name: "lookup".into(),
            role: EndpointRole::Lookup,
        },
    ]
}

/// The method and path a probe target of `role` requests.
pub(super) fn path_of(role: EndpointRole) -> (&'static str, String) {
    match role {
        EndpointRole::Read => ("GET", "/list_large/".into()),
        EndpointRole::Write => ("POST", "/add_large/".into()),
        EndpointRole::Lookup => ("GET", format!("/lookup/?email={LOOKUP_EMAIL}")),
    }
}

/// The probe's cadence for `role`.
pub(super) fn interval_of(role: EndpointRole) -> Duration {
    match role {
        EndpointRole::Lookup => LOOKUP_INTERVAL,
        _ => PROBE_INTERVAL,
    }
}

/// The scenarios `names` asks for, in order (`all`: the whole catalogue).
pub(super) fn resolve(names: &[String]) -> Result<Vec<Scenario>, LabError> {
    if names.iter().any(|n| n == "all") {
        return Ok(catalogue());
    }
    names
        .iter()
        .map(|n| {
            scenario::find(n).map_err(|known| LabError::UnknownScenario {
                name: n.clone(),
                known,
            })
        })
        .collect()
}

/// The run's metadata: versions, size, machine, and the options as resolved, with the
/// probe targets and the pool layouts of every topology the scenarios run on.
pub(super) fn run_info(
    opts: &LabOptions,
    clock: &RunClock,
    postgres_version: String,
    scenarios: &[Scenario],
    eps: &[Endpoint],
) -> RunInfo {
    let name_of = |role: EndpointRole| -> Vec<String> {
        eps.iter()
            .filter(|e| e.role == role)
            .map(|e| e.name.clone())
            .collect()
    };
    let mut topologies: Vec<PoolTopology> = scenarios
        .iter()
        .flat_map(|s| runs_of(s).into_iter().map(|(_, t)| t))
        .collect();
    topologies.sort();
    topologies.dedup();
    RunInfo {
        pgcalm_version: env!("CARGO_PKG_VERSION").to_string(),
        postgres_version,
        rows: opts.rows,
        machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        started: clock.started(),
        finished: None,
        options: RunOptions {
            scenarios: scenarios.iter().map(|s| s.name.to_string()).collect(),
            out_dir: opts.work_dir.display().to_string(),
            database: opts.database_label.clone(),
            lock_timeout_ms: opts.policy.lock_timeout.as_millis() as u64,
            baseline_ms: opts.baseline.as_millis() as u64,
            probe_targets: eps.iter().map(probe_target).collect(),
            pool_layouts: topologies
                .iter()
                .map(|t| app::layout(*t, app::app_pool_size(&opts.topology), name_of))
                .collect(),
            topology: opts.topology.info(),
        },
    }
}

fn probe_target(e: &Endpoint) -> ProbeTarget {
    let (method, path) = path_of(e.role);
    ProbeTarget {
        name: e.name.clone(),
        role: e.role,
        method: method.into(),
        path,
        interval_ms: interval_of(e.role).as_millis() as u64,
        timeout_ms: PROBE_TIMEOUT.as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_scenario_runs_risky_on_separate_seed_like_and_shared_pools_then_safe() {
        let add_index = scenario::find("add_index").unwrap();
        assert_eq!(
            runs_of(&add_index),
            vec![
                (Form::Risky, PoolTopology::Separate),
                (Form::Risky, PoolTopology::SharedSeedLike),
                (Form::Risky, PoolTopology::Shared),
                (Form::Safe, PoolTopology::Shared)
            ]
        );
    }
}
