//! The demo app in the background (`pgcalm serve --detach`, `pgcalm up --serve`): a
//! child `pgcalm serve` in a session of its own (the terminal's Ctrl-C does not reach
//! it), its output appended to `.pgcalm/serve/serve.log`; it writes its record
//! (`serve.json`: pid, URL) once it listens, which `status` reads and `down` uses to stop
//! it (`pgcalm_demo::ServeRecord`, `stop_background`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pgcalm_demo::{LOCK_FILE, LOG_FILE, ServeRecord};

use crate::settings::Settings;

/// The hidden `serve` flag that makes a serve write its record into a directory.
pub(crate) const RECORD_FLAG: &str = "--background-record";

/// How long a starting serve may take to listen (it opens no database connection first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a stopping serve may take to finish its requests (each is bounded by its
/// request timeout, 5 s by default) before it is killed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(15);

/// What [`start`] found or did.
pub(crate) enum Detached {
    /// Started now.
    Started(ServeRecord),
    /// One was running already; nothing was started.
    AlreadyRunning(ServeRecord),
}

/// Starts `pgcalm serve SERVE_ARGS` in the background for the project, unless one runs.
pub(crate) fn start(settings: &Settings, serve_args: Vec<OsString>) -> anyhow::Result<Detached> {
    let dir = settings.require_project()?.serve_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if let Some(record) = ServeRecord::read(&dir).filter(ServeRecord::is_alive) {
        return Ok(Detached::AlreadyRunning(record));
    }
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let (settings_args, env) = settings.for_child();
    let exe = std::env::current_exe().context("finding the pgcalm binary")?;
    let mut command = Command::new(&exe);
    command
        .arg("serve")
        .args(serve_args)
        .args(settings_args)
        .arg(RECORD_FLAG)
        .arg(&dir)
        .envs(env)
        .current_dir(settings.cwd())
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("sharing the log file")?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(record) = ServeRecord::read(&dir).filter(|r| r.pid == child.id()) {
            return Ok(Detached::Started(record));
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the demo app stopped as it started ({status}); the end of {}:\n{}",
                log_path.display(),
                pgcalm_pg::cluster::tail(&log_path, 10)
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the demo app (pid {}) did not start listening within {}s; see {}",
                child.id(),
                START_TIMEOUT.as_secs(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines `serve --detach` and `up --serve` print.
pub(crate) fn describe(detached: &Detached, cwd: &Path) -> String {
    match detached {
        Detached::Started(r) => format!(
            "Serving the demo app in the background on {} (pid {}); log: {}\n  \
             `pgcalm status` shows it, `pgcalm down` stops it",
            r.url,
            r.pid,
            shown(&r.log, cwd).display()
        ),
        Detached::AlreadyRunning(r) => format!(
            "The demo app is already running in the background on {} (pid {}); log: {}\n  \
             nothing started: `pgcalm down` stops it (then `pgcalm serve --detach` starts it \
             with other flags)",
            r.url,
            r.pid,
            shown(&r.log, cwd).display()
        ),
    }
}

/// `path` relative to `cwd` when it is below it.
pub(crate) fn shown(path: &Path, cwd: &Path) -> PathBuf {
    path.strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
