//! The one statement splitter, in two steps so each command pays only for what it needs:
//!
//! - [`split_unparsed`]: a lexer (`lexer.rs`: PostgreSQL's scanner rules for literals,
//!   quoted identifiers and comments, in Rust) alone cuts a range of a source text into
//!   statements, each with its byte span, line and column and the comments around it
//!   (for `-- pgcalm:ignore`), and no parse tree. A statement ends at a `;` token outside
//!   parentheses and outside a `BEGIN ATOMIC ... END` routine body (found the way psql
//!   finds it, then confirmed with the parser). The range is scanned in chunks of about
//!   [`CHUNK_BYTES`], so memory stays flat on a file of any size.
//! - [`for_each_statement`] (and [`split`], which collects it): the same statements with
//!   their parse trees from PostgreSQL's own parser (pg_query), one chunk's statements at
//!   a time on parse threads ([`PARSE_STACK_BYTES`] stacks, two when the text is big and
//!   the machine has two cores), each tree dropped once the caller has seen it. A syntax
//!   error is placed at its token by re-parsing token prefixes of its chunk (pg_query
//!   reports no position).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use pg_query::NodeEnum;
use pg_query::protobuf::{RawStmt, ScanToken, Token};
use serde::Serialize;

/// Byte offsets of line starts, for offset -> line/column in O(log n).
#[derive(Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// The 0-based line of the last answer: callers ask in source order, and a search
    /// from there ends in a step or two where a binary search mispredicts a dozen times.
    last: AtomicUsize,
}

impl LineIndex {
    /// Indexes `source`.
    pub fn new(source: &str) -> LineIndex {
        // About one line per 30 bytes of SQL.
        let mut starts = Vec::with_capacity(source.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', source.as_bytes()).map(|i| i + 1));
        LineIndex {
            starts,
            last: AtomicUsize::new(0),
        }
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub fn line_col(&self, source: &str, byte: usize) -> (usize, usize) {
        let byte = byte.min(source.len());
        let line = self.line_index(byte);
        let start = self.starts[line];
        (line + 1, source[start..byte].chars().count() + 1)
    }

    /// 0-based line of `byte`: the last line start at or before it.
    fn line_index(&self, byte: usize) -> usize {
        let starts = &self.starts;
        let hint = self.last.load(Ordering::Relaxed).min(starts.len() - 1);
        let line = if starts[hint] <= byte {
            let ahead = &starts[hint + 1..];
            match ahead.iter().take(4).position(|&s| s > byte) {
                Some(n) => hint + n,
                None => hint + ahead.partition_point(|&s| s <= byte),
            }
        } else {
            starts[..hint].partition_point(|&s| s <= byte) - 1
        };
        self.last.store(line, Ordering::Relaxed);
        line
    }
}

/// 1-based line and column (in characters) of a byte offset, without an index.
pub fn line_col(source: &str, byte: usize) -> (usize, usize) {
    let before = &source[..byte.min(source.len())];
    let line_start = memchr::memrchr(b'\n', before.as_bytes()).map_or(0, |i| i + 1);
    let line = memchr::memchr_iter(b'\n', before.as_bytes()).count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Where a statement (or a finding) is in its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    /// Byte offset of the first token.
    pub start: usize,
    /// Byte offset just past the last token (the `;` excluded).
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column (characters) of `start`.
    pub column: usize,
}

impl Span {
    /// The byte range.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// One statement of a source text.
#[derive(Debug, Clone)]
pub struct SourceStatement {
    /// 0-based position among the statements of the range.
    pub index: usize,
    /// Its text in the source, from its first to its last token.
    pub span: Span,
    /// The parse tree; `None` from [`split_unparsed`].
    pub node: Option<NodeEnum>,
    /// Comments that belong to it: those after the previous statement's line and
    /// before it, and those on its own last line after it.
    pub comments: Vec<Range<usize>>,
    /// Byte offset in the source that the `location` fields inside `node` count from
    /// (a text is parsed a chunk at a time).
    pub node_base: usize,
}

impl SourceStatement {
    /// Its SQL text.
    pub fn sql<'a>(&self, source: &'a str) -> &'a str {
        &source[self.span.range()]
    }
}

/// A syntax error, placed at the token the parser stopped at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxError {
    /// PostgreSQL's message (`syntax error at or near "CHECK"`).
    pub message: String,
    /// Byte offset of the failing token.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, when the failing token was found.
    pub column: Option<usize>,
    /// The line with a caret under the token.
    pub excerpt: String,
}

/// Stack size of the threads that parse ([`with_parse_stack`]). pg_query's decoder
/// (prost) recurses once per level of the tree, and pg_query emits trees up to 10,000
/// protobuf messages deep (`PG_QUERY_PROTOBUF_MAX_DEPTH`; a deeper statement is refused
/// with "parse tree is nested too deeply"). Measured in a debug build: 36 KB of stack
/// per `||` level (two messages), so the deepest tree needs about 180 MB there and far
/// less in a release build. Only the pages a parse touches become resident.
pub(crate) const PARSE_STACK_BYTES: usize = 256 << 20;

thread_local! {
    static ON_PARSE_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on a thread with a 256 MB stack (`PARSE_STACK_BYTES`), or right here when this
/// thread is one already: decoding a deep tree overflows the 2 MB of an ordinary thread
/// (a tokio worker, a test). If no such thread can be created (no memory for its
/// stack), `f` runs here.
pub fn with_parse_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if ON_PARSE_STACK.get() {
        return f();
    }
    let job = Mutex::new(Some(f));
    let take = || job.lock().unwrap_or_else(|e| e.into_inner()).take();
    let spawned = std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("pgcalm-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, || {
                ON_PARSE_STACK.set(true);
                take().map(|f| f())
            })
            .ok()?;
        Some(
            handle
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    match spawned.flatten() {
        Some(out) => out,
        None => take().expect("the job runs once")(),
    }
}

/// Spawns a parse thread (see [`with_parse_stack`]) in `scope`.
fn spawn_parse_thread<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, T>> {
    std::thread::Builder::new()
        .name("pgcalm-parse".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn_scoped(scope, || {
            ON_PARSE_STACK.set(true);
            f()
        })
}

/// A parse and where its answer goes.
type ParseJob = (String, mpsc::Sender<Result<Vec<RawStmt>, pg_query::Error>>);

/// A parse thread kept for callers on ordinary threads (the runner checking one
/// statement at a time): a round trip per parse rather than a new thread. `None` if it
/// could not be started.
fn parse_service() -> Option<&'static mpsc::Sender<ParseJob>> {
    static SERVICE: std::sync::OnceLock<Option<mpsc::Sender<ParseJob>>> =
        std::sync::OnceLock::new();
    SERVICE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<ParseJob>();
            std::thread::Builder::new()
                .name("pgcalm-parse".into())
                .stack_size(PARSE_STACK_BYTES)
                .spawn(move || {
                    ON_PARSE_STACK.set(true);
                    for (sql, answer) in rx {
                        let _ = answer.send(parse_stmts(&sql));
                    }
                })
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// The C interface of `c/parse_protobuf.c` (pgcalm's entry to libpg_query's parser),
/// and, for the test that compares the two, libpg_query's own protobuf parse.
mod ffi {
    use std::ffi::{c_char, c_int};

    /// `PgQueryError` of pg_query.h.
    #[repr(C)]
    pub(super) struct PgQueryError {
        pub(super) message: *mut c_char,
        funcname: *mut c_char,
        filename: *mut c_char,
        lineno: c_int,
        cursorpos: c_int,
        context: *mut c_char,
    }

    /// `PgcalmParseResult` of parse_protobuf.c.
    #[repr(C)]
    pub(super) struct PgcalmParseResult {
        pub(super) data: *const c_char,
        pub(super) len: usize,
        buffer: *mut c_char,
        pub(super) error: *mut PgQueryError,
        stderr_buffer: *mut c_char,
    }

    unsafe extern "C" {
        pub(super) fn pgcalm_parse_protobuf(
            input: *const c_char,
            parser_options: c_int,
        ) -> PgcalmParseResult;
        pub(super) fn pgcalm_free_parse_result(result: PgcalmParseResult);
    }

    #[cfg(test)]
    pub(super) mod libpg_query {
        use super::PgQueryError;
        use std::ffi::{c_char, c_int};

        #[repr(C)]
        pub(in super::super) struct PgQueryProtobuf {
            pub(in super::super) len: usize,
            pub(in super::super) data: *mut c_char,
        }

        #[repr(C)]
        pub(in super::super) struct PgQueryProtobufParseResult {
            pub(in super::super) parse_tree: PgQueryProtobuf,
            stderr_buffer: *mut c_char,
            pub(in super::super) error: *mut PgQueryError,
        }

        unsafe extern "C" {
            pub(in super::super) fn pg_query_parse_protobuf_opts(
                input: *const c_char,
                parser_options: c_int,
            ) -> PgQueryProtobufParseResult;
            pub(in super::super) fn pg_query_free_protobuf_parse_result(
                result: PgQueryProtobufParseResult,
            );
        }
    }
}

/// What `pg_query::parse(sql, 0)` returns as `.protobuf.stmts`, without the rest of its
/// answer (`pg_query::parse` also walks every tree to list its tables, functions and
/// filter columns, which lint never reads), and written by pgcalm's own protobuf writer
/// (`c/parse_protobuf.c`: a fifth of lint's time went to libpg_query's).
fn parse_stmts(sql: &str) -> Result<Vec<RawStmt>, pg_query::Error> {
    use prost::Message;
    let input = std::ffi::CString::new(sql)?;
    // SAFETY: the declarations in `ffi` match parse_protobuf.c; the input is a
    // NUL-terminated string that outlives the call; the result is read before it is
    // freed, once.
    unsafe {
        let result = ffi::pgcalm_parse_protobuf(input.as_ptr(), 0);
        let parsed = if !result.error.is_null() {
            let message = std::ffi::CStr::from_ptr((*result.error).message);
            Err(pg_query::Error::Parse(
                message.to_string_lossy().to_string(),
            ))
        } else {
            let data = if result.len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(result.data as *const u8, result.len)
            };
            pg_query::protobuf::ParseResult::decode(data)
                .map(|p| p.stmts)
                .map_err(pg_query::Error::Decode)
        };
        ffi::pgcalm_free_parse_result(result);
        parsed
    }
}

/// [`parse_stmts`] through libpg_query's own protobuf writer: what the tests compare
/// pgcalm's writer with.
#[cfg(test)]
fn parse_stmts_by_libpg_query(sql: &str) -> Result<Vec<RawStmt>, pg_query::Error> {
    use prost::Message;
    let input = std::ffi::CString::new(sql)?;
    // SAFETY: as in parse_stmts, with pg_query.h's declarations.
    unsafe {
        let result = ffi::libpg_query::pg_query_parse_protobuf_opts(input.as_ptr(), 0);
        let parsed = if !result.error.is_null() {
            let message = std::ffi::CStr::from_ptr((*result.error).message);
            Err(pg_query::Error::Parse(
                message.to_string_lossy().to_string(),
            ))
        } else {
            let data = if result.parse_tree.len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(
                    result.parse_tree.data as *const u8,
                    result.parse_tree.len,
                )
            };
            pg_query::protobuf::ParseResult::decode(data)
                .map(|p| p.stmts)
                .map_err(pg_query::Error::Decode)
        };
        ffi::libpg_query::pg_query_free_protobuf_parse_result(result);
        parsed
    }
}

/// PostgreSQL's parser (pg_query) on a parse stack: the raw statements of `sql`.
pub(crate) fn parse_raw(sql: &str) -> Result<Vec<RawStmt>, pg_query::Error> {
    let here = || parse_stmts(sql);
    if ON_PARSE_STACK.get() {
        return here();
    }
    if let Some(service) = parse_service() {
        let (tx, rx) = mpsc::channel();
        if service.send((sql.to_string(), tx)).is_ok()
            && let Ok(answer) = rx.recv()
        {
            return answer;
        }
    }
    with_parse_stack(here)
}

/// The parse tree of the first statement of `sql` (`None` when it does not parse).
pub fn parse_first(sql: &str) -> Option<NodeEnum> {
    parse_raw(sql).ok()?.into_iter().next()?.stmt?.node
}

/// Target size of the text the scanner reads at a time, which is also how much SQL is
/// parsed at a time (more when one statement is bigger). A parse tree takes about 200
/// times its SQL in memory; measured (release build, `pgcalm lint` of 10,000 statements):
/// 8, 16, 32 and 64 KB chunks ran within noise of each other (16 KB: 0.08 s CPU), peak
/// RSS 56, 64, 70 and 86 MB.
pub(crate) const CHUNK_BYTES: usize = 16 * 1024;

/// Chunks parsed ahead of the caller (on two threads): enough to keep both busy while
/// the caller lints the oldest (2 to 4 measured the same).
const CHUNKS_IN_FLIGHT: usize = 3;

/// Texts at least this big are parsed on two threads (when the machine has two cores):
/// below it, handing chunks between threads costs more CPU than it saves time. Measured
/// (release build, 2 cores, `pgcalm lint --format json`, medians of 7-15 runs): 0.3, 0.8
/// and 2.4 MB took the same wall time on two threads as on one, with 15-25% more CPU
/// time (0.8 MB: 91 against 72 ms, 128 context switches against 10); 7.9 MB took 0.46 s
/// instead of 0.70 s for the same CPU time.
const PARALLEL_PARSE_MIN_BYTES: usize = 4 << 20;

fn is_comment(t: &ScanToken) -> bool {
    t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32
}

/// The scanner's tokens of `text`. (pg_query builds its result slice from a null pointer
/// when there is no token, which a debug build refuses: whitespace is answered here.)
fn tokens_of(text: &str) -> Result<Vec<ScanToken>, pg_query::Error> {
    // PostgreSQL's scanner's whitespace: [ \t\n\r\f\v].
    if text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b))
    {
        return Ok(Vec::new());
    }
    pg_query::scan_tokens(text)
}

/// A statement the scanner is in the middle of.
struct Open {
    /// Byte offset of its first token.
    first: usize,
    /// Byte offset just past its last token so far.
    tail: usize,
    /// Open parentheses.
    parens: u32,
    /// Tokens seen, for recognising `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    seen: u32,
    /// `CREATE [OR REPLACE]` so far.
    create_prefix: bool,
    /// It creates a function or procedure: its body may be `BEGIN ATOMIC ... END`.
    routine: bool,
    /// psql's count, in a routine and outside parentheses, of `BEGIN ATOMIC` (and CASE
    /// inside one) minus END: a `;` ends the statement only at 0. (psql counts any
    /// BEGIN; `CREATE FUNCTION begin()` would then never end.)
    begin_depth: u32,
    /// The previous token was BEGIN.
    after_begin: bool,
    /// A `BEGIN ATOMIC` was seen: the end found by counting is confirmed with the parser.
    saw_begin: bool,
    /// Comments after its first token, sorted out when it ends.
    comments: Vec<Range<usize>>,
}

impl Open {
    fn new(first: usize) -> Open {
        Open {
            first,
            tail: first,
            parens: 0,
            seen: 0,
            create_prefix: false,
            routine: false,
            begin_depth: 0,
            after_begin: false,
            saw_begin: false,
            comments: Vec::new(),
        }
    }

    /// Takes a significant token other than a terminating `;`.
    fn token(&mut self, kind: i32, end: usize) {
        let is = |t: Token| kind == t as i32;
        self.tail = end;
        if self.seen < 4 {
            match self.seen {
                0 => self.create_prefix = is(Token::Create),
                _ if self.create_prefix && (is(Token::Function) || is(Token::Procedure)) => {
                    self.routine = true;
                    self.create_prefix = false;
                }
                1 if self.create_prefix => self.create_prefix = is(Token::Or),
                2 if self.create_prefix => self.create_prefix = is(Token::Replace),
                _ => self.create_prefix = false,
            }
            self.seen += 1;
        }
        if is(Token::Ascii40) {
            self.parens += 1;
        } else if is(Token::Ascii41) {
            self.parens = self.parens.saturating_sub(1);
        } else if self.routine && self.parens == 0 {
            if std::mem::take(&mut self.after_begin) && is(Token::Atomic) {
                self.begin_depth += 1;
                self.saw_begin = true;
            } else if is(Token::BeginP) {
                self.after_begin = true;
            } else if is(Token::Case) && self.begin_depth > 0 {
                self.begin_depth += 1;
            } else if is(Token::EndP) {
                self.begin_depth = self.begin_depth.saturating_sub(1);
            }
        }
    }

    /// Whether the `;` ending at `semicolon_end` ends it.
    fn ends_at(&self, source: &str, semicolon_end: usize) -> bool {
        if self.parens > 0 || self.begin_depth > 0 {
            return false;
        }
        if !self.saw_begin {
            return true;
        }
        // A routine body: confirm with the parser (no parse tree is built) that the text
        // so far is one whole statement. "at end of input" means the body goes on; any
        // other error is the statement's own, reported when it is parsed.
        match pg_query::split_with_parser(&source[self.first..semicolon_end]) {
            Ok(_) => true,
            Err(e) => !e.to_string().contains("at end of input"),
        }
    }
}

/// Cuts a range of a source text into statements with the scanner, a chunk at a time.
struct Cutter<'a> {
    source: &'a str,
    end: usize,
    lines: LineIndex,
    /// Where the next chunk starts: the range start, or just after a statement's `;`.
    pos: usize,
    /// The line the last statement ended on: a comment after it on that line is its own.
    prev_line: Option<usize>,
    /// Comments before `pos` that belong to the next statement.
    pending: Vec<Range<usize>>,
    /// Bytes a chunk starts with ([`CHUNK_BYTES`]; tests cut smaller).
    chunk: usize,
    done: bool,
}

impl<'a> Cutter<'a> {
    fn new(source: &'a str, range: Range<usize>) -> Cutter<'a> {
        Cutter {
            source,
            end: range.end,
            lines: LineIndex::new(&source[..range.end]),
            pos: range.start,
            prev_line: None,
            pending: Vec::new(),
            chunk: CHUNK_BYTES,
            done: false,
        }
    }

    fn line(&self, byte: usize) -> usize {
        self.lines.line_col(self.source, byte).0
    }

    /// The statements of the next chunk (never empty), `None` at the end of the range.
    fn next_batch(&mut self) -> Option<Result<Vec<SourceStatement>, SyntaxError>> {
        let mut size = self.chunk;
        while !self.done {
            // Cut after a newline: a token never spans one except inside a literal or a
            // comment, which then ends unterminated, and the chunk grows.
            let cut = if self.end - self.pos <= size {
                self.end
            } else {
                let from = self.pos + size;
                self.source.as_bytes()[from..self.end]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(self.end, |i| from + i + 1)
            };
            let at_end = cut == self.end;
            let tokens = match crate::lexer::tokens(&self.source[self.pos..cut]) {
                Ok(t) => t,
                Err(_) if !at_end => {
                    size *= 2;
                    continue;
                }
                Err(_) => {
                    self.done = true;
                    return Some(Err(self.scan_error()));
                }
            };
            let statements = self.cut(&tokens, at_end);
            if !statements.is_empty() {
                return Some(Ok(statements));
            }
            if !at_end && self.pos < cut {
                // Nothing ended in the chunk: a statement bigger than it.
                size *= 2;
            }
        }
        None
    }

    /// Takes the statements that end in a chunk's tokens (all of them at the end of the
    /// range) and moves `pos` past the last one's `;`.
    fn cut(&mut self, tokens: &[ScanToken], at_end: bool) -> Vec<SourceStatement> {
        let base = self.pos;
        // A statement takes hundreds of bytes (its tree's place): growing the vector
        // copied them all at every doubling.
        let semicolons = tokens.iter().filter(|t| t.token == Token::Ascii59 as i32);
        let mut out: Vec<SourceStatement> = Vec::with_capacity(semicolons.count() + 1);
        let mut pending = std::mem::take(&mut self.pending);
        let mut prev_line = self.prev_line;
        let mut open: Option<Open> = None;
        // Just past the last `;` that ended a statement (or an empty one).
        let mut resume = None;
        for t in tokens {
            let (start, end) = (base + t.start as usize, base + t.end as usize);
            if is_comment(t) {
                match &mut open {
                    Some(o) => o.comments.push(start..end),
                    // After the previous statement on its line: it is the previous
                    // statement's (already taken if that one ended in an earlier chunk).
                    None if prev_line == Some(self.line(start)) => {
                        if let Some(p) = out.last_mut() {
                            p.comments.push(start..end);
                        }
                    }
                    None => pending.push(start..end),
                }
                continue;
            }
            if t.token == Token::Ascii59 as i32 {
                match &open {
                    None => {
                        resume = Some(end);
                        continue;
                    }
                    Some(o) if o.ends_at(self.source, end) => {
                        let o = open.take().expect("matched Some");
                        self.close(o, &mut out, &mut pending, &mut prev_line);
                        resume = Some(end);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            open.get_or_insert_with(|| Open::new(start))
                .token(t.token, end);
        }
        if at_end {
            if let Some(o) = open.take() {
                self.close(o, &mut out, &mut pending, &mut prev_line);
            }
            self.done = true;
            self.pos = self.end;
        } else if let Some(r) = resume {
            // What follows `r` is read again with the next chunk.
            pending.retain(|c| c.end <= r);
            self.pos = r;
        } else {
            // Nothing ended: all of it is read again with a bigger chunk.
            pending.retain(|c| c.end <= base);
            self.pending = pending;
            return out;
        }
        self.pending = pending;
        self.prev_line = prev_line;
        out
    }

    /// Ends a statement: its span, its comments (those before it, and those after its
    /// last token on its last line), and what follows on other lines goes to the next.
    fn close(
        &self,
        o: Open,
        out: &mut Vec<SourceStatement>,
        pending: &mut Vec<Range<usize>>,
        prev_line: &mut Option<usize>,
    ) {
        let (line, column) = self.lines.line_col(self.source, o.first);
        let end_line = self.line(o.tail);
        let mut comments = std::mem::take(pending);
        for c in o.comments {
            if c.start < o.tail {
                // Inside the statement: part of it, not a directive for it.
            } else if self.line(c.start) == end_line {
                comments.push(c);
            } else {
                pending.push(c);
            }
        }
        out.push(SourceStatement {
            index: 0,
            span: Span {
                start: o.first,
                end: o.tail,
                line,
                column,
            },
            node: None,
            comments,
            node_base: 0,
        });
        *prev_line = Some(end_line);
    }

    /// The error for text the scanner refuses (an unterminated literal or comment):
    /// what the parser says about the rest of the range, placed as well as it can be.
    fn scan_error(&self) -> SyntaxError {
        let range = self.pos..self.end;
        with_parse_stack(|| {
            let text = &self.source[range.clone()];
            let error = parse_raw(text)
                .err()
                .or_else(|| pg_query::scan_tokens(text).err())
                .unwrap_or_else(|| pg_query::Error::Scan("unterminated literal or comment".into()));
            locate_syntax_error(self.source, range, error)
        })
    }
}

/// Splits `source[range]` into statements with PostgreSQL's scanner only: spans, lines
/// and comments, no parse tree (`node` is `None`). It finds no syntax error but the
/// scanner's (an unterminated literal or comment); [`split`] and [`for_each_statement`]
/// give the same statements, parsed.
pub fn split_unparsed(
    source: &str,
    range: Range<usize>,
) -> Result<Vec<SourceStatement>, SyntaxError> {
    let mut cutter = Cutter::new(source, range);
    let mut out = Vec::new();
    while let Some(batch) = cutter.next_batch() {
        out.extend(batch?);
    }
    for (i, s) in out.iter_mut().enumerate() {
        s.index = i;
    }
    Ok(out)
}

/// Splits `source[range]` into statements with PostgreSQL's parser, with their parse
/// trees. Memory grows with the text: a caller that looks at each statement once
/// should use [`for_each_statement`].
pub fn split(source: &str, range: Range<usize>) -> Result<Vec<SourceStatement>, SyntaxError> {
    let mut out = Vec::new();
    for_each_statement(source, range, |s| out.push(s))?;
    Ok(out)
}

/// Gives `f` each statement of `source[range]` in order, with its parse tree, and drops
/// it after: a chunk of statements is parsed at a time (ahead of `f`, on two threads
/// for a big text), so memory stays flat whatever the size. Returns the number of
/// statements; on a syntax error, `f` has seen the statements before it.
pub fn for_each_statement(
    source: &str,
    range: Range<usize>,
    f: impl FnMut(SourceStatement),
) -> Result<usize, SyntaxError> {
    let big = range.len() >= PARALLEL_PARSE_MIN_BYTES;
    for_each_in_chunks(source, range, big, f)
}

/// [`for_each_statement`], on two parse threads when `big` (and two cores).
fn for_each_in_chunks(
    source: &str,
    range: Range<usize>,
    big: bool,
    mut f: impl FnMut(SourceStatement),
) -> Result<usize, SyntaxError> {
    let mut cutter = Cutter::new(source, range);
    let mut index = 0;
    let mut emit = |index: &mut usize, batch: Vec<SourceStatement>| {
        for mut s in batch {
            s.index = *index;
            *index += 1;
            f(s);
        }
    };
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let (job_tx, job_rx) = mpsc::channel::<(usize, Vec<SourceStatement>)>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        // Dropped when this closure returns, which ends the workers.
        let job_tx = job_tx;
        let mut workers = 0;
        for _ in 0..if big && two_cores { 2 } else { 0 } {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            let started = spawn_parse_thread(scope, move || {
                loop {
                    let job = job_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((seq, batch)) = job else { break };
                    // A panic reaches the caller's thread, not a worker that is waited
                    // for forever.
                    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        parse_batch(source, batch)
                    }));
                    if done_tx.send((seq, parsed)).is_err() {
                        break;
                    }
                }
            });
            // Without memory for another parse stack, fewer workers (or none) do it.
            workers += usize::from(started.is_ok());
        }
        drop(done_tx);
        if workers == 0 {
            while let Some(batch) = cutter.next_batch() {
                emit(&mut index, parse_batch(source, batch?)?);
            }
            return Ok(index);
        }
        let (mut sent, mut next) = (0, 0);
        let mut scan_error = None;
        let mut early = BTreeMap::new();
        loop {
            while sent - next < CHUNKS_IN_FLIGHT && scan_error.is_none() {
                match cutter.next_batch() {
                    Some(Ok(batch)) => {
                        job_tx
                            .send((sent, batch))
                            .expect("the workers wait for jobs");
                        sent += 1;
                    }
                    Some(Err(e)) => scan_error = Some(e),
                    None => break,
                }
            }
            if next == sent {
                break;
            }
            let parsed = loop {
                if let Some(r) = early.remove(&next) {
                    break r;
                }
                let (seq, r) = done_rx.recv().expect("a worker answers each job it takes");
                early.insert(seq, r);
            };
            let parsed = parsed.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            emit(&mut index, parsed?);
            next += 1;
        }
        scan_error.map_or(Ok(index), Err)
    })
}

/// Parses a chunk's statements (as one text, from the first statement's first token to
/// the last one's last) and gives each its tree. Should the parser see the statements
/// otherwise than the scanner did (it never has), its view is taken.
fn parse_batch(
    source: &str,
    mut batch: Vec<SourceStatement>,
) -> Result<Vec<SourceStatement>, SyntaxError> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Ok(batch);
    };
    let (start, end) = (first.span.start, last.span.end);
    let text = &source[start..end];
    // Locating an error parses too: all of it on a parse stack.
    let raw = with_parse_stack(|| {
        parse_raw(text).map_err(|e| locate_syntax_error(source, start..end, e))
    })?;
    let aligned = raw.len() == batch.len()
        && raw.iter().zip(&batch).all(|(r, s)| {
            let from = start + r.stmt_location.max(0) as usize;
            let to = if r.stmt_len == 0 {
                end
            } else {
                from + r.stmt_len as usize
            };
            from <= s.span.start && s.span.end <= to
        });
    if !aligned {
        // The comments before the first statement and after the last are outside the range.
        let mut out = parsed_as_one(source, start..end, raw);
        if let (Some(first), Some(scanned)) = (out.first_mut(), batch.first()) {
            let before = scanned.comments.iter().filter(|c| c.end <= start).cloned();
            first.comments.splice(0..0, before);
        }
        if let (Some(last), Some(scanned)) = (out.last_mut(), batch.last()) {
            let after = scanned.comments.iter().filter(|c| c.start >= end).cloned();
            last.comments.extend(after);
        }
        return Ok(out);
    }
    for (s, r) in batch.iter_mut().zip(raw) {
        s.node = r.stmt.and_then(|n| n.node);
        s.node_base = start;
    }
    Ok(batch)
}

/// The statements of `source[range]` as the parser delimits them (`parsed`, its parse of
/// the range): spans from the parser's statement ranges, comments from the range's
/// tokens. (The splitter before chunks; the chunked one is tested against it.)
fn parsed_as_one(source: &str, range: Range<usize>, parsed: Vec<RawStmt>) -> Vec<SourceStatement> {
    let start = range.start;
    let text = &source[range];
    let tokens = tokens_of(text).unwrap_or_default();
    let lines = LineIndex::new(source);
    let mut statements: Vec<SourceStatement> = Vec::new();
    let mut comment_cursor = 0usize;
    let comments: Vec<&ScanToken> = tokens.iter().filter(|t| is_comment(t)).collect();
    for raw in parsed {
        let loc = raw.stmt_location.max(0) as usize;
        let len = if raw.stmt_len == 0 {
            text.len() - loc
        } else {
            raw.stmt_len as usize
        };
        let first = tokens.partition_point(|t| (t.start as usize) < loc);
        let end_limit = loc + len;
        let (mut lead, mut tail) = (None, None);
        for t in &tokens[first..] {
            if t.start as usize >= end_limit {
                break;
            }
            if !is_comment(t) {
                lead.get_or_insert(t.start as usize);
                tail = Some(t.end as usize);
            }
        }
        let (Some(lead), Some(tail)) = (lead, tail) else {
            continue;
        };
        let mut sql_end = tail;
        while sql_end > lead && text[..sql_end].ends_with(';') {
            sql_end -= 1;
            sql_end = lead + text[lead..sql_end].trim_end().len();
        }
        let (line, column) = lines.line_col(source, start + lead);
        let mut own = Vec::new();
        while comment_cursor < comments.len() && (comments[comment_cursor].end as usize) <= lead {
            let c = comments[comment_cursor];
            let c_range = start + c.start as usize..start + c.end as usize;
            let claimed_by_previous = statements.last_mut().filter(|p| {
                p.span.end <= c_range.start
                    && lines.line_col(source, p.span.end).0
                        == lines.line_col(source, c_range.start).0
            });
            match claimed_by_previous {
                Some(p) => p.comments.push(c_range),
                None => own.push(c_range),
            }
            comment_cursor += 1;
        }
        while comment_cursor < comments.len() && (comments[comment_cursor].end as usize) <= tail {
            comment_cursor += 1;
        }
        statements.push(SourceStatement {
            index: statements.len(),
            span: Span {
                start: start + lead,
                end: start + sql_end,
                line,
                column,
            },
            node: raw.stmt.and_then(|n| n.node),
            node_base: start,
            comments: own,
        });
    }
    for c in &comments[comment_cursor..] {
        let c_range = start + c.start as usize..start + c.end as usize;
        if let Some(p) = statements.last_mut()
            && lines.line_col(source, p.span.end).0 == lines.line_col(source, c_range.start).0
        {
            p.comments.push(c_range);
        }
    }
    statements
}

/// pg_query reports a syntax error without its position. The LR parser fails at the
/// first token it cannot shift, so a prefix of the text fails at that same token iff
/// the prefix contains it: binary search over token prefixes finds it.
fn locate_syntax_error(source: &str, range: Range<usize>, e: pg_query::Error) -> SyntaxError {
    let start = range.start;
    let mut message = match &e {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) | pg_query::Error::Split(m) => {
            m.clone()
        }
        other => other.to_string(),
    };
    if message.contains("nested too deeply") || message.contains("stack depth limit exceeded") {
        // Valid SQL, maybe (PostgreSQL 15 runs about 6,000 nested `||`): too deep for
        // pg_query, which returns at most 10,000 nested nodes (about 5,000 operators).
        message.push_str(
            " (pgcalm's parser, pg_query, returns trees up to about 5,000 nested operators: \
             split the expression, e.g. with a CTE or a function)",
        );
    }
    let text = &source[range];
    let at = |byte: usize, column: bool| {
        let (line, col) = line_col(source, byte);
        SyntaxError {
            message: message.clone(),
            offset: byte,
            line,
            column: column.then_some(col),
            excerpt: excerpt_at(source, byte),
        }
    };
    let tokens = match tokens_of(text) {
        Ok(t) => t,
        // An unterminated literal or comment: the scanner quotes the rest of the text
        // from where it starts ("at or near ..."); else point at the start of the text.
        Err(_) => {
            let near = message
                .split_once(" at or near \"")
                .and_then(|(_, rest)| rest.strip_suffix('"'))
                .filter(|near| !near.is_empty() && text.ends_with(near));
            return match near {
                Some(near) => at(start + text.len() - near.len(), true),
                None => at(start + (text.len() - text.trim_start().len()), false),
            };
        }
    };
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| {
            tokens[i].token != Token::SqlComment as i32 && tokens[i].token != Token::CComment as i32
        })
        .collect();
    let fails_within = |upto: usize| -> bool {
        // Prefix ending after token `upto`; an error "at end of input" means the prefix
        // is fine so far.
        let cut = tokens[upto].end as usize;
        match parse_raw(&text[..cut]) {
            Ok(_) => false,
            Err(err) => !err.to_string().contains("at end of input"),
        }
    };
    let (mut lo, mut hi) = (0usize, significant.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails_within(significant[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let byte = if lo < significant.len() {
        start + tokens[significant[lo]].start as usize
    } else {
        // "at end of input": point just past the last token.
        start
            + significant
                .last()
                .map(|&i| tokens[i].end as usize)
                .unwrap_or(0)
    };
    at(byte, true)
}

/// The line holding `byte`, with a caret under it.
fn excerpt_at(source: &str, byte: usize) -> String {
    let byte = byte.min(source.len());
    let line_start = source[..byte].rfind('\n').map(|p| p + 1).unwrap_or(0);
    let line_end = source[byte..]
        .find('\n')
        .map(|p| byte + p)
        .unwrap_or(source.len());
    let line = &source[line_start..line_end];
    let col = source[line_start..byte].chars().count();
    format!("{line}\n  {}^", " ".repeat(col))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn spans_lines_and_comments() {
        let src = "-- first\nCREATE TABLE t (a int); -- same line\n\n/* before */\n  CREATE INDEX i ON t (a);\n";
        let stmts = split(src, 0..src.len()).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].sql(src), "CREATE TABLE t (a int)");
        assert_eq!((stmts[0].span.line, stmts[0].span.column), (2, 1));
        let comments = |s: &SourceStatement| -> Vec<&str> {
            s.comments.iter().map(|r| &src[r.clone()]).collect()
        };
        assert_eq!(comments(&stmts[0]), ["-- first", "-- same line"]);
        assert_eq!(stmts[1].sql(src), "CREATE INDEX i ON t (a)");
        assert_eq!((stmts[1].span.line, stmts[1].span.column), (5, 3));
        assert_eq!(comments(&stmts[1]), ["/* before */"]);
    }

    /// Line and column by counting, for every offset asked in any order: the index
    /// searches from its last answer, forwards or back, near or far.
    #[test]
    fn line_index_answers_in_any_order() {
        let src = "a\n\nbé c\n\n\n\n\n\n\n\nlong line here\nx\n\n€€ y\nend";
        let naive = |byte: usize| {
            let before = &src[..byte];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            (line, before[start..].chars().count() + 1)
        };
        let offsets: Vec<usize> = (0..=src.len())
            .filter(|&b| src.is_char_boundary(b))
            .collect();
        let index = LineIndex::new(src);
        let mut order = offsets.clone();
        order.extend(offsets.iter().rev());
        // Far jumps both ways, alternating ends.
        order.extend(
            offsets
                .iter()
                .zip(offsets.iter().rev())
                .flat_map(|(a, b)| [*a, *b]),
        );
        for &b in &order {
            assert_eq!(index.line_col(src, b), naive(b), "offset {b}");
            assert_eq!(line_col(src, b), naive(b), "offset {b}, no index");
        }
        assert_eq!(
            index.line_col(src, src.len() + 10),
            naive(src.len()),
            "past the end"
        );
    }

    #[test]
    fn a_sub_range_keeps_file_offsets() {
        let src = "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n";
        let down = src.find("SELECT 2").unwrap();
        let stmts = split(src, down..src.len()).unwrap();
        assert_eq!(stmts[0].span.start, down);
        assert_eq!(stmts[0].span.line, 4);
    }

    /// The reference: one parse and one scan of the whole range.
    fn reference_split(source: &str, range: Range<usize>) -> Vec<SourceStatement> {
        let parsed = pg_query::parse(&source[range.clone()], 0)
            .unwrap()
            .protobuf
            .stmts;
        parsed_as_one(source, range, parsed)
    }

    /// What a statement is, comparable across splits: span, comments, its tree's label.
    type Summary = (Span, Vec<Range<usize>>, Option<String>);

    fn summaries(statements: &[SourceStatement]) -> Vec<Summary> {
        statements
            .iter()
            .map(|s| {
                (
                    s.span,
                    s.comments.clone(),
                    s.node.as_ref().map(crate::locks::statement_label),
                )
            })
            .collect()
    }

    /// Asserts that `split` and `split_unparsed` give the reference's statements; returns
    /// the reference.
    fn assert_like_one_parse(src: &str) -> Vec<Summary> {
        let reference = summaries(&reference_split(src, 0..src.len()));
        assert_eq!(summaries(&split(src, 0..src.len()).unwrap()), reference);
        let unparsed: Vec<_> = summaries(&split_unparsed(src, 0..src.len()).unwrap())
            .into_iter()
            .map(|(span, comments, _)| (span, comments))
            .collect();
        let spans: Vec<_> = reference.iter().map(|(s, c, _)| (*s, c.clone())).collect();
        assert_eq!(unparsed, spans);
        reference
    }

    /// Every construct that holds a `;` or a newline that does not end a statement.
    const TRICKY: &str = "-- first\n\
        CREATE TABLE t (a int); -- same line\n\
        ;;\n\
        /* before\n   on two lines; */\n  CREATE INDEX i ON t (a) /* after; */ ;\n\
        SELECT 'a;\n b', E'c\\'; d', $$ e;\n f $$, $x$ $$; $x$, \"q;\n r\" FROM t;\n\
        SELECT 'con'\n  'tinued' ; /* trailing */ -- two\n\
        CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;\n\
        CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;\n\
        CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); INSERT INTO u VALUES (2));\n\
        SELECT 1\n-- between the last token and its semicolon\n;\n\
        -- the end, no semicolon\nSELECT 2 -- trailing\n-- not its own\n";

    #[test]
    fn every_chunk_size_gives_the_statements_of_one_parse() {
        let src = TRICKY;
        let reference = assert_like_one_parse(src);
        assert_eq!(reference.len(), 9);
        // Cut at every position: chunks of every size from 1 byte up.
        for chunk in 1..src.len() + 2 {
            let mut cutter = Cutter::new(src, 0..src.len());
            cutter.chunk = chunk;
            let mut scanned = Vec::new();
            while let Some(batch) = cutter.next_batch() {
                scanned.extend(parse_batch(src, batch.unwrap()).unwrap());
            }
            assert_eq!(summaries(&scanned), reference, "chunk of {chunk} bytes");
        }
    }

    #[test]
    fn a_big_text_parsed_in_chunks_on_two_threads_gives_the_statements_of_one_parse() {
        let mut src = String::new();
        while src.len() < 12 * CHUNK_BYTES {
            src.push_str(TRICKY);
            src.push_str(";\n");
        }
        let reference = reference_split(&src, 0..src.len());
        let mut seen = Vec::new();
        let count = for_each_in_chunks(&src, 0..src.len(), true, |s| seen.push(s)).unwrap();
        assert_eq!(count, reference.len());
        assert_eq!(summaries(&seen), summaries(&reference));
        assert!(seen.iter().enumerate().all(|(i, s)| s.index == i));
        // Node locations count from node_base.
        for (s, r) in seen.iter().zip(&reference) {
            if let (Some(NodeEnum::IndexStmt(p)), Some(NodeEnum::IndexStmt(w))) = (&s.node, &r.node)
            {
                let loc = |i: &pg_query::protobuf::IndexStmt| i.relation.as_ref().unwrap().location;
                assert_eq!(s.node_base + loc(p) as usize, loc(w) as usize);
            }
        }
        assert!(seen.iter().any(|s| s.node_base > 0), "parsed in chunks");
    }

    /// Statements of many kinds (PostgreSQL 15 to 18 syntax) for the protobuf writer's
    /// comparison: every node type the raw parser makes should appear in one of them or
    /// in the fixtures.
    const WRITER_CASES: &[&str] = &[
        "SELECT 1, -1, 2.5, -2.5e10, 'x', E'\\n', B'101', X'1f', true, false, NULL, $1",
        "SELECT a.b, t.*, *, c[1], c[1:2], (c).f, ARRAY[1, 2], ROW(1, 'a'), (1, 2)",
        "SELECT count(*), count(DISTINCT a) FILTER (WHERE b > 0), sum(x ORDER BY y), \
         rank() OVER (PARTITION BY a ORDER BY b DESC NULLS LAST ROWS BETWEEN 1 PRECEDING \
         AND CURRENT ROW), percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t \
         GROUP BY GROUPING SETS ((a), (b), ()) HAVING count(*) > 1 WINDOW w AS (ORDER BY z)",
        "SELECT CASE WHEN a IS NULL THEN 0 WHEN a IS NOT DISTINCT FROM b THEN 1 ELSE 2 END, \
         COALESCE(a, b), NULLIF(a, b), GREATEST(a, b), LEAST(a, b), a BETWEEN 1 AND 2, \
         a NOT IN (1, 2), a = ANY (ARRAY[1]), a LIKE 'x%' ESCAPE '!', a ILIKE 'y', \
         a SIMILAR TO 'z', a IS TRUE, a IS NOT UNKNOWN, NOT (a AND b OR c), a::int, \
         CAST(a AS numeric(10, 2)), a COLLATE \"C\", x AT TIME ZONE 'UTC', \
         CURRENT_DATE, CURRENT_TIMESTAMP(3), CURRENT_USER, SESSION_USER, \
         EXISTS (SELECT 1), (SELECT 1), a > ALL (SELECT 1), a IN (SELECT 1)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) \
         SEARCH DEPTH FIRST BY n SET ord CYCLE n SET is_cycle USING path \
         SELECT * FROM r",
        "WITH m AS MATERIALIZED (SELECT 1) SELECT DISTINCT ON (a) a FROM t1 \
         LEFT JOIN t2 USING (id) AS j CROSS JOIN LATERAL f(t1.x) AS g(y int) \
         NATURAL FULL JOIN t3 TABLESAMPLE SYSTEM (10) REPEATABLE (1), \
         ROWS FROM (generate_series(1, 2)) WITH ORDINALITY, (VALUES (1), (2)) v(x) \
         WHERE t1.a = t2.b ORDER BY 1 USING > LIMIT 10 OFFSET 5 FOR UPDATE OF t1 SKIP LOCKED",
        "SELECT 1 INTERSECT SELECT 2 EXCEPT ALL SELECT 3 ORDER BY 1 FETCH FIRST 1 ROW WITH TIES",
        "SELECT * INTO TEMP newt FROM t FOR NO KEY UPDATE NOWAIT",
        "SELECT JSON_OBJECT('a': 1 ABSENT ON NULL), JSON_ARRAY(1, 2), \
         JSON_ARRAYAGG(x ORDER BY x), JSON_OBJECTAGG(k VALUE v), \
         JSON('{}'), JSON_SCALAR(1), JSON_SERIALIZE(j RETURNING text), \
         j IS JSON OBJECT WITH UNIQUE KEYS, JSON_EXISTS(j, '$.a'), \
         JSON_VALUE(j, '$.a' RETURNING int DEFAULT 0 ON ERROR), \
         JSON_QUERY(j, '$.a' WITH WRAPPER KEEP QUOTES)",
        "SELECT * FROM JSON_TABLE(j, '$[*]' COLUMNS (id FOR ORDINALITY, \
         a int PATH '$.a', NESTED PATH '$.b[*]' COLUMNS (b text PATH '$')))",
        "SELECT * FROM XMLTABLE('/r' PASSING x COLUMNS a int PATH 'a'), \
         xmlelement(name e, xmlattributes(1 AS a)), xmlforest(a, b)",
        "INSERT INTO t AS x (a, b) OVERRIDING SYSTEM VALUE VALUES (1, DEFAULT), (2, 3) \
         ON CONFLICT (a) WHERE a > 0 DO UPDATE SET b = EXCLUDED.b WHERE x.b <> 0 RETURNING *",
        "INSERT INTO t SELECT * FROM s ON CONFLICT ON CONSTRAINT c DO NOTHING",
        "UPDATE t SET (a, b) = (SELECT 1, 2), c = c + 1 FROM s WHERE t.id = s.id \
         AND CURRENT_DATE > '2020-01-01' RETURNING OLD.a, NEW.a",
        "DELETE FROM ONLY t USING s WHERE t.id = s.id RETURNING t.*",
        "DELETE FROM t WHERE CURRENT OF cur",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.d THEN DELETE \
         WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED BY SOURCE THEN DELETE \
         WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a) RETURNING merge_action()",
        "CREATE TABLE IF NOT EXISTS s.t (id bigint GENERATED ALWAYS AS IDENTITY \
         (START WITH 10 INCREMENT BY 2) PRIMARY KEY, a text COLLATE \"C\" NOT NULL \
         DEFAULT 'x' CHECK (a <> ''), b int REFERENCES u (id) ON DELETE CASCADE \
         DEFERRABLE INITIALLY DEFERRED, c numeric(10, 2)[] UNIQUE NULLS NOT DISTINCT, \
         d tsvector GENERATED ALWAYS AS (to_tsvector('english', a)) STORED, \
         e int STORAGE EXTERNAL COMPRESSION lz4, \
         EXCLUDE USING gist (c WITH &&) WHERE (d IS NOT NULL), \
         FOREIGN KEY (b, e) REFERENCES v (x, y) MATCH FULL ON DELETE SET NULL (b), \
         LIKE other INCLUDING ALL EXCLUDING COMMENTS) \
         PARTITION BY RANGE (id) WITH (fillfactor = 70) TABLESPACE ts",
        "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (MINVALUE) TO (10)",
        "CREATE TABLE p2 PARTITION OF p FOR VALUES WITH (MODULUS 4, REMAINDER 1)",
        "CREATE TABLE p3 PARTITION OF p FOR VALUES IN ('a', 'b')",
        "CREATE TABLE p4 PARTITION OF p DEFAULT",
        "CREATE UNLOGGED TABLE u (a int) INHERITS (base)",
        "CREATE TEMP TABLE tt ON COMMIT DROP AS SELECT 1 WITH NO DATA",
        "CREATE TABLE tp (a int, PRIMARY KEY (a) INCLUDE (a), UNIQUE (a) WITH (fillfactor = 90))",
        "ALTER TABLE ONLY t ADD COLUMN IF NOT EXISTS x int DEFAULT 0 NOT NULL, \
         DROP COLUMN IF EXISTS y CASCADE, ALTER COLUMN z TYPE bigint USING z::bigint, \
         ALTER COLUMN z SET DEFAULT nextval('s'), ALTER COLUMN z DROP DEFAULT, \
         ALTER COLUMN z SET NOT NULL, ALTER COLUMN z DROP NOT NULL, \
         ALTER COLUMN z SET STATISTICS 100, ALTER COLUMN z SET (n_distinct = 10), \
         ALTER COLUMN z ADD GENERATED BY DEFAULT AS IDENTITY, ALTER COLUMN z DROP EXPRESSION, \
         ADD CONSTRAINT c CHECK (z > 0) NOT VALID, VALIDATE CONSTRAINT c, \
         DROP CONSTRAINT IF EXISTS d RESTRICT, ADD PRIMARY KEY USING INDEX i, \
         ALTER CONSTRAINT f DEFERRABLE, SET LOGGED, SET WITHOUT CLUSTER, CLUSTER ON i, \
         SET (autovacuum_enabled = false), RESET (fillfactor), REPLICA IDENTITY FULL, \
         ENABLE ROW LEVEL SECURITY, DISABLE TRIGGER ALL, ENABLE ALWAYS TRIGGER tr, \
         OWNER TO CURRENT_ROLE, SET TABLESPACE ts, SET ACCESS METHOD heap, NO INHERIT base",
        "ALTER TABLE t RENAME COLUMN a TO b",
        "ALTER TABLE IF EXISTS t RENAME TO u",
        "ALTER TABLE t SET SCHEMA s",
        "ALTER TABLE p ATTACH PARTITION p5 FOR VALUES IN (5)",
        "ALTER TABLE p DETACH PARTITION p5 CONCURRENTLY",
        "ALTER TABLE t ALTER COLUMN a SET DATA TYPE text COLLATE \"C\"",
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY t USING btree \
         (lower(a) text_pattern_ops DESC NULLS FIRST, (b + 1)) INCLUDE (c) \
         NULLS NOT DISTINCT WITH (fillfactor = 80) TABLESPACE ts WHERE a IS NOT NULL",
        "DROP INDEX CONCURRENTLY IF EXISTS i, j CASCADE",
        "REINDEX (VERBOSE, TABLESPACE ts) INDEX CONCURRENTLY i",
        "DROP TABLE IF EXISTS a, b.c CASCADE",
        "TRUNCATE ONLY t, u RESTART IDENTITY CASCADE",
        "CREATE VIEW v (a) WITH (security_barrier) AS SELECT 1 WITH CASCADED CHECK OPTION",
        "CREATE OR REPLACE RECURSIVE VIEW rv (n) AS SELECT 1",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT 1 WITH DATA",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv WITH NO DATA",
        "CREATE SEQUENCE IF NOT EXISTS s AS bigint INCREMENT 2 MINVALUE 1 NO MAXVALUE \
         START 5 CACHE 10 CYCLE OWNED BY t.a",
        "ALTER SEQUENCE s RESTART WITH 1",
        "CREATE TYPE mood AS ENUM ('sad', 'ok')",
        "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'happy' BEFORE 'ok'",
        "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'",
        "CREATE TYPE pair AS (a int, b text)",
        "CREATE TYPE r AS RANGE (subtype = int4)",
        "CREATE DOMAIN d AS int DEFAULT 0 CONSTRAINT pos CHECK (VALUE > 0) NOT NULL",
        "ALTER DOMAIN d ADD CONSTRAINT c2 CHECK (VALUE < 100) NOT VALID",
        "CREATE OR REPLACE FUNCTION f(a int, OUT b int, VARIADIC c text[] DEFAULT '{}') \
         RETURNS SETOF record LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER \
         PARALLEL SAFE COST 10 ROWS 5 SET search_path = public AS $$ BEGIN RETURN; END $$",
        "CREATE FUNCTION g(x int) RETURNS int RETURN x + 1",
        "CREATE PROCEDURE pr(IN a int) BEGIN ATOMIC SELECT 1; END",
        "CALL pr(1)",
        "DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$",
        "CREATE TRIGGER tr BEFORE INSERT OR UPDATE OF a ON t REFERENCING NEW TABLE AS nt \
         FOR EACH ROW WHEN (NEW.a IS NOT NULL) EXECUTE FUNCTION f()",
        "CREATE EVENT TRIGGER et ON ddl_command_start WHEN TAG IN ('CREATE TABLE') \
         EXECUTE FUNCTION f()",
        "CREATE RULE r AS ON INSERT TO t WHERE NEW.a > 0 DO INSTEAD NOTHING",
        "CREATE POLICY p ON t AS RESTRICTIVE FOR SELECT TO PUBLIC USING (a = current_user) \
         WITH CHECK (true)",
        "GRANT SELECT (a), UPDATE ON TABLE t TO r WITH GRANT OPTION GRANTED BY CURRENT_USER",
        "REVOKE ALL ON ALL TABLES IN SCHEMA s FROM PUBLIC CASCADE",
        "GRANT r1 TO r2 WITH ADMIN OPTION, INHERIT TRUE",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO r",
        "CREATE ROLE r WITH LOGIN PASSWORD 'x' VALID UNTIL 'infinity' CONNECTION LIMIT 5",
        "ALTER ROLE r SET work_mem = '64MB'",
        "CREATE SCHEMA IF NOT EXISTS AUTHORIZATION r",
        "DROP SCHEMA s CASCADE",
        "ALTER SCHEMA s RENAME TO s2",
        "CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA s VERSION '1.0' CASCADE",
        "COMMENT ON COLUMN t.a IS 'the a'",
        "SECURITY LABEL FOR selinux ON TABLE t IS 'x'",
        "SET LOCAL lock_timeout = '2s'",
        "SET statement_timeout TO DEFAULT",
        "SET TIME ZONE 'UTC'",
        "RESET ALL",
        "SHOW search_path",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY, DEFERRABLE",
        "SAVEPOINT sp",
        "ROLLBACK TO SAVEPOINT sp",
        "COMMIT AND CHAIN",
        "PREPARE TRANSACTION 'x'",
        "LOCK TABLE t, u IN SHARE ROW EXCLUSIVE MODE NOWAIT",
        "VACUUM (FULL, ANALYZE, PARALLEL 2) t (a)",
        "ANALYZE VERBOSE t",
        "CLUSTER t USING i",
        "CHECKPOINT",
        "COPY t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true, FORCE_NOT_NULL (a))",
        "COPY (SELECT 1) TO '/tmp/x' (FORMAT binary)",
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT json) SELECT 1",
        "PREPARE q (int) AS SELECT $1",
        "EXECUTE q (1)",
        "DEALLOCATE ALL",
        "DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT 1",
        "FETCH FORWARD 5 FROM c",
        "CLOSE c",
        "LISTEN ch",
        "NOTIFY ch, 'payload'",
        "DISCARD ALL",
        "CREATE PUBLICATION pub FOR TABLE t (a, b) WHERE (a > 0), TABLES IN SCHEMA s",
        "ALTER PUBLICATION pub ADD TABLE u",
        "CREATE SUBSCRIPTION sub CONNECTION 'dbname=x' PUBLICATION pub WITH (enabled = false)",
        "CREATE SERVER srv FOREIGN DATA WRAPPER fdw OPTIONS (host 'h')",
        "CREATE FOREIGN TABLE ft (a int) SERVER srv OPTIONS (table_name 't')",
        "IMPORT FOREIGN SCHEMA rs LIMIT TO (a) FROM SERVER srv INTO s",
        "CREATE STATISTICS st (dependencies, ndistinct) ON a, (b + 1) FROM t",
        "CREATE COLLATION c1 (provider = icu, locale = 'und')",
        "CREATE CAST (int AS text) WITH FUNCTION f(int) AS IMPLICIT",
        "CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = f)",
        "CREATE AGGREGATE ag (int) (SFUNC = f, STYPE = int, INITCOND = '0')",
        "CREATE TEXT SEARCH CONFIGURATION tc (COPY = english)",
        "CREATE CONVERSION cv FOR 'UTF8' TO 'LATIN1' FROM f",
        "CREATE ACCESS METHOD am TYPE TABLE HANDLER h",
        "CREATE TABLESPACE ts LOCATION '/x'",
        "CREATE DATABASE db WITH OWNER r TEMPLATE template0 ENCODING 'UTF8'",
        "ALTER SYSTEM SET wal_level = logical",
        "ALTER TABLE t ALTER COLUMN a SET COMPRESSION pglz",
        "ALTER INDEX i ATTACH PARTITION j",
        "ALTER INDEX i RENAME TO j",
        "ALTER TABLE t OF ty",
        "ALTER FUNCTION f(int) RENAME TO g",
        "ALTER OPERATOR FAMILY of USING btree ADD OPERATOR 1 < (int, int)",
        "DROP OWNED BY r CASCADE",
        "REASSIGN OWNED BY r TO s",
        "DROP FUNCTION IF EXISTS f(int), g",
        "DROP TYPE mood",
        "DROP EXTENSION hstore",
        "DROP TRIGGER tr ON t",
        "DROP POLICY p ON t",
        "DROP RULE r ON t",
        "LOAD 'auto_explain'",
        "SELECT pg_advisory_lock(1); SELECT 2 /* two statements */ ; ; SELECT 3",
        "",
        "  -- only a comment\n",
    ];

    /// Parses `sql` both ways and asserts the same answer (`what` names it): the number
    /// of statements parsed.
    fn assert_writer_matches(sql: &str, what: &str) -> usize {
        let ours = parse_stmts(sql);
        let theirs = parse_stmts_by_libpg_query(sql);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                assert!(a == b, "{what}: the trees differ for {sql:?}");
                a.len()
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "{what}");
                0
            }
            (Ok(_), Err(e)) => panic!("{what}: libpg_query says {e}, pgcalm's writer parses it"),
            (Err(e), Ok(_)) => panic!("{what}: pgcalm's writer says {e}, libpg_query parses it"),
        }
    }

    #[test]
    fn the_protobuf_writer_gives_libpg_querys_trees() {
        with_parse_stack(|| {
            let mut refused = Vec::new();
            for (n, sql) in WRITER_CASES.iter().enumerate() {
                let parsed = assert_writer_matches(sql, &format!("case {n}"));
                if parsed == 0 && !sql.trim().is_empty() && !sql.contains("--") {
                    refused.push(format!("{sql}: {:?}", parse_stmts(sql).err()));
                }
            }
            assert!(refused.is_empty(), "cases PostgreSQL refuses: {refused:#?}");
            // Errors, and a statement with every literal after the error.
            for bad in [
                "SELECT FROM WHERE (",
                "ALTER TABLE t ADD CHECK a > 0",
                "SELECT '",
            ] {
                assert_writer_matches(bad, bad);
                assert!(parse_stmts(bad).is_err(), "{bad}");
            }
            // Deep trees: the same depth limit as libpg_query's (4,001 operands parse,
            // 5,101 do not).
            for depth in [1000, 4001, 5101] {
                let sql = format!("SELECT {};", vec!["'a'"; depth].join(" || "));
                assert_writer_matches(&sql, &format!("{depth} operands"));
            }
        });
    }

    /// The repository's SQL files (fixtures, lab scenarios, demo and examples), and the
    /// SQL PostgreSQL installs when it is on the machine (views of information_schema and
    /// the catalogs; extension scripts): each file's path and text, placeholders filled in.
    fn sql_files() -> Vec<(PathBuf, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        let mut dirs = vec![
            root.join("tests"),
            root.join("crates"),
            root.join("examples"),
            PathBuf::from("/usr/share/postgresql"),
        ];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.is_dir() && !path.ends_with("target") {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "sql") {
                    files.push(path);
                }
            }
        }
        let repo_files = files.iter().filter(|f| f.starts_with(&root)).count();
        assert!(
            repo_files >= 150,
            "the repository's SQL files: {repo_files}"
        );
        files
            .into_iter()
            .map(|file| {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                let text = text
                    .replace("@extschema@", "public")
                    .replace("MODULE_PATHNAME", "$libdir/x");
                (file, text)
            })
            .collect()
    }

    #[test]
    fn the_protobuf_writer_gives_libpg_querys_trees_on_every_sql_file() {
        let files = sql_files();
        let parsed: usize = with_parse_stack(|| {
            files
                .iter()
                .map(|(file, text)| assert_writer_matches(text, &file.display().to_string()))
                .sum()
        });
        // The repository's own files hold about 600 statements and PostgreSQL's installed
        // SQL (on every machine the tests run on) about 750 more; a file that does not
        // parse (compared by its error) counts none.
        assert!(parsed > 1000, "{parsed} statements parsed");
    }

    /// Deparses `tree` both ways (pgcalm's protobuf reader, libpg_query's) and asserts the
    /// same answer (`what` names it): the SQL, or an error both ways.
    fn assert_reader_matches(tree: &pg_query::protobuf::ParseResult, what: &str) -> bool {
        let ours = crate::engine::deparse_tree(tree);
        let theirs = pg_query::deparse(tree, Default::default()).ok();
        assert_eq!(ours, theirs, "{what}");
        theirs.is_some()
    }

    /// The bytes of pgcalm's protobuf writer for `sql` (its fields in reverse order).
    fn writer_bytes(sql: &str) -> Option<Vec<u8>> {
        let input = std::ffi::CString::new(sql).ok()?;
        // SAFETY: as in parse_stmts.
        unsafe {
            let result = ffi::pgcalm_parse_protobuf(input.as_ptr(), 0);
            let bytes = (result.error.is_null() && result.len > 0)
                .then(|| std::slice::from_raw_parts(result.data as *const u8, result.len).to_vec());
            ffi::pgcalm_free_parse_result(result);
            bytes
        }
    }

    /// Deparses every statement of `sql`, one at a time and all together, both ways;
    /// and all together from bytes whose fields are out of order (the writer's): the
    /// number of statements compared.
    fn assert_reader_matches_on(sql: &str, what: &str) -> usize {
        use pg_query::protobuf::ParseResult;
        use prost::Message;
        let Ok(stmts) = parse_stmts(sql) else {
            return 0;
        };
        if let Some(bytes) = writer_bytes(sql) {
            let tree = ParseResult::decode(&bytes[..]).unwrap();
            assert_eq!(
                crate::engine::deparse_protobuf(&bytes),
                pg_query::deparse(&tree, Default::default()).ok(),
                "{what}, fields in reverse order"
            );
        }
        for (n, stmt) in stmts.iter().enumerate() {
            let one = ParseResult {
                version: 0,
                stmts: vec![stmt.clone()],
            };
            assert_reader_matches(&one, &format!("{what}, statement {n}"));
        }
        let count = stmts.len();
        assert_reader_matches(&ParseResult { version: 0, stmts }, what);
        count
    }

    #[test]
    fn the_protobuf_reader_deparses_as_libpg_query_does() {
        use pg_query::protobuf::{IntList, Integer, ParseResult};
        let files = sql_files();
        let compared: usize = with_parse_stack(|| {
            let cases = WRITER_CASES
                .iter()
                .enumerate()
                .map(|(n, sql)| assert_reader_matches_on(sql, &format!("case {n}")))
                .sum::<usize>();
            let in_files = files
                .iter()
                .map(|(file, text)| assert_reader_matches_on(text, &file.display().to_string()))
                .sum::<usize>();
            cases + in_files
        });
        // As for the writer: about 1,350 statements, and the cases.
        assert!(compared > 1300, "{compared} statements compared");

        // Deep trees (lint deparses on a parse stack): the same SQL, or the same refusal
        // (the stack depth check), never a crash.
        for depth in [1000, 4001] {
            let sql = format!("SELECT {};", vec!["'a'"; depth].join(" || "));
            let what = format!("{depth} operands");
            assert_eq!(
                with_parse_stack(|| assert_reader_matches_on(&sql, &what)),
                1
            );
        }

        // Trees the deparser refuses: no SQL either way.
        let node = |node| pg_query::protobuf::RawStmt {
            stmt: Some(Box::new(pg_query::Node { node: Some(node) })),
            stmt_location: 0,
            stmt_len: 0,
        };
        for (what, stmt) in [
            (
                "a node the reader does not know",
                node(NodeEnum::IntList(IntList { items: vec![] })),
            ),
            (
                "a value as a statement",
                node(NodeEnum::Integer(Integer { ival: -7 })),
            ),
        ] {
            let tree = ParseResult {
                version: 0,
                stmts: vec![stmt],
            };
            assert!(!assert_reader_matches(&tree, what), "{what}");
        }
    }

    #[test]
    fn a_statement_nested_far_deeper_than_the_decoders_limit_parses_on_any_thread() {
        // On this test thread (2 MB of stack): the tree is decoded on a parse stack, and
        // dropped here. 100 nested `||` was the decoder's limit; 4,000 is near pg_query's.
        let sql = format!("SELECT {};", vec!["'a'"; 4001].join(" || "));
        let statements = split(&sql, 0..sql.len()).unwrap();
        assert_eq!(statements.len(), 1);
        assert!(matches!(statements[0].node, Some(NodeEnum::SelectStmt(_))));
        assert!(parse_first(&sql).is_some());
    }

    #[test]
    fn too_deep_for_pg_query_is_an_error_that_says_so() {
        // Beyond what pg_query returns: an error (no crash), naming the limit.
        for depth in [5100, 100_000] {
            let sql = format!("SELECT {};", vec!["'a'"; depth + 1].join(" || "));
            let e = split(&sql, 0..sql.len()).unwrap_err();
            assert!(
                e.message.contains("about 5,000 nested operators"),
                "{depth}: {e:?}"
            );
        }
    }

    #[test]
    fn errors_in_a_later_chunk_and_unterminated_literals() {
        let mut src = "SELECT 1;\n".repeat(2 * CHUNK_BYTES / 10);
        let lines = src.lines().count();
        src.push_str("SELECT 2;\nALTER TABLE t ADD CHECK a > 0;\nSELECT 3;\n");
        let mut seen = 0;
        let e = for_each_statement(&src, 0..src.len(), |_| seen += 1).unwrap_err();
        assert_eq!((e.line, e.column), (lines + 2, Some(25)), "{e:?}");
        assert!(seen > lines / 2, "the statements before it were seen");

        let src = "SELECT 1;\nSELECT 2;\nSELECT 'oops;\nSELECT 3;\n";
        let e = split(src, 0..src.len()).unwrap_err();
        assert!(e.message.contains("unterminated quoted string"), "{e:?}");
        assert_eq!(e.line, 3);
        assert_eq!(split_unparsed(src, 0..src.len()).unwrap_err(), e);
    }

    #[test]
    fn routines_end_where_the_parser_ends_them() {
        let src = "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;\n\
                   CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2;\n\
                   CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC END;\n\
                   CREATE FUNCTION k() RETURNS int LANGUAGE sql\n\
                   BEGIN ATOMIC\n  SELECT CASE WHEN (SELECT CASE WHEN true THEN 1 END) = 1 THEN 1 END;\n  END;\n\
                   SELECT 3;\n";
        assert_eq!(assert_like_one_parse(src).len(), 6);
    }

    #[test]
    fn statements_the_parser_delimits_otherwise_take_the_parsers_view() {
        // As if the scanner had read two statements as one.
        let src = "-- c\nSELECT 1; -- one\nSELECT 2;\nSELECT 3; -- three\n";
        let reference = summaries(&reference_split(src, 0..src.len()));
        let mut scanned = split_unparsed(src, 0..src.len()).unwrap();
        let second = scanned.remove(1);
        scanned[0].span.end = second.span.end;
        assert_eq!(summaries(&parse_batch(src, scanned).unwrap()), reference);
    }

    #[test]
    fn a_routine_body_with_a_syntax_error_is_reported_in_it() {
        let src = "SELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELEC 2;\nEND;\nSELECT 2;\n";
        let e = split(src, 0..src.len()).unwrap_err();
        assert_eq!((e.line, e.column), (5, Some(3)), "{e:?}");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let src = "SELECT 1;\nALTER TABLE t ADD CONSTRAINT c CHECK a > 0;\n";
        let e = split(src, 0..src.len()).unwrap_err();
        assert_eq!((e.line, e.column), (2, Some(38)));
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }
}
