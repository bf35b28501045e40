//! The timelines in report.html, checked as XML: one well-formed SVG per scenario and
//! form, a red mark per failed request, migration start and end, lock waits and index
//! build phases where the run saw them, axes with units and a legend.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod report_fixture;

use pgcalm_lab::{
    FormRun, LabResults, Outcome, index_phase_stretches, lock_wait_stretches, render_html,
    timeline_id, timeline_svg,
};
use roxmltree::{Document, Node};

fn has_class(n: &Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

fn count_class(doc: &Document, class: &str) -> usize {
    doc.descendants().filter(|n| has_class(n, class)).count()
}

fn outcomes(form: &FormRun, outcome: Outcome) -> usize {
    form.samples.iter().filter(|s| s.outcome == outcome).count()
}

/// Every `<svg ...>...</svg>` of the page, by id.
fn svgs_in(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg ") {
        let end =
            rest[start..].find("</svg>").expect("every svg is closed") + start + "</svg>".len();
        let svg = &rest[start..end];
        let doc =
            Document::parse(svg).unwrap_or_else(|e| panic!("svg is not well-formed XML: {e}"));
        out.push((
            doc.root_element()
                .attribute("id")
                .unwrap_or_default()
                .to_string(),
            svg.to_string(),
        ));
        rest = &rest[end..];
    }
    out
}

fn fixture() -> LabResults {
    report_fixture::lab_results()
}

#[test]
fn every_form_has_exactly_one_timeline_in_the_page() {
    let results = fixture();
    let html = render_html(&results);
    let ids: Vec<String> = svgs_in(&html).into_iter().map(|(id, _)| id).collect();
    let expected: Vec<String> = results
        .scenarios
        .iter()
        .flat_map(|s| s.forms.iter().map(move |f| timeline_id(s, f)))
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(ids[0], "timeline-add_index-risky-shared");
}

#[test]
fn failures_are_marked_one_red_mark_per_request() {
    let results = fixture();
    for scenario in &results.scenarios {
        for form in &scenario.forms {
            let text = timeline_svg(&results.run.options, scenario, form);
            let doc = Document::parse(&text).unwrap();
            let what = format!("{} {}", scenario.name, form.key());
            assert_eq!(
                count_class(&doc, "timeout"),
                outcomes(form, Outcome::Timeout),
                "{what}"
            );
            assert_eq!(
                count_class(&doc, "error"),
                outcomes(form, Outcome::Error),
                "{what}"
            );
            assert_eq!(
                count_class(&doc, "ok"),
                outcomes(form, Outcome::Ok),
                "{what}"
            );
            for mark in doc.descendants().filter(|n| has_class(n, "fail")) {
                let red = mark.descendants().any(|n| {
                    n.attribute("stroke") == Some("#D7191C")
                        || n.attribute("fill") == Some("#D7191C")
                });
                assert!(red, "{what}: failure marks are red");
            }
        }
    }
    let risky = results
        .scenario("add_index")
        .unwrap()
        .forms
        .first()
        .unwrap();
    assert!(
        outcomes(risky, Outcome::Timeout) > 0,
        "the fixture's risky form has timeouts to mark"
    );
}

#[test]
fn migration_lock_waits_and_index_phases_are_drawn() {
    let results = fixture();
    let scenario = results.scenario("add_index").unwrap();
    for form in &scenario.forms {
        let text = timeline_svg(&results.run.options, scenario, form);
        let doc = Document::parse(&text).unwrap();
        assert_eq!(count_class(&doc, "migration-start"), 1);
        assert_eq!(count_class(&doc, "migration-end"), 1);
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| has_class(n, "migration-label"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            labels[0].starts_with("migration start") && labels[1].starts_with("end "),
            "{labels:?}"
        );
        let stretches = lock_wait_stretches(&form.lock_waits).len();
        assert_eq!(count_class(&doc, "lock-wait"), stretches);
        let phases = index_phase_stretches(&form.index_builds, form.migration.ended.rel_ms).len();
        assert!(phases > 0);
        assert_eq!(count_class(&doc, "index-phase"), phases);
    }
    // The safe form's build goes through CONCURRENTLY's phases and nobody waits.
    let safe = scenario
        .forms
        .iter()
        .find(|f| f.key() == "safe-shared")
        .unwrap();
    let doc_text = timeline_svg(&results.run.options, scenario, safe);
    let doc = Document::parse(&doc_text).unwrap();
    assert_eq!(count_class(&doc, "lock-wait"), 0);
    assert_eq!(count_class(&doc, "fail"), 0);
    assert!(doc_text.contains("waiting for old snapshots"));
}

#[test]
fn axes_have_units_and_the_legend_names_every_endpoint() {
    let results = fixture();
    let scenario = results.scenario("add_index").unwrap();
    let text = timeline_svg(&results.run.options, scenario, &scenario.forms[0]);
    let doc = Document::parse(&text).unwrap();
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for needed in [
        "time since the probe started (s)",
        "latency (ms, log scale)",
        "1 ms",
        "100 ms",
        "1 s",
        "probe timeout 3.0 s",
    ] {
        assert!(texts.contains(&needed), "missing {needed:?} in {texts:?}");
    }
    let legend = doc
        .descendants()
        .find(|n| has_class(n, "legend"))
        .expect("a legend");
    let legend_texts: Vec<&str> = legend.descendants().filter_map(|n| n.text()).collect();
    for name in [
        "list_large",
        "add_large",
        "lookup",
        "timed out",
        "error",
        "lock waiters seen",
        "migration start / end",
    ] {
        assert!(
            legend_texts.contains(&name),
            "legend lacks {name:?}: {legend_texts:?}"
        );
    }
    // One availability lane per probe target.
    assert_eq!(
        count_class(&doc, "lane"),
        results.run.options.probe_targets.len()
    );
}

#[test]
fn the_page_is_self_contained() {
    let html = render_html(&fixture());
    for external in ["<script", "<link", "src=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "report.html must not load anything ({external})"
        );
    }
    assert!(html.contains("<style>"));
}
