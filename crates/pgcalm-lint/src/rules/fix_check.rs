//! What makes a fix wrong where its file runs: shared by the rules' snapshot tests
//! (`test_support::check_with`), `tests/corpus.rs` and pgcalm-trace's `tests/fixes.rs`
//! (which include this file with `#[path]`, so it uses only `pg_query` and std).
//!
//! A fix is put in place of its statement (and the statement's `;`) and the text is linted
//! again, the way the original was (same transaction mode, version, schema). Then:
//! it must parse; no finding on it may be of the rule it fixes, `concurrently-in-transaction`
//! (CONCURRENTLY where the file runs in a transaction), or a rule the statement did not
//! have (a fix adds no hazard); and a name it shares with the statement keeps its quoting
//! (`"Team_key"` is not `team_key`).

use std::ops::Range;

use pg_query::protobuf::Token;

/// The source with `source[stmt]` (and a `;` right after it) replaced by `fix`, and the
/// range the fix occupies in the result.
pub(crate) fn with_fix(source: &str, stmt: Range<usize>, fix: &str) -> (String, Range<usize>) {
    let (replaced, with) = fix_edit(source, stmt.clone(), fix);
    let text = format!(
        "{}{with}{}",
        &source[..replaced.start],
        &source[replaced.end..]
    );
    (text, stmt.start..stmt.start + fix.len())
}

/// What [`with_fix`] replaces (the statement and a `;` right after it) and with what.
#[allow(dead_code)] // the tests that include this file use with_fix only
pub(crate) fn fix_edit(source: &str, stmt: Range<usize>, fix: &str) -> (Range<usize>, String) {
    // The statement's own `;`, also after blanks (`x  ;`): the fix brings its own.
    let rest = &source[stmt.end..];
    let blanks = rest.len() - rest.trim_start().len();
    let end = if rest.starts_with(';') {
        stmt.end + 1
    } else if fix.trim_end().ends_with(';') && rest[blanks..].starts_with(';') {
        stmt.end + blanks + 1
    } else {
        stmt.end
    };
    // A fix may end with a comment line: keep what followed on a line of its own.
    let sep = if fix
        .lines()
        .last()
        .is_some_and(|l| l.trim_start().starts_with("--"))
    {
        "\n"
    } else {
        ""
    };
    (stmt.start..end, format!("{fix}{sep}"))
}

/// The problems of one fix (empty: it is right). `original` are the rules lint reported on
/// the statement; `relint` lints a whole source text the way the original was linted and
/// returns each finding's rule and start offset.
pub(crate) fn fix_problems(
    source: &str,
    stmt: Range<usize>,
    rule: &str,
    fix: &str,
    original: &[&str],
    relint: impl Fn(&str) -> Vec<(String, usize)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = pg_query::parse(fix, 0) {
        problems.push(format!("the fix does not parse: {e}"));
        return problems;
    }
    let (text, region) = with_fix(source, stmt.clone(), fix);
    for (found, at) in relint(&text) {
        if !region.contains(&at) {
            continue;
        }
        if found == rule {
            problems.push(format!("the fix raises {rule} again"));
        } else if found == "concurrently-in-transaction" {
            problems.push("the fix cannot run in this file's transaction".into());
        } else if !original.contains(&found.as_str()) {
            problems.push(format!("the fix adds a {found} finding"));
        }
    }
    for (wrote, names) in renamed_identifiers(&source[stmt], fix) {
        problems.push(format!(
            "the fix writes {wrote} for {names}: quoting changed the name"
        ));
    }
    problems.sort();
    problems.dedup();
    problems
}

/// Identifiers of `fix` that match one of `original` but for case: the quotes that kept
/// its case were lost (or added). Each with the original spelling.
fn renamed_identifiers(original: &str, fix: &str) -> Vec<(String, String)> {
    let names = |sql: &str| -> Vec<(String, String)> {
        pg_query::scan_tokens(sql)
            .map(|tokens| {
                tokens
                    .iter()
                    .filter(|t| t.token == Token::Ident as i32)
                    .map(|t| {
                        let text = &sql[t.start as usize..t.end as usize];
                        (text.to_string(), identifier_value(text))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = names(original);
    let mut out = Vec::new();
    for (text, value) in names(fix) {
        if let Some((orig_text, _)) = before
            .iter()
            .find(|(_, v)| v.eq_ignore_ascii_case(&value) && *v != value)
        {
            out.push((text, orig_text.clone()));
        }
    }
    out
}

/// The name an identifier token stands for: quoted ones as written, others folded to
/// lower case.
fn identifier_value(token: &str) -> String {
    match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => token.to_lowercase(),
    }
}
