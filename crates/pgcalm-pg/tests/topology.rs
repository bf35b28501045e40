//! The replica and the pooler with real servers: a streaming standby made by
//! `Cluster::start_replica`, PgBouncer started by `Pooler::start`, and their failures.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use pgcalm_pg::catalog::replication_slots;
use pgcalm_pg::replica::{REPLICATION_ROLE, REPLICATION_SLOT};
use pgcalm_pg::{
    ConnectFailure, PgError, ReplicaOptions, ReplicaStart, ReplicaState, Target, Topology,
};
use pgcalm_testkit::{TestCluster, TestDb, TestPooler};

/// Polls `check` until it gives Some, failing after `secs` seconds.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    check: impl Fn() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a process runs (a zombie waiting for init to reap it does not).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, s)| !s.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn a_write_on_the_primary_appears_on_the_replica() {
    let primary = TestCluster::with_replica();
    let db = TestDb::on(primary).await;
    db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3)")
        .await;
    let replica = primary.replica_target(db.name());
    let count = eventually("the rows on the replica", 30, || async {
        let client = replica.connect().await.ok()?;
        let row = client.query_one("SELECT count(*) FROM t", &[]).await.ok()?;
        Some(row.get::<_, i64>(0))
    })
    .await;
    assert_eq!(count, 3);
    let client = replica.connect().await.unwrap();
    let err = client
        .batch_execute("INSERT INTO t VALUES (4)")
        .await
        .unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("read-only transaction")),
        "the replica is a standby: {message:?}"
    );

    let topology = Topology::collect(primary.cluster()).await;
    let status = topology.replica.clone().expect("the replica is reported");
    assert_eq!(status.state, ReplicaState::Streaming, "{status:?}");
    assert_eq!(status.role.as_deref(), Some("standby"));
    assert_eq!(status.slot, REPLICATION_SLOT);
    assert!(status.lag_bytes.is_some_and(|b| b >= 0), "{status:?}");
    assert!(status.lag_seconds.is_some_and(|s| s >= 0.0), "{status:?}");
    assert!(topology.inactive_slots.is_empty(), "{topology:?}");
}

#[test]
fn the_replication_password_is_in_a_private_passfile_only() {
    let primary = TestCluster::with_replica();
    let replica = primary.cluster().replica();
    let passfile = replica.passfile_path();
    let mode = std::fs::metadata(&passfile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", passfile.display());
    let password = std::fs::read_to_string(&passfile).unwrap();
    let password = password.trim().rsplit(':').next().unwrap().to_string();
    assert_eq!(password.len(), 32);
    let auto_conf =
        std::fs::read_to_string(replica.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(auto_conf.contains("passfile="), "{auto_conf}");
    assert!(!auto_conf.contains("password="), "{auto_conf}");
    assert!(!auto_conf.contains(&password), "{auto_conf}");
    let hba = std::fs::read_to_string(primary.cluster().data_dir().join("pg_hba.conf")).unwrap();
    let rule = format!("host    replication  {REPLICATION_ROLE}  127.0.0.1/32  scram-sha-256");
    assert!(hba.lines().any(|l| l == rule), "{hba}");
    // The shared cluster of this binary has no replica: no replication rule.
    let plain =
        std::fs::read_to_string(TestCluster::get().cluster().data_dir().join("pg_hba.conf"))
            .unwrap();
    assert!(
        !plain
            .lines()
            .any(|l| l.starts_with("host") && l.contains("replication")),
        "{plain}"
    );
}

#[tokio::test]
async fn the_pooler_pools_transactions_behind_a_password() {
    let tc = TestCluster::get();
    let db = TestDb::new().await;
    let pooler = TestPooler::start(tc, 2);

    let client = pooler.target(db.name()).connect().await.unwrap();
    let rows = client.simple_query("SELECT 41 + 1").await.unwrap();
    let answer = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(answer.as_deref(), Some("42"));

    // Without the password, or with a wrong one, PgBouncer refuses the login.
    let port = pooler.port();
    let url = |userinfo: &str| format!("postgresql://{userinfo}@127.0.0.1:{port}/{}", db.name());
    for userinfo in ["postgres", "postgres:wrong"] {
        let err = Target::from_url(&format!("{}?sslmode=disable", url(userinfo)))
            .unwrap()
            .connect()
            .await
            .unwrap_err();
        assert_eq!(
            err.connect_failure(),
            Some(ConnectFailure::AuthFailed),
            "{userinfo}: {err}"
        );
    }

    let status = pooler.pooler().status(tc.cluster()).await;
    assert_eq!(
        status.pool_mode.as_deref(),
        Some("transaction"),
        "{status:?}"
    );
    assert_eq!(status.pool_size, Some(2));
    assert!(
        status
            .version
            .as_deref()
            .unwrap()
            .starts_with("PgBouncer 1.")
    );
    let pool = status
        .pools
        .iter()
        .find(|p| p.database == db.name())
        .expect("a pool for the test database");
    assert_eq!(
        (pool.user.as_str(), pool.pool_mode.as_str()),
        ("postgres", "transaction")
    );
    assert_eq!(pool.clients_active, 1, "{pool:?}");

    let pid = pooler.pid();
    drop(client);
    drop(pooler);
    eventually(
        "PgBouncer stopped once its TestPooler is dropped",
        10,
        || async { (!process_alive(pid)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_failed_base_backup_says_why_and_leaves_no_slot() {
    let tc = TestCluster::start_with(|_| vec![("max_wal_senders".into(), "0".into())]);
    let err = tc
        .cluster()
        .start_replica(&ReplicaOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::Command { .. }), "{text}");
    assert!(text.starts_with("pg_basebackup (127.0.0.1:"), "{text}");
    assert!(text.contains("max_wal_senders"), "{text}");
    assert!(text.contains("postgres.log"), "{text}");
    let admin = tc
        .cluster()
        .target("postgres")
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(replication_slots(&admin).await.unwrap(), vec![]);
    assert!(!tc.cluster().replica().exists());
    // `--no-replica` cleans up the rest: role, pg_hba.conf rule, directory.
    let removal = tc.cluster().remove_replica().await.unwrap();
    assert!(
        removal.dropped_role && removal.removed_hba_rule,
        "{removal:?}"
    );
    assert!(!tc.cluster().replica().root().exists());
}

#[tokio::test]
async fn a_replica_that_cannot_stream_is_named_with_its_log_and_rebuilt() {
    let tc = TestCluster::start_with(|_| Vec::new());
    let cluster = tc.cluster();
    let quick = ReplicaOptions {
        streaming_timeout: Duration::from_secs(5),
    };
    let first = cluster.start_replica(&quick).await.unwrap();
    assert!(
        matches!(
            first,
            ReplicaStart::Started {
                created: Some(_),
                ..
            }
        ),
        "{first:?}"
    );

    // A wrong replication password: the standby runs but cannot connect.
    let replica = cluster.replica();
    replica.stop().unwrap();
    let passfile = replica.passfile_path();
    let text = std::fs::read_to_string(&passfile).unwrap();
    let (entry, _) = text.trim().rsplit_once(':').unwrap();
    std::fs::write(&passfile, format!("{entry}:wrongwrongwrong\n")).unwrap();
    let err = cluster.start_replica(&quick).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, PgError::ReplicaNotStreaming { .. }),
        "{message}"
    );
    assert!(
        message.contains("is not streaming from the primary"),
        "{message}"
    );
    assert!(
        message.contains("password authentication failed"),
        "the log's own words: {message}"
    );
    assert!(
        message.contains(&replica.log_path().display().to_string()),
        "{message}"
    );

    // Its directory deleted by hand: the slot it left is reported, then dropped by the
    // next start, which makes a new replica.
    replica.stop().unwrap();
    std::fs::remove_dir_all(replica.root()).unwrap();
    let topology = Topology::collect(cluster).await;
    assert!(
        topology
            .inactive_slots
            .iter()
            .any(|s| s.name == REPLICATION_SLOT),
        "{topology:?}"
    );
    let again = cluster.start_replica(&quick).await.unwrap();
    let ReplicaStart::Started {
        created: Some(created),
        ..
    } = again
    else {
        panic!("a new replica: {again:?}");
    };
    let dropped = created.dropped_slot.expect("the old slot was dropped");
    assert_eq!(dropped.name, REPLICATION_SLOT);

    // Removing it leaves nothing of pgcalm's replication behind.
    let removal = cluster.remove_replica().await.unwrap();
    assert!(removal.stopped_pid.is_some(), "{removal:?}");
    assert!(
        removal.deleted.is_some() && removal.dropped_slot.is_some(),
        "{removal:?}"
    );
    assert!(
        removal.dropped_role && removal.removed_hba_rule,
        "{removal:?}"
    );
    let admin = cluster.target("postgres").unwrap().connect().await.unwrap();
    assert_eq!(replication_slots(&admin).await.unwrap(), vec![]);
    assert!(cluster.remove_replica().await.unwrap().is_empty());
}

#[tokio::test]
async fn stopping_the_cluster_stops_a_pooler_a_killed_lab_left_behind() {
    // A cluster of its own: this test stops it.
    let tc = TestCluster::start_with(|_| vec![]);
    let cluster = tc.cluster();
    let lab_pooler = pgcalm_pg::Pooler::lab_of(cluster);
    lab_pooler
        .start(cluster, &pgcalm_pg::PoolerOptions { pool_size: 2 })
        .await
        .unwrap();
    let pid = lab_pooler.running_pid().expect("the lab's PgBouncer runs");

    let stopped = cluster.stop_all().unwrap();
    assert_eq!(stopped.lab_pooler, Some(pid), "{stopped:?}");
    eventually("the lab's PgBouncer gone after stop_all", 10, || async {
        (!process_alive(pid)).then_some(())
    })
    .await;
}
