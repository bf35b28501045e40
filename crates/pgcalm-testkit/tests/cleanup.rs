//! The per-binary cluster never outlives its tests: not after a panicking test, not
//! after the test binary is killed with SIGKILL; nor do the replica and the poolers
//! tests start. Each case runs a child copy of this
//! test binary (an `#[ignore]`d test that only runs when asked for) and then looks for
//! what it left behind.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgcalm_testkit::{TestCluster, TestDb, TestPooler};

/// Runs in the child: starts the cluster, says where it is, then panics or waits to be
/// killed depending on `PGCALM_TESTKIT_CHILD`.
#[tokio::test]
#[ignore = "run by the tests below as a child process"]
async fn child_starts_a_cluster() {
    let Ok(mode) = std::env::var("PGCALM_TESTKIT_CHILD") else {
        return;
    };
    let db = TestDb::new().await;
    db.execute("SELECT 1").await;
    let tc = TestCluster::get();
    // Kept alive until the end: a killed binary never drops it.
    let _pooler = mode.ends_with("+topology").then(|| {
        let primary = TestCluster::with_replica();
        let pooler = TestPooler::start(tc, 1);
        println!(
            "TOPOLOGY dir={} primary={} replica={} pooler={}",
            primary.dir().display(),
            primary.cluster().running_pid().unwrap(),
            primary.cluster().replica().running_pid().unwrap(),
            pooler.pid()
        );
        pooler
    });
    let pid = tc.cluster().running_pid().unwrap();
    println!("CLUSTER dir={} pid={pid}", tc.dir().display());
    if mode.starts_with("panic") {
        panic!("this test fails on purpose");
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// The child's cluster (its temp dir and postmaster pid) and, in `+topology` modes, the
/// cluster with a replica (temp dir) and the pids of its primary, replica and pooler.
struct Started {
    dir: PathBuf,
    pid: i32,
    topology: Option<(PathBuf, [i32; 3])>,
}

/// Starts the child and reads where its servers are from its output.
fn spawn_child(mode: &str) -> (std::process::Child, Started) {
    // Its own process group, so a test can kill the whole group like a harness would.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .process_group(0)
        .args([
            "child_starts_a_cluster",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("PGCALM_TESTKIT_CHILD", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut topology = None;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout)).map(Result::unwrap);
    let line = loop {
        let line = lines.next().expect("child printed its cluster");
        if let Some(rest) = line.strip_prefix("TOPOLOGY ") {
            let field = |name: &str| {
                rest.split(' ')
                    .find_map(|f| f.strip_prefix(&format!("{name}=")))
                    .unwrap()
                    .to_string()
            };
            let pids = ["primary", "replica", "pooler"].map(|n| field(n).parse().unwrap());
            topology = Some((PathBuf::from(field("dir")), pids));
        }
        if line.starts_with("CLUSTER ") {
            break line;
        }
    };
    let dir = line
        .split("dir=")
        .nth(1)
        .unwrap()
        .split(" pid=")
        .next()
        .unwrap();
    let pid = line.rsplit("pid=").next().unwrap().parse().unwrap();
    let started = Started {
        dir: PathBuf::from(dir),
        pid,
        topology,
    };
    (child, started)
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn wait_until_gone(pid: i32, dir: &std::path::Path, within: Duration) {
    let deadline = Instant::now() + within;
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "postmaster {pid} still running");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

/// Waits until the child's servers are gone and its temp dirs deleted.
fn wait_until_all_gone(started: &Started, within: Duration) {
    wait_until_gone(started.pid, &started.dir, within);
    if let Some((dir, pids)) = &started.topology {
        for pid in pids {
            wait_until_gone(*pid, dir, within);
        }
    }
}

#[test]
fn a_panicking_test_still_stops_the_cluster() {
    let (mut child, started) = spawn_child("panic");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child's test panics");
    wait_until_all_gone(&started, Duration::from_secs(10));
}

#[test]
fn a_killed_test_binary_leaves_no_cluster_behind() {
    let (mut child, started) = spawn_child("hang");
    assert!(alive(started.pid));
    child.kill().unwrap(); // SIGKILL: no atexit, only the watchdog can clean up
    child.wait().unwrap();
    wait_until_all_gone(&started, Duration::from_secs(15));
}

#[test]
fn killing_the_whole_process_group_leaves_no_cluster_behind() {
    let (mut child, started) = spawn_child("hang");
    // What a harness timeout does: SIGKILL to every process of the test's group.
    let group = child.id();
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    wait_until_all_gone(&started, Duration::from_secs(15));
}

#[test]
fn a_panicking_test_stops_its_replica_and_pooler() {
    let (mut child, started) = spawn_child("panic+topology");
    assert!(
        started.topology.is_some(),
        "the child started a replica and a pooler"
    );
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child's test panics");
    wait_until_all_gone(&started, Duration::from_secs(15));
}

#[test]
fn a_killed_test_binary_leaves_no_replica_or_pooler_behind() {
    let (mut child, started) = spawn_child("hang+topology");
    let (_, pids) = started.topology.as_ref().expect("a replica and a pooler");
    assert!(pids.iter().all(|pid| alive(*pid)), "{pids:?}");
    child.kill().unwrap(); // SIGKILL: only the watchdogs can clean up
    child.wait().unwrap();
    wait_until_all_gone(&started, Duration::from_secs(20));
}
