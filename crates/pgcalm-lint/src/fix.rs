//! `pgcalm lint --fix`: which emitted fixes may be written into a file, and the file with
//! them in place. A fix is written only when it is right where the file runs, by the same
//! checks the rules' tests apply to every emitted fix ([`crate::rules::fix_check`]): with
//! it in place the text parses, and re-linted the way the file runs it raises neither the
//! rule it fixes, nor `concurrently-in-transaction`, nor a rule the statement did not
//! have, and it keeps the quoting of the names it shares with the statement. Everything
//! outside the replaced statements is kept byte for byte.

use std::ops::Range;

use crate::finding::Finding;
use crate::rule_id::RuleId;
use crate::rules::fix_check::{fix_edit, fix_problems, with_fix};

/// One rewrite: `source[range]` (a statement and its `;`) becomes `sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The bytes replaced: the statement and the `;` right after it.
    pub range: Range<usize>,
    /// What replaces them.
    pub sql: String,
    /// The rule whose fix it is.
    pub rule: RuleId,
    /// 1-based line of the statement.
    pub line: usize,
}

/// A fix lint offered that `--fix` does not write, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The rule whose fix it is.
    pub rule: RuleId,
    /// 1-based line of the statement.
    pub line: usize,
    /// What is wrong with it where the file runs.
    pub problems: Vec<String>,
}

/// The fixes of `findings` (lint's findings on `source`) that are right where `source`
/// runs: at most one per statement, the first right one. `relint` lints a whole text the
/// way `source` was linted and returns each finding's rule and start offset, or `None`
/// when the text does not parse.
pub fn safe_edits(
    source: &str,
    findings: &[Finding],
    relint: impl Fn(&str) -> Option<Vec<(RuleId, usize)>>,
) -> (Vec<Edit>, Vec<Refused>) {
    let (mut edits, mut refused) = (Vec::<Edit>::new(), Vec::new());
    for f in findings {
        let Some(fix) = &f.fix_sql else { continue };
        if edits.iter().any(|e| e.range.start == f.span.start) {
            continue;
        }
        let original: Vec<&str> = findings
            .iter()
            .filter(|g| g.span.start == f.span.start)
            .map(|g| g.rule.name())
            .collect();
        let (text, _) = with_fix(source, f.span.range(), fix);
        let problems = match relint(&text) {
            None => vec!["the file with the fix in place does not parse".to_string()],
            Some(found) => {
                let found: Vec<(String, usize)> = found
                    .into_iter()
                    .map(|(r, at)| (r.to_string(), at))
                    .collect();
                fix_problems(
                    source,
                    f.span.range(),
                    f.rule.name(),
                    fix,
                    &original,
                    |_| found.clone(),
                )
            }
        };
        if problems.is_empty() {
            edits.push(edit(source, f, fix));
        } else {
            refused.push(Refused {
                rule: f.rule,
                line: f.span.line,
                problems,
            });
        }
    }
    edits.sort_by_key(|e| e.range.start);
    (edits, refused)
}

/// The edit [`with_fix`] makes for `f`.
fn edit(source: &str, f: &Finding, fix: &str) -> Edit {
    let (range, sql) = fix_edit(source, f.span.range(), fix);
    Edit {
        range,
        sql,
        rule: f.rule,
        line: f.span.line,
    }
}

/// `source` with every edit in place (edits must not overlap; any order).
pub fn apply_edits(source: &str, edits: &[Edit]) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.range.start);
    let mut out = String::with_capacity(source.len() + 64);
    let mut at = 0;
    for e in sorted {
        if e.range.start < at {
            continue; // overlapping: keep the first
        }
        out.push_str(&source[at..e.range.start]);
        out.push_str(&e.sql);
        at = e.range.end;
    }
    out.push_str(&source[at..]);
    out
}
