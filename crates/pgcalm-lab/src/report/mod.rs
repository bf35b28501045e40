//! Writers of the lab's report, all from one [`LabResults`]:
//!
//! | file | for |
//! |---|---|
//! | `report.md` | pasting into a pull request: the seed's Step 5 table measured, one summary per scenario, EXPLAIN before/after |
//! | `report.html` | reading: the same tables and one SVG timeline per scenario and form; self-contained (inline CSS and SVG, no scripts, nothing fetched) |
//! | `results.json` | tools: every figure, [`LabResults`] as JSON (samples included) |
//! | `samples/<scenario>.<form>-<pools>.csv` | the raw probe samples of each form |
//!
//! The tables are data ([`Table`]s, `tables.rs`) so the terminal can print the same
//! Step 5 table;
//! the shared-vs-separate pools paragraph is worded here from the figures too
//! ([`pool_topology_note`]), for the terminal, `report.md` and `report.html` alike.

mod format;
mod html;
mod markdown;
mod pool_note;
mod samples;
mod svg;
mod tables;

use std::path::{Path, PathBuf};

use crate::results::{FormRun, LabResults, ScenarioResult};

pub use self::format::{form_label, level_cell};
pub use self::html::render_html;
pub use self::markdown::render_markdown;
pub(crate) use self::pool_note::pool_note_heading;
pub use self::pool_note::pool_topology_note;
pub use self::samples::samples_csv;
pub use self::svg::{index_phase_stretches, lock_wait_stretches, timeline_id, timeline_svg};
pub use self::tables::{
    FEW_REQUESTS_MARK, MIN_PERCENTILE_REQUESTS, SAFE_CRITERIA_HEADER, SEED_SCENARIO, Table,
    blocked_meaning, explain_table, few_requests_note, forms_table, has_few_requests_mark,
    hazard_seen, scenario_summary_table, step5_table, step5_terminal_table,
};

/// Where `pgcalm lab` writes its report unless told otherwise (`--out`).
pub const DEFAULT_OUT_DIR: &str = "lab-report";

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory or a file could not be written.
    #[error("cannot write {path}: {source} (check that the --out directory is writable)")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The results could not be encoded as JSON (a non-finite number, say).
    #[error("cannot encode results.json: {0}")]
    Json(#[from] serde_json::Error),
}

/// The files one [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `results.json`.
    pub json: PathBuf,
    /// One CSV of raw probe samples per scenario and form.
    pub samples: Vec<PathBuf>,
}

/// Writes `report.md`, `report.html`, `results.json` and the samples into `dir`
/// (created if missing; files of an earlier report are replaced).
pub fn write_report(results: &LabResults, dir: &Path) -> Result<ReportFiles, ReportError> {
    let samples_dir = dir.join("samples");
    create_dir(&samples_dir)?;
    let files = ReportFiles {
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
        json: dir.join("results.json"),
        samples: results
            .scenarios
            .iter()
            .flat_map(|sc| sc.forms.iter().map(move |f| dir.join(samples_path(sc, f))))
            .collect(),
    };
    write(&files.json, &serde_json::to_string_pretty(results)?)?;
    write(&files.markdown, &render_markdown(results))?;
    write(&files.html, &render_html(results))?;
    let forms = results.scenarios.iter().flat_map(|sc| sc.forms.iter());
    for (path, form) in files.samples.iter().zip(forms) {
        write(path, &samples_csv(form))?;
    }
    Ok(files)
}

/// Path of a form's samples relative to the report directory:
/// `samples/add_index.risky-shared.csv`.
pub fn samples_path(scenario: &ScenarioResult, form: &FormRun) -> String {
    format!("samples/{}.{}.csv", scenario.name, form.key())
}

fn create_dir(path: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(path).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Escapes text for XML/HTML content and attribute values.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
