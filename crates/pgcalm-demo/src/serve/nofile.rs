//! The open-file limit: every client connection is a file descriptor, so the cap on open
//! connections must stay below it. A server that runs out of descriptors cannot accept
//! anyone, not even to say 503; with the cap below the limit it always can.

use super::error::ServeError;

/// Descriptors kept for everything but client connections: the listener, stdio, the
/// runtime, log files, a caller's own (the lab runs a probe and a monitor in-process).
/// The pool's connections and the refusals in progress come on top.
const RESERVED_FILES: usize = 128;

/// How many connections the server may hold open: `asked` (or `default`), checked
/// against the process's open-file soft limit. The soft limit is raised toward the hard
/// limit when it is too low for that (most shells and services start with 1024).
pub(crate) fn connection_cap(
    asked: Option<usize>,
    default: usize,
    other_files: usize,
) -> Result<usize, ServeError> {
    let reserve = RESERVED_FILES + other_files;
    let wanted = asked.unwrap_or(default);
    if wanted == 0 {
        return Err(ServeError::InvalidOptions(
            "--max-connections must be positive".into(),
        ));
    }
    let Some(limit) = raise_open_files_limit(wanted.saturating_add(reserve)) else {
        return Ok(wanted);
    };
    let room = limit.saturating_sub(reserve);
    match asked {
        _ if room == 0 => Err(ServeError::InvalidOptions(format!(
            "the open-file limit is {limit}, too low to serve (at least {} needed); raise it \
             (ulimit -n, or LimitNOFILE= for a systemd service)",
            reserve + 1
        ))),
        Some(n) if n > room => Err(ServeError::InvalidOptions(format!(
            "--max-connections {n} does not fit the open-file limit of {limit} ({reserve} are \
             kept for the database pool and the server): use at most {room}, or raise the \
             hard limit (ulimit -Hn, or LimitNOFILE= for a systemd service)"
        ))),
        Some(n) => Ok(n),
        None => Ok(wanted.min(room)),
    }
}

/// Raises the soft `RLIMIT_NOFILE` to `wanted` (at most the hard limit) if it is lower,
/// and returns the soft limit in force; `None` when unlimited or unknown.
#[cfg(unix)]
fn raise_open_files_limit(wanted: usize) -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    let wanted = libc::rlim_t::try_from(wanted).unwrap_or(libc::rlim_t::MAX);
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to
        // the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    Some(usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn raise_open_files_limit(_wanted: usize) -> Option<usize> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit_or_is_refused_with_what_fits() {
        // The default fits whatever the limit is (lowered if it must).
        let cap = connection_cap(None, 4096, 10).unwrap();
        assert!((1..=4096).contains(&cap), "{cap}");
        let limit = raise_open_files_limit(0).expect("a finite limit here");
        assert!(cap + RESERVED_FILES + 10 <= limit, "{cap} in {limit}");

        // More than the hard limit can hold: refused, saying how many would fit.
        let e = connection_cap(Some(usize::MAX / 2), 4096, 10)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "--max-connections {} does not fit the open-file limit",
                usize::MAX / 2
            )) && e.contains("use at most"),
            "{e}"
        );
        assert!(connection_cap(Some(0), 4096, 10).is_err());
        assert_eq!(connection_cap(Some(7), 4096, 10).unwrap(), 7);
    }
}
