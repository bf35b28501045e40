//! The demo data: `small_count` rows in `small_email` and `large_count` rows in
//! `large_email`, named `User i` / `useri@example.com`, loaded with binary `COPY` over
//! several connections at once.
//!
//! How it stays consistent:
//! - **Ids are explicit and reserved first.** Under a short `SHARE ROW EXCLUSIVE` lock
//!   (it waits for in-flight inserts and keeps new ones out for a moment), the seeder
//!   reads the highest id used so far (the table's `max(id)` or the identity sequence,
//!   whichever is higher), and moves the identity sequence past the rows it is about to
//!   write. Row `i` gets id `i`, so names, emails and ids agree, a rerun counts on from
//!   the current maximum, and concurrent `INSERT`s (the demo app's `/add_large/`) draw
//!   ids above the reserved range and never collide.
//! - **Every batch is one `COPY`, committed on its own.** A cancelled or failed seed
//!   keeps exactly the batches that were committed (their count is reported); the batch
//!   being written is aborted (`CopyFail`) and leaves nothing. If the sequence still
//!   points at the end of the reserved range, it is moved back to the table's maximum, so
//!   the next run continues right after the last row.
//! - **Memory is flat:** rows are generated as they are written; nothing grows with N.
//!
//! Loading connections use `synchronous_commit = off` (each batch commit does not wait
//! for its WAL flush); the final bookkeeping transaction runs with the server default, and
//! since WAL is flushed in order, its commit makes every batch before it durable too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt, pin_mut};
use pgcalm_pg::{PgError, Target};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

/// Rows put into `small_email` by default (as the seed does).
pub const DEFAULT_SMALL_COUNT: u64 = 10;
/// Rows put into `large_email` by default (the seed's management command default).
pub const DEFAULT_LARGE_COUNT: u64 = 1_000_000;
/// Rows per `COPY` (one commit each) by default.
pub const DEFAULT_BATCH_SIZE: u64 = 10_000;
/// Parallel `COPY` connections by default. Measured on a 2-core machine (bench/README.md):
/// two streams load about 1.4 times as fast as one (each server backend gets a core);
/// three are slower than two.
pub const DEFAULT_STREAMS: usize = 2;

/// How often progress is reported while rows are loading.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Rows written between two looks at the cancel flag and the progress counter.
const CHECK_EVERY: u64 = 1024;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Rows for `small_email`.
    pub small_count: u64,
    /// Rows for `large_email`.
    pub large_count: u64,
    /// Rows per `COPY`; each batch is committed on its own.
    pub batch_size: u64,
    /// Parallel `COPY` connections.
    pub streams: usize,
    /// `TRUNCATE small_email, large_email RESTART IDENTITY` first.
    pub truncate: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            small_count: DEFAULT_SMALL_COUNT,
            large_count: DEFAULT_LARGE_COUNT,
            batch_size: DEFAULT_BATCH_SIZE,
            streams: DEFAULT_STREAMS,
            truncate: false,
        }
    }
}

/// Progress of a seed, reported through the callback given to [`seed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedEvent {
    /// Both tables were emptied (`--truncate`).
    Truncated,
    /// `small_email` got its rows.
    SmallInserted {
        /// Rows inserted.
        rows: u64,
        /// `i` of the first row.
        first_i: u64,
    },
    /// Loading `large_email` begins.
    LargeStarted {
        /// Rows to load.
        total: u64,
        /// `i` (and id) of the first row.
        first_i: u64,
        /// Parallel `COPY` connections.
        streams: usize,
        /// Rows per `COPY`.
        batch_size: u64,
    },
    /// Rows sent so far (about every 100 ms while loading, and once at the end).
    LargeProgress {
        /// Rows sent to the server (committed or in an open batch).
        written: u64,
        /// Rows in committed batches.
        committed: u64,
        /// Rows to load.
        total: u64,
    },
    /// `ANALYZE` is running.
    Analyzing,
}

/// What a seed did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Rows inserted into `small_email`.
    pub small_rows: u64,
    /// Rows asked for in `large_email`.
    pub large_requested: u64,
    /// Rows committed into `large_email` (less than requested when cancelled).
    pub large_rows: u64,
    /// `i` (and id) of the first large row.
    pub first_i: u64,
    /// Whether the seed stopped early because it was cancelled.
    pub cancelled: bool,
    /// Parallel `COPY` connections used.
    pub streams: usize,
    /// Whole run, from connecting to the end of `ANALYZE`.
    pub elapsed: Duration,
    /// Loading `large_email` only.
    pub large_elapsed: Duration,
    /// The final `ANALYZE`.
    pub analyze_elapsed: Duration,
}

impl SeedReport {
    /// Large rows per second while loading.
    pub fn rows_per_sec(&self) -> f64 {
        let secs = self.large_elapsed.as_secs_f64();
        if secs > 0.0 {
            self.large_rows as f64 / secs
        } else {
            0.0
        }
    }
}

/// Why a seed failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Options that cannot work.
    #[error("{0}")]
    InvalidOptions(String),
    /// The database could not be reached, or a statement failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A demo table is missing.
    #[error(
        "table {table} does not exist in database {dbname}\n  \
         fix: create the demo tables first with `pgcalm up` (or `pgcalm migrate demoapp 0001`)"
    )]
    MissingTable {
        /// The missing table.
        table: &'static str,
        /// Database looked in.
        dbname: String,
    },
    /// Loading failed part way; the committed batches stay.
    #[error(
        "loading large_email failed after {committed} rows were committed (they stay; a \
         rerun continues after them): {source}"
    )]
    Load {
        /// Rows committed before the failure.
        committed: u64,
        /// The first error.
        #[source]
        source: Box<SeedError>,
    },
}

/// The two demo tables, in the order they are seeded.
#[derive(Debug, Clone, Copy)]
enum DemoTable {
    Small,
    Large,
}

impl DemoTable {
    fn name(self) -> &'static str {
        match self {
            DemoTable::Small => "small_email",
            DemoTable::Large => "large_email",
        }
    }
}

fn query_err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SeedError {
    let wrap = PgError::query(context);
    move |source| SeedError::Pg(wrap(source))
}

/// Maps "relation does not exist" to [`SeedError::MissingTable`].
fn table_err(
    table: DemoTable,
    dbname: &str,
    context: &str,
) -> impl FnOnce(tokio_postgres::Error) -> SeedError {
    let dbname = dbname.to_string();
    let context = context.to_string();
    move |source| {
        if source.code() == Some(&SqlState::UNDEFINED_TABLE) {
            SeedError::MissingTable {
                table: table.name(),
                dbname,
            }
        } else {
            query_err(context)(source)
        }
    }
}

/// A block of ids set aside for this run.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    /// Highest id in use before this run (0 for an empty, fresh table).
    base: u64,
    /// Rows reserved: ids `base + 1 ..= base + count`.
    count: u64,
}

/// Reserves `count` ids in `table`: reads the highest id in use (rows or sequence) and
/// moves the identity sequence to the end of the reserved block, under a lock that keeps
/// concurrent inserts out for the duration of this short transaction.
async fn reserve_ids(
    client: &mut Client,
    table: DemoTable,
    dbname: &str,
    count: u64,
) -> Result<Reservation, SeedError> {
    let t = table.name();
    let (tx, seq) = lock_ids(client, table, dbname).await?;
    let row = tx
        .query_one(
            &format!(
                "SELECT GREATEST(
                    (SELECT COALESCE(max(id), 0) FROM {t}),
                    (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {seq}))"
            ),
            &[],
        )
        .await
        .map_err(query_err(format!("reading the highest id of {t}")))?;
    let base = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    if count > 0 {
        let end = i64::try_from(base + count)
            .map_err(|_| SeedError::InvalidOptions(format!("ids of {t} would overflow bigint")))?;
        tx.execute("SELECT setval($1::text::regclass, $2, true)", &[&seq, &end])
            .await
            .map_err(query_err(format!("reserving ids in {t}")))?;
    }
    tx.commit()
        .await
        .map_err(query_err(format!("reserving ids in {t}")))?;
    Ok(Reservation { base, count })
}

/// After a partial load: if nobody else has drawn from the sequence since the
/// reservation, moves it back to the highest id actually present, so the next run counts
/// on from there without a hole.
async fn release_unused_ids(
    client: &mut Client,
    table: DemoTable,
    dbname: &str,
    reservation: Reservation,
) -> Result<(), SeedError> {
    let t = table.name();
    let (tx, seq) = lock_ids(client, table, dbname).await?;
    let end = (reservation.base + reservation.count) as i64;
    // setval(seq, n, false) makes n the next value: used-so-far = n - 1.
    tx.execute(
        &format!(
            "SELECT setval($1::text::regclass,
                    GREATEST((SELECT COALESCE(max(id), 0) FROM {t}), $2) + 1, false)
             FROM {seq} WHERE is_called AND last_value = $3"
        ),
        &[&seq, &(reservation.base as i64), &end],
    )
    .await
    .map_err(query_err(format!("releasing unused ids of {t}")))?;
    tx.commit()
        .await
        .map_err(query_err(format!("releasing unused ids of {t}")))?;
    Ok(())
}

/// Opens a transaction holding SHARE ROW EXCLUSIVE on `table` (concurrent inserts wait
/// until it ends, so nobody draws ids meanwhile) and returns it with the table's
/// identity sequence.
async fn lock_ids<'c>(
    client: &'c mut Client,
    table: DemoTable,
    dbname: &str,
) -> Result<(tokio_postgres::Transaction<'c>, String), SeedError> {
    let t = table.name();
    let tx = client
        .transaction()
        .await
        .map_err(query_err("starting a transaction"))?;
    tx.batch_execute(&format!("LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE"))
        .await
        .map_err(table_err(table, dbname, &format!("locking {t}")))?;
    let seq = identity_sequence(&tx, table).await?;
    Ok((tx, seq))
}

/// The identity sequence of `table.id`, as a quoted, qualified name.
async fn identity_sequence(
    tx: &tokio_postgres::Transaction<'_>,
    table: DemoTable,
) -> Result<String, SeedError> {
    let t = table.name();
    pgcalm_pg::catalog::column_sequence(tx, t, "id")
        .await?
        .ok_or_else(|| {
            SeedError::InvalidOptions(format!(
                "{t}.id has no identity sequence; the demo schema (migrations/demoapp/0001) \
             declares it GENERATED BY DEFAULT AS IDENTITY"
            ))
        })
}

/// Seeds the demo tables. `on_event` receives progress (it must be cheap: it runs on the
/// loading task). When `cancel` fires, the open batches are aborted (their rows are
/// discarded), committed batches stay, and the report says how many rows that is.
///
/// ```no_run
/// # async fn demo(target: &pgcalm_pg::Target) -> Result<(), pgcalm_demo::SeedError> {
/// use pgcalm_demo::{SeedOptions, seed};
/// let opts = SeedOptions { large_count: 100_000, ..SeedOptions::default() };
/// let report = seed(target, &opts, &|event| eprintln!("{event:?}"), Default::default()).await?;
/// assert_eq!(report.large_rows, 100_000);
/// # Ok(()) }
/// ```
pub async fn seed(
    target: &Target,
    opts: &SeedOptions,
    on_event: &(dyn Fn(SeedEvent) + Send + Sync),
    cancel: CancellationToken,
) -> Result<SeedReport, SeedError> {
    if opts.batch_size == 0 {
        return Err(SeedError::InvalidOptions(
            "--batch-size must be positive".into(),
        ));
    }
    if opts.streams == 0 {
        return Err(SeedError::InvalidOptions(
            "--streams must be positive".into(),
        ));
    }
    let t0 = Instant::now();
    let target = target.with_application_name("pgcalm seed");
    let dbname = target.dbname().to_string();
    let mut admin = target.connect().await?;

    if opts.truncate {
        admin
            .batch_execute("TRUNCATE small_email, large_email RESTART IDENTITY")
            .await
            .map_err(|e| {
                // Name the missing table when there is one.
                if e.code() == Some(&SqlState::UNDEFINED_TABLE) {
                    let table = if e.to_string().contains("small_email") {
                        DemoTable::Small
                    } else {
                        DemoTable::Large
                    };
                    SeedError::MissingTable {
                        table: table.name(),
                        dbname: dbname.clone(),
                    }
                } else {
                    query_err("truncating small_email and large_email")(e)
                }
            })?;
        on_event(SeedEvent::Truncated);
    }

    let small = reserve_ids(&mut admin, DemoTable::Small, &dbname, opts.small_count).await?;
    if opts.small_count > 0 {
        // Ten rows: generated server-side, in one statement.
        admin
            .execute(
                "INSERT INTO small_email (id, name, email)
                 SELECT i, 'User ' || i, 'user' || i || '@example.com'
                 FROM generate_series($1::bigint, $2::bigint) AS i",
                &[
                    &(small.base as i64 + 1),
                    &((small.base + small.count) as i64),
                ],
            )
            .await
            .map_err(table_err(
                DemoTable::Small,
                &dbname,
                "inserting into small_email",
            ))?;
    }
    on_event(SeedEvent::SmallInserted {
        rows: opts.small_count,
        first_i: small.base + 1,
    });

    let large = reserve_ids(&mut admin, DemoTable::Large, &dbname, opts.large_count).await?;
    let streams = opts
        .streams
        .min(opts.large_count.div_ceil(opts.batch_size).max(1) as usize);
    on_event(SeedEvent::LargeStarted {
        total: opts.large_count,
        first_i: large.base + 1,
        streams,
        batch_size: opts.batch_size,
    });

    let t1 = Instant::now();
    let load = load_large(&target, opts, large, streams, on_event, &cancel).await;
    let large_elapsed = t1.elapsed();
    let committed = load.committed;

    if committed < opts.large_count {
        let released = release_unused_ids(&mut admin, DemoTable::Large, &dbname, large).await;
        if let Some(err) = load.error {
            // The load error is the news; the bookkeeping after it is best effort.
            return Err(SeedError::Load {
                committed,
                source: Box::new(err),
            });
        }
        released?;
    }

    on_event(SeedEvent::Analyzing);
    let ta = Instant::now();
    admin
        .batch_execute("ANALYZE small_email, large_email")
        .await
        .map_err(query_err("analyzing small_email and large_email"))?;
    let analyze_elapsed = ta.elapsed();

    Ok(SeedReport {
        small_rows: opts.small_count,
        large_requested: opts.large_count,
        large_rows: committed,
        first_i: large.base + 1,
        cancelled: committed < opts.large_count,
        streams,
        elapsed: t0.elapsed(),
        large_elapsed,
        analyze_elapsed,
    })
}

/// Counters shared by the loading streams.
#[derive(Default)]
struct LoadCounters {
    next_batch: AtomicU64,
    written: AtomicU64,
    committed: AtomicU64,
}

struct LoadOutcome {
    committed: u64,
    error: Option<SeedError>,
}

/// Runs `streams` loading streams over the reserved id block and reports progress until
/// all have stopped. The first error stops the others.
async fn load_large(
    target: &Target,
    opts: &SeedOptions,
    block: Reservation,
    streams: usize,
    on_event: &(dyn Fn(SeedEvent) + Send + Sync),
    cancel: &CancellationToken,
) -> LoadOutcome {
    let total = block.count;
    let counters = LoadCounters::default();
    // Stops the tasks on user cancel or on the first error, without cancelling the caller.
    let stop = cancel.child_token();
    // The streams run inside this task, each driving its own connection: the client's
    // share of the work is small, and keeping it on one thread saves the cross-thread
    // wake-ups of every 4 KB COPY message (measured: fewer context switches, more rows/s).
    let mut tasks: FuturesUnordered<_> = (0..if total > 0 { streams } else { 0 })
        .map(|_| copy_batches(target, block, opts.batch_size, &counters, &stop))
        .collect();
    let progress = |counters: &LoadCounters| SeedEvent::LargeProgress {
        written: counters.written.load(Ordering::Relaxed),
        committed: counters.committed.load(Ordering::Relaxed),
        total,
    };
    let mut error = None;
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            joined = tasks.next() => match joined {
                None => break,
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    stop.cancel();
                    error.get_or_insert(e);
                }
            },
            _ = tick.tick() => on_event(progress(&counters)),
        }
    }
    on_event(progress(&counters));
    LoadOutcome {
        committed: counters.committed.load(Ordering::Relaxed),
        error,
    }
}

/// One loading connection: takes the next batch of ids until none is left or `stop`
/// fires, and writes each batch with one binary `COPY`.
async fn copy_batches(
    target: &Target,
    block: Reservation,
    batch: u64,
    counters: &LoadCounters,
    stop: &CancellationToken,
) -> Result<(), SeedError> {
    let (client, connection) = target.open().await?;
    let load = copy_with(&client, block, batch, counters, stop);
    tokio::select! {
        loaded = load => loaded,
        ended = connection => Err(match ended {
            Err(e) => query_err("loading connection")(e),
            Ok(()) => SeedError::InvalidOptions("the loading connection closed unexpectedly".into()),
        }),
    }
}

async fn copy_with(
    client: &Client,
    block: Reservation,
    batch: u64,
    counters: &LoadCounters,
    stop: &CancellationToken,
) -> Result<(), SeedError> {
    client
        .batch_execute("SET synchronous_commit = off")
        .await
        .map_err(query_err("configuring a loading connection"))?;
    let batches = block.count.div_ceil(batch);
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let k = counters.next_batch.fetch_add(1, Ordering::Relaxed);
        if k >= batches {
            return Ok(());
        }
        let lo = block.base + 1 + k * batch;
        let hi = (lo + batch).min(block.base + block.count + 1);
        let sink = client
            .copy_in::<_, Bytes>(COPY_LARGE)
            .await
            .map_err(query_err("starting COPY into large_email"))?;
        pin_mut!(sink);
        let mut rows = CopyRows::new();
        let mut unreported = 0;
        let mut reported = 0;
        for i in lo..hi {
            rows.push(i);
            if let Some(chunk) = rows.take_full_chunk() {
                sink.as_mut()
                    .send(chunk)
                    .await
                    .map_err(query_err("writing rows into large_email"))?;
            }
            unreported += 1;
            if unreported == CHECK_EVERY {
                counters.written.fetch_add(unreported, Ordering::Relaxed);
                reported += unreported;
                unreported = 0;
                if stop.is_cancelled() {
                    // Dropping the sink sends CopyFail: this batch leaves nothing.
                    counters.written.fetch_sub(reported, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
        sink.as_mut()
            .send(rows.finish())
            .await
            .map_err(query_err("writing rows into large_email"))?;
        // Once the batch is complete it is committed even if a cancel arrives now, so the
        // committed count is exact.
        let rows = sink
            .as_mut()
            .finish()
            .await
            .map_err(query_err("finishing COPY into large_email"))?;
        counters.written.fetch_add(unreported, Ordering::Relaxed);
        counters.committed.fetch_add(rows, Ordering::Relaxed);
    }
}

const COPY_LARGE: &str = "COPY large_email (id, name, email) FROM STDIN (FORMAT binary)";

/// Size of the chunks handed to the connection.
const COPY_CHUNK: usize = 64 * 1024;

/// Rows `(i, 'User i', 'useri@example.com')` in PostgreSQL's binary `COPY` format, in
/// 64 KB chunks.
///
/// Why not `BinaryCopyInWriter`: it encodes each value through `ToSql` with a type check
/// and hands the connection 4 KB pieces in a buffer that is reallocated as it grows; on 2
/// cores the client then takes CPU from the two server backends. Writing the three fixed
/// fields directly cut the client's CPU from 0.69 s to 0.27 s per 6M rows and raised
/// the load rate by 7-10% (bench/README.md). The format is the documented one (see
/// `COPY`, "Binary Format"); the unit tests check it against `ToSql`'s encodings.
struct CopyRows {
    buf: BytesMut,
    digits: [u8; 20],
}

impl CopyRows {
    /// Signature, flags field (no OIDs), header extension length (none).
    const HEADER: &'static [u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
    /// Field count -1 ends the data.
    const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

    fn new() -> Self {
        let mut buf = BytesMut::with_capacity(COPY_CHUNK + 256);
        buf.extend_from_slice(Self::HEADER);
        Self {
            buf,
            digits: [0; 20],
        }
    }

    /// Appends row `i`: three fields, each a big-endian length and its bytes.
    fn push(&mut self, i: u64) {
        let digits = decimal(i, &mut self.digits);
        let n = digits.len() as i32;
        let buf = &mut self.buf;
        buf.put_i16(3);
        buf.put_i32(8);
        buf.put_i64(i as i64);
        buf.put_i32(5 + n);
        buf.put_slice(b"User ");
        buf.put_slice(digits.as_bytes());
        buf.put_i32(16 + n);
        buf.put_slice(b"user");
        buf.put_slice(digits.as_bytes());
        buf.put_slice(b"@example.com");
    }

    /// The rows so far once they fill a chunk; a fresh buffer takes the next ones.
    fn take_full_chunk(&mut self) -> Option<Bytes> {
        (self.buf.len() >= COPY_CHUNK).then(|| {
            std::mem::replace(&mut self.buf, BytesMut::with_capacity(COPY_CHUNK + 256)).freeze()
        })
    }

    /// The remaining rows and the trailer.
    fn finish(mut self) -> Bytes {
        self.buf.put_slice(&Self::TRAILER);
        self.buf.freeze()
    }
}

/// `n` in decimal, written into `buf` (`core::fmt` was a visible part of the client's time).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::{CopyRows, decimal};
    use tokio_postgres::types::{ToSql, Type};

    /// One field as `ToSql` encodes it, with its length prefix.
    fn field(value: &(dyn ToSql + Sync), ty: &Type) -> Vec<u8> {
        let mut data = bytes::BytesMut::new();
        value.to_sql_checked(ty, &mut data).unwrap();
        let mut out = (data.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn copy_rows_match_the_binary_format_and_tosql() {
        let mut rows = CopyRows::new();
        rows.push(7);
        rows.push(10_000_000);
        let got = rows.finish();

        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend_from_slice(&0i32.to_be_bytes()); // flags
        want.extend_from_slice(&0i32.to_be_bytes()); // header extension
        for i in [7i64, 10_000_000] {
            want.extend_from_slice(&3i16.to_be_bytes());
            want.extend(field(&i, &Type::INT8));
            want.extend(field(&format!("User {i}"), &Type::VARCHAR));
            want.extend(field(&format!("user{i}@example.com"), &Type::VARCHAR));
        }
        want.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(got.as_ref(), want.as_slice());
    }

    #[test]
    fn copy_rows_come_in_chunks() {
        let mut rows = CopyRows::new();
        let mut chunks = 0;
        for i in 0..10_000 {
            rows.push(i);
            if let Some(chunk) = rows.take_full_chunk() {
                assert!(chunk.len() >= super::COPY_CHUNK && chunk.len() < super::COPY_CHUNK + 64);
                chunks += 1;
            }
        }
        assert!(chunks >= 5, "{chunks}");
    }

    #[test]
    fn formats_decimals_like_display() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 99, 12_345, 10_000_000, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
    }
}
