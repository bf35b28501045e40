//! The accept loop and each client connection's life: the cap on open connections
//! (a 503 beyond it), the header and idle timeouts, graceful shutdown.
//!
//! `axum::serve` has none of these, so a few thousand clients that connect and never
//! finish a request (slowloris) or never send one took every file descriptor and left
//! the next client hanging. Here each connection holds one of `max_connections` slots;
//! the others are answered with a short 503 and closed, and a slot comes back as soon as
//! its client finishes, leaves or runs out of time:
//!
//! - header timeout: the request head (request line and headers) must be complete within
//!   it, counted from the connection's accept for the first request and from the first
//!   byte of each later one;
//! - idle timeout: between two requests of a kept-alive connection, and while a response
//!   is written to a client that stopped reading, the longest silence allowed;
//! - neither applies while a request is handled (the request timeout bounds that).
//!
//! Expiry drops the connection: no request is in progress then, so nothing is lost.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// Connections being answered 503 at once; past this many, further ones over the cap are
/// closed without an answer.
pub(crate) const REFUSALS_AT_ONCE: usize = 64;
/// How long a refused client gets to read its 503 before the socket is closed.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Largest request head read (no route needs more); larger ones get hyper's 431.
const HEAD_BUFFER: usize = 16 * 1024;
/// Pause after an accept error that is not the client's (out of descriptors or memory),
/// so the loop does not spin while it lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

/// Accepts until `shutdown` completes, then closes the listener, closes the connections
/// that are between requests, lets those with a request in flight finish it, and returns
/// when every connection is gone.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let stop = CancellationToken::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // hyper's own head timer runs from the end of the previous response: with our
        // idle and header timeouts both spent, a head is overdue whatever the bytes say
        // (a backstop; `Watch` closes such a connection earlier).
        .header_read_timeout(limits.idle_timeout + limits.header_timeout)
        .max_buf_size(HEAD_BUFFER);
    let mut shutdown = pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) if is_client_error(&e) => continue,
                Err(e) => {
                    tracing::warn!("pgcalm serve: accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(serve_connection(
                    tcp,
                    slot,
                    router.clone(),
                    http.clone(),
                    limits,
                    stop.clone(),
                ));
            }
            Err(_) => refuse(tcp, &refusals),
        }
    }
    drop(listener);
    stop.cancel();
    // Every connection holds a slot until it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Errors of one incoming connection (it was reset before accept, ...), not of the
/// listener: the next accept works.
fn is_client_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The answer to a connection over the cap.
static TOO_MANY_CONNECTIONS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = r#"{"error":"too many open connections; try again later"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// Answers 503 and closes. The request is not read, but what the client sent is drained
/// after the answer, so the close does not reset the connection before the client reads
/// it. Bounded: [`REFUSALS_AT_ONCE`] at a time, each for at most [`REFUSAL_TIME`].
fn refuse(mut tcp: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            tcp.write_all(&TOO_MANY_CONNECTIONS).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    });
}

/// Serves one connection until it ends, times out, or the server stops.
async fn serve_connection(
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    router: Router,
    http: http1::Builder,
    limits: Limits,
    stop: CancellationToken,
) {
    // Small responses on keep-alive connections: never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let watch = Arc::new(Watch::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        watch: watch.clone(),
    });
    let service = {
        let watch = watch.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let handling = watch.request_started();
            let router = router.clone();
            async move {
                let response = router.oneshot(req).await;
                drop(handling);
                response
            }
        })
    };
    let mut conn = pin!(http.serve_connection(io, service));
    let mut timer = pin!(tokio::time::sleep_until(watch.start));
    let mut stopping = pin!(stop.cancelled());
    let mut draining = false;
    poll_fn(|cx| {
        // Errors (client gone, malformed request: hyper answered it) end the connection.
        if conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !draining && stopping.as_mut().poll(cx).is_ready() {
            // Nothing was asked on this connection yet: close it now. Otherwise hyper
            // finishes the request in flight and closes, or closes a connection that is
            // between requests at once.
            if watch.requests.load(Ordering::Relaxed) == 0 {
                return Poll::Ready(());
            }
            draining = true;
            conn.as_mut().graceful_shutdown();
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        // Every change of the deadline happens while `conn` is polled, so checking it
        // here, after each poll, keeps the timer exact.
        if let Some(deadline) = watch.deadline(&limits) {
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await;
}

/// What the timeouts of one connection look at. Written by its socket ([`Watched`]) and
/// its request handler, read by its task; all on that one task, so relaxed atomics do.
struct Watch {
    start: Instant,
    /// Time of the last byte read or written, in ns since `start`.
    last_io: AtomicU64,
    /// When the request head being read began, in ns since `start`; [`NO_HEAD`] when
    /// none is.
    head_started: AtomicU64,
    /// Requests whose handler is running.
    in_flight: AtomicUsize,
    /// Requests received so far.
    requests: AtomicU64,
}

const NO_HEAD: u64 = u64::MAX;

impl Watch {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            // The first request's head is due a header timeout after the accept.
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.start + Duration::from_nanos(nanos)
    }

    fn on_read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        // A byte between requests starts the next request's head.
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_started.store(now, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// The head is complete and the handler starts; the guard marks its end.
    fn request_started(self: &Arc<Self>) -> Handling {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NO_HEAD, Ordering::Relaxed);
        Handling(self.clone())
    }

    /// When the connection is overdue: none while a handler runs; while a head is read,
    /// a header timeout after it began; otherwise an idle timeout after the last byte.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Relaxed) {
            NO_HEAD => Some(self.at(self.last_io.load(Ordering::Relaxed)) + limits.idle_timeout),
            began => Some(self.at(began) + limits.header_timeout),
        }
    }
}

/// A request handler running on the connection (dropped when it ends, or is dropped).
struct Handling(Arc<Watch>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.on_write();
    }
}

/// The client socket, telling its [`Watch`] when bytes move.
struct Watched {
    inner: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
