//! `report.md`: the tables, ready to paste into a pull request.

use std::fmt::Write as _;

use crate::results::LabResults;

use super::format::{form_label, ms};
use super::tables;

/// The whole Markdown report.
pub fn render_markdown(results: &LabResults) -> String {
    let mut md = String::from("# pgcalm lab report\n\n");
    md.push_str(&tables::run_table(results).to_markdown());
    if let Some(step5) = tables::step5_table(results) {
        md.push_str("\n## Step 5, measured: risky vs safe index build\n\n");
        md.push_str(&step5.to_markdown());
        let _ = write!(md, "\n{}\n", tables::blocked_meaning());
        if tables::has_few_requests_mark(&step5) {
            let _ = write!(md, "\n{}\n", tables::few_requests_note());
        }
    }
    if let Some(note) = super::pool_topology_note(results) {
        let _ = write!(
            md,
            "\n### {}\n\n{note}\n",
            super::pool_note_heading(results)
        );
    }
    if results.scenarios.len() > 1 {
        md.push_str("\n## Scenarios\n\n");
        md.push_str(&tables::overview_table(results).to_markdown());
    }
    for sc in &results.scenarios {
        let _ = write!(
            md,
            "\n## {} (`{}`)\n\n{}\n\nHazard of the risky form: {}\n\n",
            sc.title, sc.name, sc.demonstrates, sc.hazard
        );
        md.push_str(&tables::scenario_summary_table(sc).to_markdown());
        md.push('\n');
        let endpoints = tables::endpoint_table(sc);
        md.push_str(&endpoints.to_markdown());
        if tables::has_few_requests_mark(&endpoints) {
            let _ = write!(md, "\n{}\n", tables::few_requests_note());
        }
        let notes: Vec<String> = sc
            .forms
            .iter()
            .flat_map(|f| {
                f.verdict
                    .notes
                    .iter()
                    .map(move |n| format!("- {}: {n}\n", form_label(f.form, f.topology)))
            })
            .collect();
        if !notes.is_empty() {
            md.push('\n');
            md.push_str(&notes.concat());
        }
        if let Some(explain) = tables::explain_table(sc) {
            md.push_str("\n### EXPLAIN ANALYZE before and after\n\n");
            md.push_str(&explain.to_markdown());
            for f in &sc.forms {
                if let Some(x) = &f.explain {
                    let _ = write!(
                        md,
                        "\n<details><summary>{}: plans ({} → {})</summary>\n\nBefore:\n\n```text\n{}\n```\n\nAfter:\n\n```text\n{}\n```\n\n</details>\n",
                        form_label(f.form, f.topology),
                        ms(x.before.execution_ms),
                        ms(x.after.execution_ms),
                        x.before.plan.trim_end(),
                        x.after.plan.trim_end()
                    );
                }
            }
        }
    }
    md.push_str("\nTimelines of every request: `report.html`. Every figure: `results.json`. Raw samples: `samples/`.\n");
    md
}
