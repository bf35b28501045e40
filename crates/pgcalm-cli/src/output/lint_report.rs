//! Lint's report in every format: text (miette snippets), JSON, GitHub annotations,
//! Markdown, SARIF 2.1.0 (GitHub code scanning), GitLab Code Quality; for `pgcalm lint`
//! and, with who saw each finding, `pgcalm trace`. Files that could not be parsed are
//! part of every machine format (a `syntax-error` result in SARIF and GitLab).

use std::fmt::Write as _;
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};
use pgcalm_lint::{Effect, Finding, LineIndex, LintResult, SeenBy, StatementLockReport};
use pgcalm_migrate::FileError;
use pgcalm_migrate::safety::SourceKind;

use crate::settings::OutputFormat;

/// One linted file, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct FileReport {
    /// As given (or found under a directory); `<stdin>` for `-`.
    pub path: String,
    /// Which migration of a tool's SQL output (Alembic, Django); `None`: the file.
    pub label: Option<String>,
    /// How its tool runs it (`--tool` or detected); `None`: no tool.
    pub mode: Option<String>,
    /// Its text (the spans point into it).
    pub source: Arc<String>,
    /// `migration` or `plain_sql`.
    pub kind: SourceKind,
    /// Statements linted.
    pub statements: usize,
    /// Findings and ignored findings.
    pub result: LintResult,
}

impl FileReport {
    /// The reports of linted pieces, and beside them each piece's lock reports (for
    /// `--locks`).
    pub(crate) fn of_pieces(
        pieces: Vec<pgcalm_migrate::LintedPiece>,
    ) -> (Vec<FileReport>, Vec<Vec<StatementLockReport>>) {
        pieces
            .into_iter()
            .map(|p| {
                let report = FileReport {
                    path: p.path,
                    label: p.label,
                    mode: p.mode,
                    source: p.source,
                    kind: p.lint.kind,
                    statements: p.lint.statements,
                    result: p.lint.result,
                };
                (report, p.locks)
            })
            .unzip()
    }
}

/// A file lint could not read or parse (the error went to stderr as it came): the
/// summary names it, so a failure is never reported as a clean run.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Unparsed {
    /// As given.
    pub path: String,
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The error, with the fix.
    pub error: String,
}

impl Unparsed {
    pub(crate) fn new(path: &str, e: &FileError) -> Unparsed {
        Unparsed {
            path: path.to_string(),
            line: e.line,
            column: e.column,
            error: e.kind.to_string(),
        }
    }
}

/// Adds each statement's locks (`--locks`) to a rendered report: a table per file in
/// text and markdown, a `locks` array per file in JSON (github annotations stay as they
/// are).
pub(crate) fn with_locks(
    rendered: String,
    reports: &[FileReport],
    locks: &[Vec<StatementLockReport>],
    format: OutputFormat,
) -> anyhow::Result<String> {
    let effect = |e: Effect| match e {
        Effect::No => String::new(),
        Effect::Yes => "yes".into(),
        Effect::Unless(c) => format!("unless {c}"),
    };
    let rows = |statements: &[StatementLockReport]| -> Vec<Vec<String>> {
        statements
            .iter()
            .flat_map(|s| {
                let first = |i: usize, text: String| if i == 0 { text } else { String::new() };
                if s.locks.is_empty() {
                    return vec![vec![
                        s.span.line.to_string(),
                        s.statement.clone(),
                        "none on pre-existing tables".into(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]];
                }
                s.locks
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        vec![
                            first(i, s.span.line.to_string()),
                            first(i, s.statement.clone()),
                            l.mode.to_string(),
                            l.target.to_string(),
                            if l.blocks().any() {
                                l.blocks().to_string()
                            } else {
                                "nothing".into()
                            },
                            effect(l.rewrite),
                            effect(l.scan),
                        ]
                    })
                    .collect()
            })
            .collect()
    };
    let headers = [
        "line",
        "statement",
        "lock",
        "on",
        "blocks",
        "rewrite",
        "scan",
    ];
    Ok(match format {
        OutputFormat::Json => {
            let mut doc: serde_json::Value = serde_json::from_str(&rendered)?;
            for (file, statements) in doc["files"].as_array_mut().into_iter().flatten().zip(locks) {
                file["locks"] = serde_json::to_value(statements)?;
            }
            super::json::to_string(&doc)? + "\n"
        }
        OutputFormat::Text => {
            let mut out = String::new();
            for (r, statements) in reports.iter().zip(locks) {
                let title = format!("Locks taken by {}", r.path);
                out.push_str(&crate::output::psql_table(
                    Some(&title),
                    &headers,
                    &rows(statements),
                ));
                out.push('\n');
            }
            out + &rendered
        }
        OutputFormat::Markdown => {
            let mut out = rendered;
            for (r, statements) in reports.iter().zip(locks) {
                let _ = writeln!(
                    out,
                    "### Locks taken by `{}`\n\n| {} |\n|{}",
                    r.path,
                    headers.join(" | "),
                    "---|".repeat(headers.len())
                );
                for row in rows(statements) {
                    let _ = writeln!(out, "| {} |", row.join(" | "));
                }
                out.push('\n');
            }
            out
        }
        OutputFormat::Github | OutputFormat::Sarif | OutputFormat::Gitlab => rendered,
    })
}

/// Renders lint (or trace) reports in a format: text (miette snippets; colours when
/// `fancy`), json, github annotations, markdown; `unparsed`: the files that could not be
/// parsed.
pub(crate) fn render(
    reports: &[FileReport],
    unparsed: &[Unparsed],
    format: OutputFormat,
    fancy: bool,
) -> String {
    let t = totals(reports, unparsed);
    match format {
        OutputFormat::Text => render_text(reports, &t, fancy),
        OutputFormat::Json => render_json(reports, unparsed, &t),
        OutputFormat::Github => render_github(reports, unparsed, &t),
        OutputFormat::Markdown => render_markdown(reports, unparsed, &t),
        OutputFormat::Sarif => super::ci_report::render_sarif(reports, unparsed),
        OutputFormat::Gitlab => super::ci_report::render_gitlab(reports, unparsed),
    }
}

struct Totals {
    files: usize,
    statements: usize,
    errors: usize,
    warnings: usize,
    ignored: usize,
    /// Files that could not be read or parsed.
    unparsed: Vec<String>,
}

impl Totals {
    /// Nothing risky, and every file was checked.
    fn clean(&self) -> bool {
        self.errors + self.warnings == 0 && self.unparsed.is_empty()
    }
}

fn totals(reports: &[FileReport], unparsed: &[Unparsed]) -> Totals {
    let findings = || reports.iter().flat_map(|r| &r.result.findings);
    Totals {
        files: reports.len() + unparsed.len(),
        unparsed: unparsed.iter().map(|u| u.path.clone()).collect(),
        statements: reports.iter().map(|r| r.statements).sum(),
        errors: findings()
            .filter(|f| f.severity == pgcalm_lint::Severity::Error)
            .count(),
        warnings: findings()
            .filter(|f| f.severity == pgcalm_lint::Severity::Warning)
            .count(),
        ignored: reports.iter().map(|r| r.result.ignored.len()).sum(),
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn summary_line(t: &Totals) -> String {
    let mut s = format!(
        "{}, {}: ",
        plural(t.files, "file"),
        plural(t.statements, "statement")
    );
    let counts = format!(
        "{}, {}",
        plural(t.errors, "error"),
        plural(t.warnings, "warning")
    );
    if !t.unparsed.is_empty() {
        // Never "no risky statements": some SQL was not checked at all.
        let n = t.unparsed.len();
        let mut names = t.unparsed[..n.min(3)].join(", ");
        if n > 3 {
            let _ = write!(names, " and {} more", n - 3);
        }
        let _ = write!(
            s,
            "{names} could not be parsed and {} not linted",
            if n == 1 { "was" } else { "were" }
        );
        let linted = t.files - n;
        if linted > 0 {
            let _ = write!(
                s,
                "; the other {}: {counts}",
                if linted == 1 {
                    "file".to_string()
                } else {
                    format!("{linted} files")
                }
            );
        }
    } else if t.errors + t.warnings == 0 {
        s.push_str("no risky statements");
    } else {
        s.push_str(&counts);
    }
    if t.ignored > 0 {
        s.push_str(&format!(
            " ({} ignored by -- pgcalm:ignore)",
            plural(t.ignored, "finding")
        ));
    }
    s
}

fn seen_by_note(f: &Finding) -> Option<&'static str> {
    match f.seen_by {
        SeenBy::Lint => None,
        SeenBy::Trace => Some("seen by trace only"),
        SeenBy::Both => Some("seen by lint and trace"),
    }
}

/// A file's text for miette that reads only the lines around a span, so rendering
/// many findings of a big file stays linear.
#[derive(Debug)]
struct FileSource {
    name: String,
    text: Arc<String>,
    lines: Arc<LineIndex>,
}

impl SourceCode for FileSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let text: &str = &self.text;
        let start = span.offset().min(text.len());
        let end = (span.offset() + span.len()).min(text.len());
        let mut from = text[..start].rfind('\n').map_or(0, |p| p + 1);
        for _ in 0..before {
            if from == 0 {
                break;
            }
            from = text[..from - 1].rfind('\n').map_or(0, |p| p + 1);
        }
        let mut to = text[end..].find('\n').map_or(text.len(), |p| end + p);
        for _ in 0..after {
            if to >= text.len() {
                break;
            }
            to = text[to + 1..].find('\n').map_or(text.len(), |p| to + 1 + p);
        }
        let window = &text[from..to];
        let shifted = SourceSpan::new((start - from).into(), end - start);
        let inner = window.read_span(&shifted, before, after)?;
        let first_line = self.lines.line_col(text, from).0 - 1;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new((inner.span().offset() + from).into(), inner.span().len()),
            inner.line() + first_line,
            inner.column(),
            inner.line_count() + first_line,
        )))
    }
}

fn render_text(reports: &[FileReport], t: &Totals, fancy: bool) -> String {
    let theme = if fancy {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for r in reports {
        let lines = Arc::new(LineIndex::new(&r.source));
        for f in &r.result.findings {
            let mut help = f.help.clone();
            if let Some(sql) = &f.fix_sql {
                help.push_str("\nsafe SQL:\n");
                for line in sql.lines() {
                    let _ = writeln!(help, "    {line}");
                }
            }
            if let Some(note) = seen_by_note(f) {
                let _ = write!(help, "\n({note})");
            }
            let label = f.lock_label().unwrap_or_else(|| f.statement.clone());
            let diagnostic = MietteDiagnostic::new(f.message.clone())
                .with_code(f.rule.name())
                .with_severity(match f.severity {
                    pgcalm_lint::Severity::Error => miette::Severity::Error,
                    pgcalm_lint::Severity::Warning => miette::Severity::Warning,
                })
                .with_help(help.trim_end().to_string())
                .with_label(LabeledSpan::new_with_span(
                    Some(label),
                    SourceSpan::new(f.span.start.into(), f.span.end - f.span.start),
                ));
            let report = miette::Report::new(diagnostic).with_source_code(FileSource {
                name: match &r.label {
                    Some(l) => format!("{} ({l})", r.path),
                    None => r.path.clone(),
                },
                text: r.source.clone(),
                lines: lines.clone(),
            });
            let _ = handler.render_report(&mut out, report.as_ref());
            out.push('\n');
        }
    }
    out.push_str(&summary_line(t));
    out.push('\n');
    out
}

/// The `--format json` document (serialized directly: a big report is not built as a
/// `serde_json::Value` tree first).
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    files: Vec<JsonFile<'a>>,
    /// Files that could not be read or parsed (not linted).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    unparsed: &'a [Unparsed],
    summary: JsonSummary,
}

#[derive(serde::Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    migration: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<&'a str>,
    kind: SourceKind,
    statements: usize,
    findings: &'a [Finding],
    ignored: &'a [pgcalm_lint::Ignored],
}

#[derive(serde::Serialize)]
struct JsonSummary {
    files: usize,
    statements: usize,
    errors: usize,
    warnings: usize,
    ignored: usize,
    #[serde(skip_serializing_if = "is_zero")]
    unparsed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn render_json(reports: &[FileReport], unparsed: &[Unparsed], t: &Totals) -> String {
    super::json::to_string(&json_report(reports, unparsed, t)).unwrap_or_default() + "\n"
}

/// [`render`] written to `out`, ending in one newline. JSON is streamed: a big report is
/// never one string (growing one to megabytes cost a tenth of `pgcalm lint`'s time on
/// 10,000 statements, in fresh pages and copies).
pub(crate) fn write_report(
    out: &mut impl std::io::Write,
    reports: &[FileReport],
    unparsed: &[Unparsed],
    format: OutputFormat,
    fancy: bool,
) -> std::io::Result<()> {
    if format == OutputFormat::Json {
        let t = totals(reports, unparsed);
        super::json::to_writer(&mut *out, &json_report(reports, unparsed, &t))?;
    } else {
        let rendered = render(reports, unparsed, format, fancy);
        out.write_all(rendered.trim_end_matches('\n').as_bytes())?;
    }
    out.write_all(b"\n")
}

fn json_report<'a>(
    reports: &'a [FileReport],
    unparsed: &'a [Unparsed],
    t: &Totals,
) -> JsonReport<'a> {
    JsonReport {
        files: reports
            .iter()
            .map(|r| JsonFile {
                path: &r.path,
                migration: r.label.as_deref(),
                runs: r.mode.as_deref(),
                kind: r.kind,
                statements: r.statements,
                findings: &r.result.findings,
                ignored: &r.result.ignored,
            })
            .collect(),
        unparsed,
        summary: JsonSummary {
            files: t.files,
            statements: t.statements,
            errors: t.errors,
            warnings: t.warnings,
            ignored: t.ignored,
            unparsed: unparsed.len(),
        },
    }
}

/// GitHub's workflow-command escaping for a property value or message.
fn gh_escape(s: &str, property: bool) -> String {
    let s = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        s.replace(':', "%3A").replace(',', "%2C")
    } else {
        s
    }
}

fn render_github(reports: &[FileReport], unparsed: &[Unparsed], t: &Totals) -> String {
    let mut out = String::new();
    for u in unparsed {
        let _ = writeln!(
            out,
            "::error file={},line={},col={},title={}::{}",
            gh_escape(&u.path, true),
            u.line,
            u.column.unwrap_or(1),
            gh_escape("pgcalm could not parse this file", true),
            gh_escape(&u.error, false)
        );
    }
    for r in reports {
        for f in &r.result.findings {
            let level = match f.severity {
                pgcalm_lint::Severity::Error => "error",
                pgcalm_lint::Severity::Warning => "warning",
            };
            let mut message = f.message.clone();
            if let Some(label) = f.lock_label() {
                let _ = write!(message, "\n{label}");
            }
            let _ = write!(message, "\nhelp: {}", f.help);
            if let Some(sql) = &f.fix_sql {
                let _ = write!(message, "\nsafe SQL:\n{sql}");
            }
            let (end_line, end_column) = end_position(&r.source, f);
            let _ = writeln!(
                out,
                "::{level} file={},line={},col={},endLine={end_line},endColumn={end_column},title={}::{}",
                gh_escape(&r.path, true),
                f.span.line,
                f.span.column,
                gh_escape(&format!("pgcalm {}", f.rule), true),
                gh_escape(&message, false)
            );
        }
    }
    out.push_str(&summary_line(t));
    out.push('\n');
    out
}

pub(super) fn end_position(source: &str, f: &Finding) -> (usize, usize) {
    let text = &source[f.span.start..f.span.end];
    let lines = text.matches('\n').count();
    let last = text.rsplit('\n').next().unwrap_or("").chars().count();
    if lines == 0 {
        (f.span.line, f.span.column + last)
    } else {
        (f.span.line + lines, last + 1)
    }
}

fn render_markdown(reports: &[FileReport], unparsed: &[Unparsed], t: &Totals) -> String {
    let mut out = String::from("## pgcalm lint\n\n");
    let _ = writeln!(
        out,
        "{} {}\n",
        if t.clean() { "✅" } else { "❌" },
        summary_line(t)
    );
    for u in unparsed {
        let _ = writeln!(
            out,
            "### ❌ `{}` (could not be parsed)\n\nline {}:\n\n```\n{}\n```\n",
            u.path, u.line, u.error
        );
    }
    for r in reports {
        let mark = if r.result.findings.is_empty() {
            "✅"
        } else {
            "❌"
        };
        let _ = writeln!(
            out,
            "### {mark} `{}`{} ({}, {})\n",
            r.path,
            r.label
                .as_ref()
                .map(|l| format!(" {l}"))
                .unwrap_or_default(),
            match (&r.mode, r.kind) {
                (Some(mode), _) => mode.as_str(),
                (None, SourceKind::Migration) => "pgcalm migration",
                (None, SourceKind::PlainSql) => "plain SQL",
            },
            plural(r.statements, "statement")
        );
        if r.result.findings.is_empty() {
            continue;
        }
        out.push_str("| Line | Rule | Lock | Blocks | Finding |\n|---|---|---|---|---|\n");
        for f in &r.result.findings {
            let _ = writeln!(
                out,
                "| {} | `{}` ({}) | {} | {} | {} |",
                f.span.line,
                f.rule,
                f.severity,
                f.lock.map(|l| l.to_string()).unwrap_or_default(),
                if f.lock.is_some() {
                    f.blocks.to_string()
                } else {
                    String::new()
                },
                f.message.replace('|', "\\|")
            );
        }
        out.push('\n');
        for f in &r.result.findings {
            let _ = writeln!(
                out,
                "<details><summary>line {}: <code>{}</code></summary>\n\n```sql\n{}\n```\n\n{}",
                f.span.line,
                f.rule,
                &r.source[f.span.start..f.span.end],
                f.help
            );
            if let Some(sql) = &f.fix_sql {
                let _ = writeln!(out, "\nSafe SQL:\n\n```sql\n{sql}\n```");
            }
            if let Some(note) = seen_by_note(f) {
                let _ = writeln!(out, "\n_{note}_");
            }
            out.push_str("\n</details>\n\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lint fixture, one at a time and all in one report, as `--format json`,
    /// `--locks`, SARIF and GitLab print it: what serde_json's pretty printer writes.
    #[test]
    fn reports_of_the_lint_fixtures_print_as_serde_json_prints_them() {
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lint");
        let linted = pgcalm_migrate::LintFiles {
            locks: true,
            ..pgcalm_migrate::LintFiles::new(vec![fixtures], Default::default())
        }
        .run(|_| {})
        .unwrap();
        let unparsed: Vec<Unparsed> = linted
            .unparsed
            .iter()
            .map(|u| Unparsed::new(&u.path, &u.error))
            .collect();
        let (reports, locks) = FileReport::of_pieces(linted.pieces);
        assert!(reports.len() > 100, "{} files", reports.len());
        assert!(
            reports
                .iter()
                .map(|r| r.result.findings.len())
                .sum::<usize>()
                > 100
        );
        let pretty_again = |printed: &str| {
            let value: serde_json::Value = serde_json::from_str(printed).unwrap();
            serde_json::to_string_pretty(&value).unwrap() + "\n"
        };
        let whole = (&reports[..], &locks[..], &unparsed[..]);
        let each = reports
            .iter()
            .zip(&locks)
            .map(|(r, l)| (std::slice::from_ref(r), std::slice::from_ref(l), &[][..]));
        for (reports, locks, unparsed) in std::iter::once(whole).chain(each) {
            let t = totals(reports, unparsed);
            let theirs =
                serde_json::to_string_pretty(&json_report(reports, unparsed, &t)).unwrap() + "\n";
            let mut streamed = Vec::new();
            write_report(&mut streamed, reports, unparsed, OutputFormat::Json, false).unwrap();
            assert_eq!(String::from_utf8(streamed).unwrap(), theirs);
            let rendered = render(reports, unparsed, OutputFormat::Json, false);
            assert_eq!(rendered, theirs);
            let with = with_locks(rendered, reports, locks, OutputFormat::Json).unwrap();
            assert_eq!(with, pretty_again(&with));
            assert_eq!(
                super::super::json::to_string(locks).unwrap(),
                serde_json::to_string_pretty(locks).unwrap()
            );
            for format in [OutputFormat::Sarif, OutputFormat::Gitlab] {
                let printed = render(reports, unparsed, format, false);
                assert_eq!(printed, pretty_again(&printed));
            }
        }
    }
}
