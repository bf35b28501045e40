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
    let parsed = match pg_query::parse(text, 0) {
        Ok(p) => p,
        Err(e) => return Err(locate_syntax_error(source, range, e)),
    };
    // One scan of the whole range gives every token (comments included); each
    // statement's significant range and comments come from it by binary search.
    let tokens = pg_query::scan_tokens(text).unwrap_or_default();
    let is_comment =
        |t: &ScanToken| t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32;
    let lines = LineIndex::new(source);
    let mut statements: Vec<SourceStatement> = Vec::new();
    let mut comment_cursor = 0usize;
    let comments: Vec<&ScanToken> = tokens.iter().filter(|t| is_comment(t)).collect();
    for raw in parsed.protobuf.stmts {
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
    fn syntax_errors_name_line_and_column() {
        let src = "SELECT 1;\nALTER TABLE t ADD CONSTRAINT c CHECK a > 0;\n";
        let e = split(src, 0..src.len()).unwrap_err();
        assert_eq!((e.line, e.column), (2, Some(38)));
        assert!(e.message.contains("syntax error"), "{}", e.message);
    }
}
