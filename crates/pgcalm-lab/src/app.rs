//! The demo API in-process for the lab: started on free loopback ports, stopped after
//! each form, laid out as one shared pool or as separate read and write pools.
//!
//! Separate pools are separate [`Server`]s (one per endpoint role, each with the demo's
//! default pool), like the Django peer's one-gunicorn-per-endpoint topology: a request
//! blocked on one role cannot take a connection away from the other. The seed-like
//! shared pool is one server that keeps the query (and the connection) of a request
//! whose client gave up, as the seed's Django app on sync workers keeps the worker.

use std::net::SocketAddr;

use pgcalm_pg::Target;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::results::{EndpointRole, Pool, PoolLayout, PoolTopology};
use pgcalm_demo::{DEFAULT_POOL_SIZE, ServeError, ServeOptions, Server};

use crate::topology::{APP_CLIENTS_THROUGH_POOLER, LabTopology};

/// The demo app's pool size: the demo's default against the server, more clients than
/// the pooler has server connections through a pooler.
pub(crate) fn app_pool_size(topology: &LabTopology) -> usize {
    match topology.pooler {
        Some(_) => APP_CLIENTS_THROUGH_POOLER,
        None => DEFAULT_POOL_SIZE,
    }
}

/// The `application_name` of the demo API's connections in the lab, so the monitor can
/// tell them apart from the runner's and the blocker's.
pub(crate) const APP_NAME: &str = "pgcalm serve";

/// The roles a pool serves, by topology.
fn pools_of(topology: PoolTopology) -> Vec<(&'static str, Vec<EndpointRole>)> {
    match topology {
        PoolTopology::Shared | PoolTopology::SharedSeedLike => vec![(
            "shared",
            vec![
                EndpointRole::Read,
                EndpointRole::Lookup,
                EndpointRole::Write,
            ],
        )],
        PoolTopology::Separate => vec![
            ("reads", vec![EndpointRole::Read, EndpointRole::Lookup]),
            ("writes", vec![EndpointRole::Write]),
        ],
    }
}

/// The pools of a topology, for the results (`endpoints` named by the caller's
/// `name_of` role -> probe target names).
pub(crate) fn layout(
    topology: PoolTopology,
    pool_size: usize,
    name_of: impl Fn(EndpointRole) -> Vec<String>,
) -> PoolLayout {
    PoolLayout {
        topology,
        pools: pools_of(topology)
            .into_iter()
            .map(|(name, roles)| Pool {
                name: name.to_string(),
                size: pool_size,
                endpoints: roles.into_iter().flat_map(&name_of).collect(),
            })
            .collect(),
    }
}

/// One server of a running app: the roles it serves, its address, its stop signal and
/// its task.
struct RunningServer {
    roles: Vec<EndpointRole>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), ServeError>>,
}

/// The demo API running for one form.
pub(crate) struct RunningApp {
    servers: Vec<RunningServer>,
}

impl RunningApp {
    /// Starts the servers of `topology` against `target` on free loopback ports, each
    /// with a pool of `pool_size` connections (`through_pooler`: `target` is a
    /// transaction pooler).
    pub(crate) async fn start(
        target: &Target,
        topology: PoolTopology,
        pool_size: usize,
        through_pooler: bool,
    ) -> Result<Self, ServeError> {
        let mut servers = Vec::new();
        for (_, roles) in pools_of(topology) {
            let server = Server::bind(
                target,
                ServeOptions {
                    port: 0,
                    pool_size,
                    // PgBouncer 1.18 can crash on cancel requests (see the option).
                    send_cancel_requests: !through_pooler,
                    cancel_abandoned_queries: topology != PoolTopology::SharedSeedLike,
                    ..ServeOptions::default()
                },
            )
            .await?;
            let addr = server.local_addr();
            let (stop, stopped) = oneshot::channel::<()>();
            let handle = tokio::spawn(server.run(async move {
                let _ = stopped.await;
            }));
            servers.push(RunningServer {
                roles,
                addr,
                stop,
                handle,
            });
        }
        Ok(RunningApp { servers })
    }

    /// `http://127.0.0.1:PORT` of the server that serves `role`.
    pub(crate) fn base_url(&self, role: EndpointRole) -> String {
        let addr = self
            .servers
            .iter()
            .find(|s| s.roles.contains(&role))
            .map(|s| s.addr)
            .expect("every topology serves every role");
        format!("http://{addr}")
    }

    /// Stops every server (requests in flight finish first, each bounded by the
    /// request timeout) and closes their pools.
    pub(crate) async fn stop(self) {
        for server in self.servers {
            let _ = server.stop.send(());
            let _ = server.handle.await;
        }
    }
}
