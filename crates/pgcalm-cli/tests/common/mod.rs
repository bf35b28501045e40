//! Helpers shared by the CLI test binaries: the real `pgcalm` binary, run and checked.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

/// The real binary with no inherited DATABASE_URL / PG_BIN.
pub(crate) fn pgcalm() -> Command {
    let mut cmd = Command::cargo_bin("pgcalm").unwrap();
    cmd.env_remove("DATABASE_URL").env_remove("PG_BIN");
    cmd
}

/// The binary working in the project `dir` (its own embedded cluster under
/// `dir/.pgcalm`): `dir` becomes a project (an empty pgcalm.toml) unless it is one.
pub(crate) fn pgcalm_in(dir: &Path) -> Command {
    make_project(dir);
    let mut cmd = pgcalm();
    cmd.current_dir(dir);
    cmd
}

/// Makes `dir` a pgcalm project, as `pgcalm init` would, unless it is one: pgcalm
/// refuses to create a cluster outside any project.
pub(crate) fn make_project(dir: &Path) {
    if !dir.join("pgcalm.toml").exists() && !dir.join(".pgcalm").exists() {
        std::fs::write(dir.join("pgcalm.toml"), "# a test's project\n").unwrap();
    }
}

/// The repository's `migrations/` directory.
pub(crate) fn repo_migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// Stdout as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs, asserts success, returns stdout.
pub(crate) fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs, asserts failure, returns stderr.
pub(crate) fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "unexpected success: {}",
        stdout(&out)
    );
    stderr(&out)
}

/// A working directory with one app, `app`, holding these files (in `migrations/app/`).
pub(crate) fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // A project: commands outside one refuse to run.
    std::fs::write(dir.path().join("pgcalm.toml"), "").unwrap();
    std::fs::create_dir_all(dir.path().join("migrations/app")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join("migrations/app").join(name), sql).unwrap();
    }
    dir
}

/// A plain HTTP/1.1 GET to `addr` (`127.0.0.1:PORT`); returns the status line and the
/// body.
pub(crate) fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Runs `pgcalm lint ARGS` in the project `dir`; returns (exit code, stdout, stderr).
pub(crate) fn lint_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = pgcalm_in(dir).arg("lint").args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// Writes `dir/name` (its directories too).
pub(crate) fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
