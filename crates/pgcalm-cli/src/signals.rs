//! SIGINT (Ctrl-C) and SIGTERM: which one came, for the exit status a shell expects of a
//! process they stopped (128 + the signal's number: 130, 143), and the two ways commands
//! wait for them ([`interrupted`], [`cancel_on_interrupt`]).

/// The signal that asked pgcalm to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// SIGINT: Ctrl-C.
    Int,
    /// SIGTERM: `kill`, a service manager, a container stopping.
    Term,
}

impl Interrupt {
    /// `SIGINT`, `SIGTERM`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
        }
    }

    /// 130 for SIGINT, 143 for SIGTERM.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Interrupt::Int => 128 + 2,
            Interrupt::Term => 128 + 15,
        }
    }
}

/// SIGINT and SIGTERM as they arrive. From its creation on, they no longer end the
/// process: the caller decides.
pub(crate) struct Interrupts {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Interrupts {
    /// Starts listening (inside a Tokio runtime).
    pub(crate) fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Interrupts {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Interrupts {}
    }

    /// The next SIGINT or SIGTERM.
    pub(crate) async fn next(&mut self) -> Interrupt {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = recv(&mut self.int) => Interrupt::Int,
                _ = recv(&mut self.term) => Interrupt::Term,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Interrupt::Int
        }
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn interrupted() {
    Interrupts::new().next().await;
}

/// Cancels `token` on the first SIGINT or SIGTERM, for commands that stop their work
/// cleanly when interrupted; abort the returned task once the work is over.
pub(crate) fn cancel_on_interrupt(
    token: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        interrupted().await;
        token.cancel();
    })
}
