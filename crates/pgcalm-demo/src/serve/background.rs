//! A demo server running in the background (`pgcalm serve --detach`): the record it
//! keeps in its directory (the project's `.pgcalm/serve/`) once it listens, whether it
//! is alive, and stopping it, for `status`, `down` and a second `--detach`.
//!
//! The server process writes [`RECORD_FILE`] itself when it is bound (so the record
//! names the address it really listens on) and removes it when it stops; a record left
//! by a server that was killed names a pid that is gone, which [`ServeRecord::is_alive`]
//! tells (it also refuses a pid reused by another program).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::ServeError;

/// The record of the server running in the background, in its directory.
pub const RECORD_FILE: &str = "serve.json";
/// Its output (the request log), in its directory.
pub const LOG_FILE: &str = "serve.log";
/// Held while a background server is started, so two `--detach` start one.
pub const LOCK_FILE: &str = "serve.lock";

/// What a background server says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeRecord {
    /// Its process id.
    pub pid: u32,
    /// Where it answers (`http://127.0.0.1:8001/`).
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
    /// When it started listening (RFC 3339, UTC).
    pub started_at: String,
}

/// A background server [`stop_background`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoppedServe {
    /// Its process id.
    pub pid: u32,
    /// It did not finish its requests within the grace period and was killed.
    pub killed: bool,
}

impl ServeRecord {
    /// The record in `dir`, if there is one that parses.
    pub fn read(dir: &Path) -> Option<ServeRecord> {
        let text = fs::read_to_string(dir.join(RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record into `dir` (whole or not at all: readers poll for it).
    pub fn write(&self, dir: &Path) -> Result<(), ServeError> {
        let path = dir.join(RECORD_FILE);
        let tmp = dir.join(format!("{RECORD_FILE}.{}", self.pid));
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ServeError::InvalidOptions(format!("encoding {RECORD_FILE}: {e}")))?;
        fs::write(&tmp, text + "\n")
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| ServeError::File {
                action: "writing",
                path,
                source,
            })
    }

    /// Removes the record in `dir` if it is `pid`'s (a newer server's stays).
    pub fn remove(dir: &Path, pid: u32) {
        if ServeRecord::read(dir).is_some_and(|r| r.pid == pid) {
            let _ = fs::remove_file(dir.join(RECORD_FILE));
        }
    }

    /// Whether its process still runs and is a `serve` (not a pid reused since).
    pub fn is_alive(&self) -> bool {
        is_serve_process(self.pid)
    }
}

/// Whether `pid` is a running process with `serve` among its arguments. A zombie has no
/// arguments left, so it does not count.
fn is_serve_process(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == b"serve"))
        .unwrap_or(false)
}

/// Stops the background server recorded in `dir`: SIGTERM (it finishes the requests in
/// flight), then SIGKILL if it still runs after `grace`. `None` when none runs (a stale
/// record is removed).
pub fn stop_background(dir: &Path, grace: Duration) -> Result<Option<StoppedServe>, ServeError> {
    let Some(record) = ServeRecord::read(dir) else {
        return Ok(None);
    };
    if !record.is_alive() {
        ServeRecord::remove(dir, record.pid);
        return Ok(None);
    }
    let pid = record.pid;
    signal(pid, libc::SIGTERM)?;
    let deadline = Instant::now() + grace;
    while is_serve_process(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = is_serve_process(pid);
    if killed {
        signal(pid, libc::SIGKILL)?;
        while is_serve_process(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    ServeRecord::remove(dir, pid);
    Ok(Some(StoppedServe { pid, killed }))
}

fn signal(pid: u32, sig: i32) -> Result<(), ServeError> {
    // SAFETY: kill(2) on a pid read from our own record and checked to be a serve.
    if unsafe { libc::kill(pid as i32, sig) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ESRCH) => Ok(()), // it ended meanwhile
        _ => Err(ServeError::Signal { pid, source: e }),
    }
}

/// Deletes what a background server left in `dir` (its record, log and lock file), and
/// `dir` itself when nothing else is in it. Returns the bytes deleted, or None when
/// there was no such directory.
pub fn delete_background_dir(dir: &Path) -> Result<Option<u64>, ServeError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut bytes = 0;
    for name in [RECORD_FILE, LOG_FILE, LOCK_FILE] {
        let path = dir.join(name);
        match fs::metadata(&path) {
            Ok(meta) => {
                bytes += meta.len();
                fs::remove_file(&path).map_err(|source| ServeError::File {
                    action: "deleting",
                    path,
                    source,
                })?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ServeError::File {
                    action: "reading",
                    path,
                    source,
                });
            }
        }
    }
    // Only if empty now: a file pgcalm did not write stays, and so does its directory.
    let _ = fs::remove_dir(dir);
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_a_live_serve_or_is_stale() {
        let dir = std::env::temp_dir().join(format!("pgcalm-serve-record-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(ServeRecord::read(&dir), None);
        // This test process is alive but no `serve`: as good as gone.
        let record = ServeRecord {
            pid: std::process::id(),
            url: "http://127.0.0.1:8001/".into(),
            log: dir.join(LOG_FILE),
            started_at: "2026-12-02T10:00:00.000Z".into(),
        };
        record.write(&dir).unwrap();
        assert_eq!(ServeRecord::read(&dir), Some(record.clone()));
        assert!(!record.is_alive());
        assert_eq!(stop_background(&dir, Duration::from_secs(1)).unwrap(), None);
        assert_eq!(ServeRecord::read(&dir), None, "the stale record is gone");

        fs::write(dir.join(LOG_FILE), "a line\n").unwrap();
        fs::write(dir.join("mine.txt"), "kept").unwrap();
        assert_eq!(delete_background_dir(&dir).unwrap(), Some(7));
        assert!(dir.join("mine.txt").is_file() && !dir.join(LOG_FILE).exists());
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(delete_background_dir(&dir).unwrap(), None);
    }
}
