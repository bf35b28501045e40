//! The per-binary cluster never outlives its tests: not after a panicking test, not
//! after the test binary is killed with SIGKILL. Each case runs a child copy of this
//! test binary (an `#[ignore]`d test that only runs when asked for) and then looks for
//! what it left behind.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgcalm_testkit::{TestCluster, TestDb};

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
    let pid = tc.cluster().running_pid().unwrap();
    println!("CLUSTER dir={} pid={pid}", tc.dir().display());
    if mode == "panic" {
        panic!("this test fails on purpose");
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Starts the child and reads the cluster's dir and postmaster pid from its output.
fn spawn_child(mode: &str) -> (std::process::Child, PathBuf, i32) {
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
    let line = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map(Result::unwrap)
        .find(|l| l.starts_with("CLUSTER "))
        .expect("child printed its cluster");
    let dir = line
        .split("dir=")
        .nth(1)
        .unwrap()
        .split(" pid=")
        .next()
        .unwrap();
    let pid = line.rsplit("pid=").next().unwrap().parse().unwrap();
    (child, PathBuf::from(dir), pid)
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

#[test]
fn a_panicking_test_still_stops_the_cluster() {
    let (mut child, dir, pid) = spawn_child("panic");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child's test panics");
    wait_until_gone(pid, &dir, Duration::from_secs(10));
}

#[test]
fn a_killed_test_binary_leaves_no_cluster_behind() {
    let (mut child, dir, pid) = spawn_child("hang");
    assert!(alive(pid));
    child.kill().unwrap(); // SIGKILL: no atexit, only the watchdog can clean up
    child.wait().unwrap();
    wait_until_gone(pid, &dir, Duration::from_secs(15));
}

#[test]
fn killing_the_whole_process_group_leaves_no_cluster_behind() {
    let (mut child, dir, pid) = spawn_child("hang");
    // What a harness timeout does: SIGKILL to every process of the test's group.
    let group = child.id();
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    wait_until_gone(pid, &dir, Duration::from_secs(15));
}
