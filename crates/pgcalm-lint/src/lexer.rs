//! The tokens the statement splitter needs, found in Rust: PostgreSQL's scanner rules
//! (`scan.l`) for what can hide a `;` (string and dollar-quoted literals, quoted
//! identifiers, nested comments) and the few keywords that decide where a statement ends
//! (`CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END`).
//!
//! Why not pg_query's scanner: it builds every token in C, encodes the list as protobuf
//! and decodes it again, about a tenth of `pgcalm lint`'s CPU time, for a cut the parser
//! then redoes. Tokens that decide a cut (comments, `;`, parentheses, the keywords above,
//! and COMMIT, ROLLBACK and ABORT for the end of a transaction) have PostgreSQL's kinds
//! and boundaries, which the tests check against pg_query's scanner; the others (words,
//! literals, numbers, operators) are only as exact as a cut needs: where they end.

use pg_query::protobuf::{ScanToken, Token};

/// A literal, quoted identifier or comment runs to the end of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unterminated {
    /// Byte offset where it starts.
    pub(crate) at: usize,
}

/// The tokens of `text` (offsets into it), comments included; whitespace is skipped.
pub(crate) fn tokens(text: &str) -> Result<Vec<ScanToken>, Unterminated> {
    let b = text.as_bytes();
    // About one token per five bytes of SQL: growing from empty copied them repeatedly.
    let mut out = Vec::with_capacity(b.len() / 5 + 16);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let token = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = memchr::memchr2(b'\n', b'\r', &b[i..]).map_or(b.len(), |n| i + n);
                Token::SqlComment
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = c_comment_end(b, i).ok_or(Unterminated { at: start })?;
                Token::CComment
            }
            b';' => {
                i += 1;
                Token::Ascii59
            }
            b'(' => {
                i += 1;
                Token::Ascii40
            }
            b')' => {
                i += 1;
                Token::Ascii41
            }
            b'\'' => {
                i = quoted_end(b, i, b'\'', false).ok_or(Unterminated { at: start })?;
                Token::Sconst
            }
            b'"' => {
                i = quoted_end(b, i, b'"', false).ok_or(Unterminated { at: start })?;
                Token::Ident
            }
            b'$' => match dollar_quote(b, i) {
                Dollar::Literal(end) => {
                    i = end;
                    Token::Sconst
                }
                Dollar::Unterminated => return Err(Unterminated { at: start }),
                Dollar::Other(end) => {
                    i = end;
                    Token::Param
                }
            },
            _ if is_ident_start(c) => {
                // E'...' (backslash escapes), B'', X'', N'', U&'' and U&"".
                let next = b.get(i + 1).copied();
                match (c.to_ascii_lowercase(), next) {
                    (b'e', Some(b'\'')) => {
                        i = quoted_end(b, i + 1, b'\'', true).ok_or(Unterminated { at: start })?;
                        Token::Sconst
                    }
                    (b'b' | b'x' | b'n', Some(b'\'')) => {
                        i = quoted_end(b, i + 1, b'\'', false).ok_or(Unterminated { at: start })?;
                        Token::Sconst
                    }
                    (b'u', Some(b'&')) if matches!(b.get(i + 2), Some(b'\'' | b'"')) => {
                        let q = b[i + 2];
                        i = quoted_end(b, i + 2, q, false).ok_or(Unterminated { at: start })?;
                        if q == b'"' {
                            Token::Ident
                        } else {
                            Token::Sconst
                        }
                    }
                    _ => {
                        i += 1;
                        while i < b.len() && is_ident_cont(b[i]) {
                            i += 1;
                        }
                        keyword(&b[start..i])
                    }
                }
            }
            b'0'..=b'9' | b'.' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.')
                {
                    i += 1;
                }
                Token::Iconst
            }
            _ => {
                // An operator or other punctuation: one byte at a time (a `--` or `/*`
                // in it starts a comment, as in PostgreSQL). A multi-byte character is
                // taken whole, so offsets stay on character boundaries.
                i += utf8_len(c);
                Token::Op
            }
        };
        out.push(ScanToken {
            start: start as i32,
            end: i as i32,
            token: token as i32,
            keyword_kind: 0,
        });
    }
    Ok(out)
}

/// Per byte: bit 1 starts an identifier (`[A-Za-z\200-\377_]`), bit 2 continues one
/// (those and `[0-9$]`). A table: identifiers are most of the bytes lexed.
const IDENT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let start = b.is_ascii_alphabetic() || b == b'_' || b >= 0x80;
        let cont = start || b.is_ascii_digit() || b == b'$';
        table[c] = (start as u8) | ((cont as u8) << 1);
        c += 1;
    }
    table
};

fn is_ident_start(c: u8) -> bool {
    IDENT[c as usize] & 1 != 0
}

fn is_ident_cont(c: u8) -> bool {
    IDENT[c as usize] & 2 != 0
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

/// The keywords the splitter (and the search for a transaction's end) looks at; any
/// other word is an identifier.
fn keyword(word: &[u8]) -> Token {
    const KEYWORDS: [(&[u8], Token); 12] = [
        (b"create", Token::Create),
        (b"or", Token::Or),
        (b"replace", Token::Replace),
        (b"function", Token::Function),
        (b"procedure", Token::Procedure),
        (b"begin", Token::BeginP),
        (b"atomic", Token::Atomic),
        (b"case", Token::Case),
        (b"end", Token::EndP),
        (b"commit", Token::Commit),
        (b"rollback", Token::Rollback),
        (b"abort", Token::AbortP),
    ];
    // Most words are none of them: their length or first letter says so at once.
    if !(2..=9).contains(&word.len())
        || !matches!(
            word[0] | 0x20,
            b'a' | b'b' | b'c' | b'e' | b'f' | b'o' | b'p' | b'r'
        )
    {
        return Token::Ident;
    }
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map_or(Token::Ident, |(_, t)| *t)
}

/// Just past the `*/` closing the comment at `start` (comments nest).
fn c_comment_end(b: &[u8], start: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Just past the closing `quote` of the literal or identifier opened at `open`; a doubled
/// quote is one character, and with `backslash` (E'') a backslash escapes the next byte.
fn quoted_end(b: &[u8], open: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut i = open + 1;
    while i < b.len() {
        // Straight to the next byte that matters: literals can be long.
        let next = if backslash {
            memchr::memchr2(quote, b'\\', &b[i..])
        } else {
            memchr::memchr(quote, &b[i..])
        };
        i += next?;
        match b[i] {
            b'\\' => i += 2,
            q if q == quote => {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

enum Dollar {
    /// A `$tag$ ... $tag$` literal ending there.
    Literal(usize),
    /// An opening delimiter without its closing one.
    Unterminated,
    /// A parameter (`$1`) or a lone `$`, ending there.
    Other(usize),
}

/// What starts with the `$` at `i`.
fn dollar_quote(b: &[u8], i: usize) -> Dollar {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        return Dollar::Other(j);
    }
    if b.get(j).is_some_and(|&c| is_ident_start(c)) {
        while b
            .get(j)
            .is_some_and(|&c| is_ident_start(c) || c.is_ascii_digit())
        {
            j += 1;
        }
    }
    if b.get(j) != Some(&b'$') {
        return Dollar::Other(i + 1);
    }
    let delimiter = &b[i..=j];
    let body = j + 1;
    match memchr::memmem::find(&b[body..], delimiter) {
        Some(n) => Dollar::Literal(body + n + delimiter.len()),
        None => Dollar::Unterminated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens that decide a cut, as (kind, text): everything but plain words,
    /// literals, numbers and operators, whose boundaries the splitter does not use.
    fn deciding(text: &str, tokens: &[ScanToken]) -> Vec<(i32, String)> {
        const KINDS: [Token; 17] = [
            Token::SqlComment,
            Token::CComment,
            Token::Ascii59,
            Token::Ascii40,
            Token::Ascii41,
            Token::Create,
            Token::Or,
            Token::Replace,
            Token::Function,
            Token::Procedure,
            Token::BeginP,
            Token::Atomic,
            Token::Case,
            Token::EndP,
            Token::Commit,
            Token::Rollback,
            Token::AbortP,
        ];
        tokens
            .iter()
            .filter(|t| KINDS.iter().any(|k| *k as i32 == t.token))
            .map(|t| (t.token, text[t.start as usize..t.end as usize].to_string()))
            .collect()
    }

    /// Where each run of tokens between deciding ones ends: the splitter's statement
    /// ends.
    fn last_ends(tokens: &[ScanToken]) -> Vec<i32> {
        tokens
            .windows(2)
            .filter(|w| w[1].token == Token::Ascii59 as i32)
            .map(|w| w[0].end)
            .collect()
    }

    fn assert_same_as_postgres(text: &str) {
        let ours = tokens(text).expect("terminated");
        let theirs = pg_query::scan_tokens(text).expect("PostgreSQL scans it");
        assert_eq!(deciding(text, &ours), deciding(text, &theirs), "{text}");
        assert_eq!(last_ends(&ours), last_ends(&theirs), "{text}");
    }

    #[test]
    fn cut_deciding_tokens_match_postgres() {
        for text in [
            "SELECT 1; SELECT 2;",
            "SELECT 'a;b' ; SELECT 'it''s;' ;",
            "SELECT E'a\\';b' ; SELECT e'\\\\';",
            "SELECT $$ ; $$; SELECT $tag$ $$ ; $tag$ ;",
            "SELECT $1; SELECT a$b$ FROM t;",
            "SELECT \"a;\"\"b\" FROM t; -- c;\nSELECT 2 /* x /* y; */ z; */;",
            "SELECT 1 -->2\n;",
            "SELECT U&'d\\0061t;a' ; SELECT U&\"a;\" FROM t;",
            "SELECT B'01', X'1f', N'x;y';",
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
            "create procedure p() begin atomic select case when true then 1 end; end;",
            "SELECT 1.5e3, .5, 1_000, 0x1F ; SELECT 'été;' ;",
            "SELECT (1; 2);",
            "SELECT 'a'\n'b';",
            "BEGIN; UPDATE t SET a = 'commit;'; COMMIT; begin; abort; BEGIN; ROLLBACK;",
        ] {
            assert_same_as_postgres(text);
        }
    }

    #[test]
    fn every_fixture_cuts_like_postgres() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/lint");
        let mut seen = 0;
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("fixtures") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "sql") {
                    let text = std::fs::read_to_string(&path).expect("utf-8");
                    if pg_query::scan_tokens(&text).is_ok() {
                        assert_same_as_postgres(&text);
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen > 100, "only {seen} fixtures");
    }

    #[test]
    fn unterminated_literals_and_comments_are_refused() {
        for (text, at) in [
            ("SELECT 'a", 7),
            ("SELECT E'a\\'", 7),
            ("SELECT \"a", 7),
            ("SELECT $x$ a $y$", 7),
            ("SELECT 1 /* a /* b */", 9),
        ] {
            assert_eq!(tokens(text), Err(Unterminated { at }), "{text}");
            assert!(pg_query::scan_tokens(text).is_err(), "{text}");
        }
    }
}
