//! `report.html`: the report's tables and one SVG timeline per scenario and form, in one
//! self-contained page (inline CSS and SVG; no scripts, fonts or links to fetch).

use std::fmt::Write as _;

use crate::results::{FormRun, LabResults, RunOptions, ScenarioResult};

use super::format::{form_label, ms, seconds};
use super::tables::{self, Table};
use super::{svg, xml_escape as esc};

const CSS: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1260px; color: #222; line-height: 1.45; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { font-size: 21px; margin-top: 40px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 24px 0 6px; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td:first-child { white-space: nowrap; }
code, pre { font-family: Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
svg.timeline { max-width: 100%; height: auto; border: 1px solid #e3e3e3; display: block; }
.hazard { color: #8a1c1c; }
.yes { color: #1a7f37; font-weight: bold; }
.no { color: #c62828; font-weight: bold; }
.queued { color: #b26a00; font-weight: bold; }
.note { background: #f5f8ff; border-left: 4px solid #4a78c2; padding: 8px 12px; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: #333; }
";

/// The whole HTML report.
pub fn render_html(results: &LabResults) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pgcalm lab report</title><style>{CSS}</style></head><body>\n<h1>pgcalm lab report</h1>\n"
    );
    table_html(&mut h, &tables::run_table(results));
    if let Some(step5) = tables::step5_table(results) {
        h.push_str("<h2>Step 5, measured: risky vs safe index build</h2>\n");
        table_html(&mut h, &step5);
        let _ = writeln!(h, "<p>{}</p>", inline(&tables::blocked_meaning()));
        few_requests_note(&mut h, &step5);
    }
    if let Some(note) = super::pool_topology_note(results) {
        let _ = writeln!(
            h,
            "<h3>{}</h3><p class=\"note\">{}</p>",
            super::pool_note_heading(results),
            inline(&note)
        );
    }
    if results.scenarios.len() > 1 {
        h.push_str("<h2>Scenarios</h2>\n");
        table_html(&mut h, &tables::overview_table(results));
    }
    for sc in &results.scenarios {
        scenario_html(&mut h, &results.run.options, sc);
    }
    h.push_str("</body></html>\n");
    h
}

fn scenario_html(h: &mut String, options: &RunOptions, sc: &ScenarioResult) {
    let _ = write!(
        h,
        "<section class=\"scenario\" id=\"scenario-{id}\"><h2>{} (<code>{id}</code>)</h2>\n<p>{}</p><p class=\"hazard\">Hazard of the risky form: {}</p>\n",
        esc(&sc.title),
        inline(&sc.demonstrates),
        inline(&sc.hazard),
        id = esc(&sc.name)
    );
    table_html(h, &tables::scenario_summary_table(sc));
    for f in &sc.forms {
        form_html(h, options, sc, f);
    }
    h.push_str("<h3>Per endpoint, baseline → during the migration</h3>\n");
    let endpoints = tables::endpoint_table(sc);
    table_html(h, &endpoints);
    few_requests_note(h, &endpoints);
    if let Some(explain) = tables::explain_table(sc) {
        h.push_str("<h3>EXPLAIN ANALYZE before and after</h3>\n");
        table_html(h, &explain);
        for f in &sc.forms {
            if let Some(x) = &f.explain {
                let _ = writeln!(
                    h,
                    "<details><summary>{}: plans</summary><p>Before ({}):</p><pre>{}</pre><p>After ({}):</p><pre>{}</pre></details>",
                    form_label(f.form, f.topology),
                    ms(x.before.execution_ms),
                    esc(x.before.plan.trim_end()),
                    ms(x.after.execution_ms),
                    esc(x.after.plan.trim_end())
                );
            }
        }
    }
    h.push_str("</section>\n");
}

fn form_html(h: &mut String, options: &RunOptions, sc: &ScenarioResult, f: &FormRun) {
    let _ = writeln!(h, "<h3>{}</h3>", form_label(f.form, f.topology));
    h.push_str(&svg::timeline_svg(options, sc, f));
    h.push('\n');
    for note in &f.verdict.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", inline(note));
    }
    let statements = &f.migration.statements;
    if !statements.is_empty() {
        let _ = write!(
            h,
            "<details><summary>Statements executed ({})</summary>",
            statements.len()
        );
        let rows = statements
            .iter()
            .map(|s| {
                vec![
                    seconds(s.start_ms - f.probe_window.start_ms),
                    ms(s.duration_ms),
                    s.lock_timeout_ms.map_or("none".into(), |t| ms(t as f64)),
                    format!("`{}`", s.sql.trim()),
                    s.error.clone().unwrap_or_else(|| "ok".into()),
                ]
            })
            .collect();
        let headers = ["Sent at", "Took", "lock_timeout", "Statement", "Result"];
        table_html(
            h,
            &Table {
                headers: headers.map(String::from).to_vec(),
                rows,
            },
        );
        h.push_str("</details>\n");
    }
    if !f.lock_waits.is_empty() {
        let _ = write!(
            h,
            "<details><summary>Lock waiters seen ({} observations)</summary>",
            f.lock_waits.len()
        );
        let rows = f
            .lock_waits
            .iter()
            .map(|w| {
                vec![
                    seconds(w.at_ms - f.probe_window.start_ms),
                    format!("{} ({})", w.waiter_app, w.waiter_pid),
                    w.mode.clone(),
                    w.relation.clone().unwrap_or_default(),
                    w.blocker_pids
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    w.waited_ms.map_or(String::new(), ms),
                    w.query.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let headers = [
            "Seen at",
            "Waiter",
            "Wants",
            "Relation",
            "Blocked by",
            "Waiting for",
            "Query",
        ];
        table_html(
            h,
            &Table {
                headers: headers.map(String::from).to_vec(),
                rows,
            },
        );
        h.push_str("</details>\n");
    }
}

/// The footnote of the few-requests mark, under a table that has one.
fn few_requests_note(h: &mut String, t: &Table) {
    if tables::has_few_requests_mark(t) {
        let _ = writeln!(
            h,
            "<p class=\"note\">{}</p>",
            inline(&tables::few_requests_note())
        );
    }
}

fn table_html(h: &mut String, t: &Table) {
    h.push_str("<table><thead><tr>");
    for c in &t.headers {
        let _ = write!(h, "<th>{}</th>", inline(c));
    }
    h.push_str("</tr></thead><tbody>\n");
    for row in &t.rows {
        h.push_str("<tr>");
        for c in row {
            let _ = write!(h, "<td>{}</td>", inline(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
}

/// Escapes `text` and turns the Markdown the tables use (`code`, **bold**) into HTML.
fn inline(text: &str) -> String {
    let escaped = esc(text);
    let mut out = String::with_capacity(escaped.len());
    let (mut code, mut bold) = (false, false);
    let mut rest = escaped.as_str();
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[1..];
        } else if !code && rest.starts_with("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = &rest[2..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    // The seed's ✅/❌ need an emoji font; these marks are in every common font.
    let out = out
        .replace('✅', "<span class=\"yes\">✔</span>")
        .replace('❌', "<span class=\"no\">✘</span>")
        .replace("⚠️", "<span class=\"queued\">⚠</span>");
    let mut out = out;
    // Unbalanced markers would leave an element open.
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::inline;

    #[test]
    fn inline_markdown_becomes_escaped_html() {
        assert_eq!(
            inline("**Blocks** `a < b`"),
            "<strong>Blocks</strong> <code>a &lt; b</code>"
        );
        assert_eq!(inline("`open"), "<code>open</code>");
        assert_eq!(inline("⚠️ Yes"), "<span class=\"queued\">⚠</span> Yes");
    }
}
