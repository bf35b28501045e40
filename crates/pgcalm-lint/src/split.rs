//! The one statement splitter: PostgreSQL's own parser (pg_query) over a range of a
//! source text, each statement with its byte span, line and column, its parse tree, and
//! the comments around it (for `-- pgcalm:ignore`). The whole range is parsed once; only
//! when that fails is the failing token searched for (pg_query reports no position).

use std::ops::Range;

use pg_query::NodeEnum;
use pg_query::protobuf::{ScanToken, Token};
use serde::Serialize;

/// Byte offsets of line starts, for offset -> line/column in O(log n).
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `source`.
    pub fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub fn line_col(&self, source: &str, byte: usize) -> (usize, usize) {
        let byte = byte.min(source.len());
        let line = self.starts.partition_point(|&s| s <= byte);
        let start = self.starts[line - 1];
        (line, source[start..byte].chars().count() + 1)
    }
}

/// 1-based line and column (in characters) of a byte offset, without an index.
pub fn line_col(source: &str, byte: usize) -> (usize, usize) {
    LineIndex::new(&source[..byte.min(source.len())]).line_col(source, byte)
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
    /// The parse tree (`None` only for an empty statement).
    pub node: Option<NodeEnum>,
    /// Comments that belong to it: those after the previous statement's line and
    /// before it, and those on its own last line after it.
    pub comments: Vec<Range<usize>>,
    /// Byte offset in the source that the `location` fields inside `node` count from
    /// (a big text is parsed in parts).
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

/// Splits `source[range]` into statements with PostgreSQL's parser.
pub fn split(source: &str, range: Range<usize>) -> Result<Vec<SourceStatement>, SyntaxError> {
    let start = range.start;
    let text = &source[range.clone()];
    // One parse and one scan of the whole range (every token, comments included); each
    // statement's significant range and comments come from the tokens by binary search.
    let (parsed, tokens) = match parse_and_scan(text) {
        Ok(p) => p,
        Err(e) => return Err(locate_syntax_error(source, range, e)),
    };
    let is_comment =
        |t: &ScanToken| t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32;
    let lines = LineIndex::new(source);
    let mut statements: Vec<SourceStatement> = Vec::new();
    let mut comment_cursor = 0usize;
    let comments: Vec<&ScanToken> = tokens.iter().filter(|t| is_comment(t)).collect();
    for (node_base, raw) in parsed {
        let loc = raw.stmt_location.max(0) as usize;
        let len = if raw.stmt_len == 0 {
            text.len() - loc
        } else {
            raw.stmt_len as usize
        };
        // The parser's range may include comments and whitespace around the statement.
        let first = tokens.partition_point(|t| (t.start as usize) < loc);
        let end_limit = loc + len;
        let mut lead = None;
        let mut tail = None;
        for t in &tokens[first..] {
            if t.start as usize >= end_limit {
                break;
            }
            if !is_comment(t) {
                lead.get_or_insert(t.start as usize);
                tail = Some(t.end as usize);
            }
        }
        let (lead, tail) = match (lead, tail) {
            (Some(l), Some(t)) => (l, t),
            _ => {
                let slice = &text[loc..end_limit];
                let l = loc + (slice.len() - slice.trim_start().len());
                (l, loc + slice.trim_end().len())
            }
        };
        let mut sql_end = tail;
        while sql_end > lead && text[..sql_end].ends_with(';') {
            sql_end -= 1;
            sql_end = lead + text[lead..sql_end].trim_end().len();
        }
        if sql_end <= lead {
            continue;
        }
        let (line, column) = lines.line_col(source, start + lead);
        let span = Span {
            start: start + lead,
            end: start + sql_end,
            line,
            column,
        };
        // Comments before this statement: those not claimed by the previous one.
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
        // Comments inside the statement are part of it, not directives for it.
        while comment_cursor < comments.len() && (comments[comment_cursor].end as usize) <= tail {
            comment_cursor += 1;
        }
        statements.push(SourceStatement {
            index: statements.len(),
            span,
            node: raw.stmt.and_then(|n| n.node),
            node_base: start + node_base,
            comments: own,
        });
    }
    // Trailing comments on the last statement's line.
    for c in &comments[comment_cursor..] {
        let c_range = start + c.start as usize..start + c.end as usize;
        if let Some(p) = statements.last_mut()
            && lines.line_col(source, p.span.end).0 == lines.line_col(source, c_range.start).0
        {
            p.comments.push(c_range);
        }
    }
    Ok(statements)
}

/// Texts at least this big are parsed in two halves on two threads (when the machine
/// has two cores): each statement is still parsed once, in half the wall time.
const PARALLEL_PARSE_MIN_BYTES: usize = 64 * 1024;

/// A raw statement with the offset (in the parsed text) its locations count from.
type RawStatements = Vec<(usize, pg_query::protobuf::RawStmt)>;

/// Parses and scans `text`; a big one in two halves, each parsed and scanned on its own
/// thread, cut after a `;` that ends a line near the middle. A cut inside a statement
/// (a string, a comment, a `BEGIN ATOMIC` body: each leaves its half unterminated)
/// makes a half fail; then the whole text is parsed at once, so results and errors
/// are those of one parse.
fn parse_and_scan(text: &str) -> Result<(RawStatements, Vec<ScanToken>), pg_query::Error> {
    let one =
        |text: &str, base: usize| -> Result<(RawStatements, Vec<ScanToken>), pg_query::Error> {
            let stmts = pg_query::parse(text, 0)?
                .protobuf
                .stmts
                .into_iter()
                .map(|mut s| {
                    s.stmt_location += base as i32;
                    (base, s)
                })
                .collect();
            let tokens = pg_query::scan_tokens(text)
                .unwrap_or_default()
                .into_iter()
                .map(|mut t| {
                    t.start += base as i32;
                    t.end += base as i32;
                    t
                })
                .collect();
            Ok((stmts, tokens))
        };
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    if text.len() < PARALLEL_PARSE_MIN_BYTES || !two_cores {
        return one(text, 0);
    }
    let middle = text.len() / 2;
    let after = text[middle..].find(";\n").map(|i| middle + i + 1);
    let before = text[..middle].rfind(";\n").map(|i| i + 1);
    let Some(cut) = [before, after]
        .into_iter()
        .flatten()
        .min_by_key(|c| c.abs_diff(middle))
    else {
        return one(text, 0);
    };
    let (left, right) = std::thread::scope(|scope| {
        let right = scope.spawn(|| one(&text[cut..], cut));
        (one(&text[..cut], 0), right.join())
    });
    match (left, right) {
        (Ok((mut stmts, mut tokens)), Ok(Ok((right_stmts, right_tokens)))) => {
            stmts.extend(right_stmts);
            tokens.extend(right_tokens);
            Ok((stmts, tokens))
        }
        _ => one(text, 0),
    }
}

/// pg_query reports a syntax error without its position. The LR parser fails at the
/// first token it cannot shift, so a prefix of the text fails at that same token iff
/// the prefix contains it: binary search over token prefixes finds it.
fn locate_syntax_error(source: &str, range: Range<usize>, e: pg_query::Error) -> SyntaxError {
    let start = range.start;
    let message = match &e {
        pg_query::Error::Parse(m) | pg_query::Error::Scan(m) | pg_query::Error::Split(m) => {
            m.clone()
        }
        other => other.to_string(),
    };
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
    let tokens = match pg_query::scan_tokens(text) {
        Ok(t) => t,
        // An unterminated literal or comment: point at the start of the text.
        Err(_) => return at(start + (text.len() - text.trim_start().len()), false),
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
        match pg_query::parse(&text[..cut], 0) {
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

    #[test]
    fn a_sub_range_keeps_file_offsets() {
        let src = "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n";
        let down = src.find("SELECT 2").unwrap();
        let stmts = split(src, down..src.len()).unwrap();
        assert_eq!(stmts[0].span.start, down);
        assert_eq!(stmts[0].span.line, 4);
    }

    #[test]
    fn a_big_text_parsed_in_two_halves_gives_the_same_statements() {
        let mut src = String::from(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n",
        );
        while src.len() < 3 * PARALLEL_PARSE_MIN_BYTES {
            src.push_str("-- c\nALTER TABLE t ADD COLUMN c int; /* x */ SELECT 'a;b';\n");
            // A function body with semicolons, possibly right at the cut.
            src.push_str("CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n");
        }
        let stmts = split(&src, 0..src.len()).unwrap();
        let one_parse = pg_query::parse(&src, 0).unwrap().protobuf.stmts;
        assert_eq!(stmts.len(), one_parse.len());
        for (s, raw) in stmts.iter().zip(&one_parse) {
            let whole = raw.stmt.as_ref().and_then(|n| n.node.as_ref()).unwrap();
            let part = s.node.as_ref().unwrap();
            assert_eq!(
                crate::locks::statement_label(part),
                crate::locks::statement_label(whole)
            );
            // Node locations count from node_base.
            if let (NodeEnum::AlterTableStmt(p), NodeEnum::AlterTableStmt(w)) = (part, whole) {
                let loc =
                    |a: &pg_query::protobuf::AlterTableStmt| a.relation.as_ref().unwrap().location;
                assert_eq!(s.node_base + loc(p) as usize, loc(w) as usize);
            }
            assert!(src[s.span.range()].ends_with(|c: char| c != ';'));
            // The statement's text starts at or after where the whole parse puts it
            // (which includes the comments before it).
            assert!(s.span.start >= raw.stmt_location as usize);
        }
        assert!(stmts.iter().any(|s| s.node_base > 0), "parsed in two parts");
    }

    #[test]
    fn a_cut_inside_a_function_body_falls_back_to_one_parse() {
        // Statements end with "; " except inside the body in the middle, so the only
        // `;` + newline near the middle is inside BEGIN ATOMIC ... END.
        let half = "SELECT 1; ".repeat(PARALLEL_PARSE_MIN_BYTES / 10);
        let src = format!(
            "{half}CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND; {half}"
        );
        let stmts = split(&src, 0..src.len()).unwrap();
        assert_eq!(stmts.len(), 2 * (PARALLEL_PARSE_MIN_BYTES / 10) + 1);
        let body = &stmts[PARALLEL_PARSE_MIN_BYTES / 10];
        assert!(body.sql(&src).starts_with("CREATE FUNCTION f()"));
        assert!(body.sql(&src).ends_with("END"));
        assert!(stmts.iter().all(|s| s.node_base == 0), "one parse");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let src = "SELECT 1;\nALTER TABLE t ADD CONSTRAINT c CHECK a > 0;\n";
        let e = split(src, 0..src.len()).unwrap_err();
        assert_eq!((e.line, e.column), (2, Some(38)));
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }
}
