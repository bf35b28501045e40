//! Lint's report for CI services: SARIF 2.1.0 (GitHub code scanning) and GitLab Code
//! Quality. A file that could not be parsed is a `syntax-error` result in both, so a CI
//! view never shows a failed file as clean.

use std::collections::BTreeMap;

use pgcalm_lint::{Finding, RuleId, RuleKind, Severity, TableSize};
use serde_json::{Value, json};

use super::lint_report::{FileReport, Unparsed, end_position};

/// One result of either format: a finding, or a file that did not parse.
struct Item<'a> {
    path: &'a str,
    rule: RuleId,
    severity: Severity,
    message: String,
    /// 1-based start line and column, end line and column.
    region: (usize, usize, usize, usize),
    /// What identifies it across runs (the statement's text, not its line).
    identity: String,
    /// The table size that graded it (SARIF's `tableSize` property).
    table_size: Option<TableSize>,
}

fn items<'a>(reports: &'a [FileReport], unparsed: &'a [Unparsed]) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    for u in unparsed {
        let column = u.column.unwrap_or(1);
        out.push(Item {
            path: &u.path,
            rule: RuleId::SyntaxError,
            severity: Severity::Error,
            message: format!(
                "pgcalm could not parse this file, so nothing in it was linted: {}",
                u.error
            ),
            region: (u.line, column, u.line, column),
            identity: u.error.clone(),
            table_size: None,
        });
    }
    for r in reports {
        for f in &r.result.findings {
            let (end_line, end_column) = end_position(&r.source, f);
            out.push(Item {
                path: &r.path,
                rule: f.rule,
                severity: f.severity,
                message: message(r, f),
                region: (f.span.line, f.span.column, end_line, end_column),
                identity: r.source[f.span.start..f.span.end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                table_size: f.table_size,
            });
        }
    }
    out
}

fn message(r: &FileReport, f: &Finding) -> String {
    let mut m = f.message.clone();
    if let Some(label) = &r.label {
        m = format!("{label}: {m}");
    }
    if let Some(lock) = f.lock_label() {
        m.push_str(&format!("\n{lock}"));
    }
    m.push_str(&format!("\nhelp: {}", f.help));
    if let Some(sql) = &f.fix_sql {
        m.push_str(&format!("\nsafe SQL:\n{sql}"));
    }
    m
}

/// FNV-1a, 64 bits, in hex: a fingerprint that does not change between runs or builds.
fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Fingerprints unique within the report: the same statement twice in a file gets
/// its occurrence number.
fn fingerprints(items: &[Item<'_>]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    items
        .iter()
        .map(|i| {
            let base = fingerprint(&[i.path, i.rule.name(), &i.identity]);
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            if *n == 1 {
                base
            } else {
                fingerprint(&[&base, &n.to_string()])
            }
        })
        .collect()
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// The SARIF 2.1.0 log: one run, its driver's rules (those the results name, from the
/// rule table), and a result per finding and per file that did not parse.
pub(crate) fn render_sarif(reports: &[FileReport], unparsed: &[Unparsed]) -> String {
    let items = items(reports, unparsed);
    let mut rules: Vec<RuleId> = items.iter().map(|i| i.rule).collect();
    rules.sort_by_key(|r| *r as usize);
    rules.dedup();
    let rule_objects: Vec<Value> = rules
        .iter()
        .map(|r| {
            let info = r.info();
            let help = if info.kind == RuleKind::Rule {
                format!(
                    "{}\n`pgcalm lint --list-rules` lists every rule; `-- pgcalm:ignore {} reason` \
                     on the line before a statement ignores it there.",
                    info.hazard,
                    r.name()
                )
            } else {
                info.hazard.to_string()
            };
            json!({
                "id": r.name(),
                "name": r.name(),
                "shortDescription": { "text": info.hazard },
                "fullDescription": { "text": info.hazard },
                "help": { "text": help },
                "defaultConfiguration": { "level": sarif_level(info.severity) },
                "properties": { "tags": ["postgresql", "migration"] },
            })
        })
        .collect();
    let results: Vec<Value> = items
        .iter()
        .zip(fingerprints(&items))
        .map(|(i, fp)| {
            let (line, column, end_line, end_column) = i.region;
            let mut result = json!({
                "ruleId": i.rule.name(),
                "ruleIndex": rules.iter().position(|r| *r == i.rule),
                "level": sarif_level(i.severity),
                "message": { "text": i.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(i.path), "uriBaseId": "%SRCROOT%" },
                        "region": {
                            "startLine": line,
                            "startColumn": column,
                            "endLine": end_line,
                            "endColumn": end_column.max(if end_line == line { column } else { 1 }),
                        },
                    },
                }],
                "partialFingerprints": { "pgcalm/v1": fp },
            });
            if let Some(size) = i.table_size {
                result["properties"] = json!({ "tableSize": size });
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "pgcalm",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rule_objects,
                },
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    super::json::to_string(&doc).unwrap_or_default() + "\n"
}

/// A path as a SARIF URI reference: relative, forward slashes, no `./`.
fn uri(path: &str) -> String {
    let p = path.replace('\\', "/");
    p.strip_prefix("./").unwrap_or(&p).to_string()
}

/// GitLab Code Quality: an array of issues (description, check_name, fingerprint,
/// severity, location.path and lines.begin).
pub(crate) fn render_gitlab(reports: &[FileReport], unparsed: &[Unparsed]) -> String {
    let items = items(reports, unparsed);
    let issues: Vec<Value> = items
        .iter()
        .zip(fingerprints(&items))
        .map(|(i, fp)| {
            let first_line = i.message.lines().next().unwrap_or_default();
            json!({
                "type": "issue",
                "description": format!("{}: {first_line}", i.rule.name()),
                "content": { "body": i.message },
                "check_name": i.rule.name(),
                "fingerprint": fp,
                "severity": match (i.rule, i.severity) {
                    (RuleId::SyntaxError, _) | (_, Severity::Error) => "critical",
                    (_, Severity::Warning) => "major",
                },
                "categories": ["Bug Risk"],
                "location": {
                    "path": uri(i.path),
                    "lines": { "begin": i.region.0, "end": i.region.2 },
                },
            })
        })
        .collect();
    super::json::to_string(&issues).unwrap_or_default() + "\n"
}
