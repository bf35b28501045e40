//! The report writers on a small hand-built result: report.md's tables (insta), the
//! files `write_report` leaves, and results.json read back into the same value.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod report_fixture;

use pgcalm_lab::{
    BlockLevel, EndpointRole, ErrorKind, FEW_REQUESTS_MARK, LabResults, MIN_PERCENTILE_REQUESTS,
    Outcome, PoolTopology, RecordedSample, SAFE_CRITERIA_HEADER, SEED_SCENARIO, Table, WindowStats,
    few_requests_note, forms_table, hazard_seen, pool_topology_note, render_html, render_markdown,
    samples_path, scenario_summary_table, step5_table, step5_terminal_table, write_report,
};

/// The row of `table` whose first cell names `aspect`.
fn row_of(table: &Table, aspect: &str) -> Vec<String> {
    table
        .rows
        .iter()
        .find(|r| r[0].contains(aspect))
        .unwrap_or_else(|| panic!("no row {aspect}"))
        .clone()
}

#[test]
fn report_md_shows_step5_scenarios_endpoints_and_explain() {
    let results = report_fixture::lab_results();
    insta::assert_snapshot!(render_markdown(&results));
}

#[test]
fn step5_table_has_one_column_per_form_and_the_seed_rows() {
    let results = report_fixture::lab_results();
    let table = step5_table(&results).expect("the fixture has the seed's scenario");
    assert_eq!(
        table.headers,
        [
            "Aspect",
            "Risky, shared pool",
            "Risky, separate pools",
            "Safe, shared pool"
        ]
    );
    let row = |aspect: &str| row_of(&table, aspect);
    assert_eq!(
        row("Blocks Reads?")[1..],
        ["✅ Yes, blocked 5.2 s", "❌ No", "❌ No"]
    );
    assert_eq!(
        row("Blocks Writes?")[1..],
        ["✅ Yes, blocked 6.0 s", "✅ Yes, blocked 6.0 s", "❌ No"]
    );
    assert_eq!(
        row("Production Safe?")[1..],
        [
            "❌ No (reads blocked, writes blocked, 56 requests failed)",
            "❌ No (writes blocked, 30 requests failed)",
            "✅ Yes"
        ]
    );
    // Blocked writes alone make a form unsafe, even when no request failed (a short
    // build on a small table).
    let mut results = results;
    let form = &mut results.scenarios[0].forms[1];
    form.verdict.safe_criteria.failed_or_timed_out = 0;
    form.verdict.safe_criteria.passed = true;
    let table = step5_table(&results).unwrap();
    let safe_row = table
        .rows
        .iter()
        .find(|r| r[0].contains("Production Safe?"))
        .unwrap();
    assert_eq!(safe_row[2], "❌ No (writes blocked)");
}

#[test]
fn a_risky_form_that_only_queued_requests_reads_as_hazardous_not_safe() {
    let mut results = report_fixture::lab_results();
    let form = &mut results.scenarios[0].forms[1];
    form.verdict.writes.level = BlockLevel::Queued;
    form.verdict.writes.blocked = false;
    form.verdict.writes.held_s = 0.34;
    form.verdict.safe_criteria.failed_or_timed_out = 0;
    form.verdict.safe_criteria.passed = true;
    assert_eq!(
        hazard_seen(form, Some(1_000_000)),
        "queued writes for 0.3 s at 1,000,000 rows; the hold grows with the table"
    );
    let step5 = step5_table(&results).unwrap();
    let row = |aspect: &str| row_of(&step5, aspect);
    assert_eq!(row("Blocks Writes?")[2], "⚠️ Yes, queued 0.3 s");
    assert_eq!(row("Production Safe?")[2], "❌ No (writes queued)");
    let summary = scenario_summary_table(&results.scenarios[0]);
    let criteria = summary
        .headers
        .iter()
        .position(|h| h.starts_with("Safe criteria (0 failed"))
        .expect("the criteria column says what it checks");
    assert!(
        summary.rows[1][criteria].starts_with("met:"),
        "{:?}",
        summary.rows[1]
    );
    assert!(
        summary.rows[1]
            .last()
            .unwrap()
            .starts_with("queued writes for 0.3 s"),
        "{:?}",
        summary.rows[1]
    );
}

#[test]
fn without_the_seed_scenario_there_is_no_step5_table() {
    let mut results = report_fixture::lab_results();
    results.scenarios.retain(|s| s.name != SEED_SCENARIO);
    assert!(step5_table(&results).is_none());
    assert!(!render_markdown(&results).contains("Step 5"));
}

#[test]
fn write_report_leaves_every_file_and_results_json_reads_back() {
    let results = report_fixture::lab_results();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lab-report");
    let files = write_report(&results, &out).unwrap();

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert_eq!(md, render_markdown(&results));
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));

    let json = std::fs::read_to_string(&files.json).unwrap();
    let back: LabResults = serde_json::from_str(&json).unwrap();
    assert_eq!(back, results, "results.json holds every figure");

    let forms: Vec<_> = results
        .scenarios
        .iter()
        .flat_map(|s| s.forms.iter().map(move |f| (s, f)))
        .collect();
    assert_eq!(files.samples.len(), forms.len());
    for ((scenario, form), path) in forms.iter().zip(&files.samples) {
        assert_eq!(path, &out.join(samples_path(scenario, form)));
        let csv = std::fs::read_to_string(path).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("endpoint,at_ms,latency_ms,outcome,status,error")
        );
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), form.samples.len(), "{}", path.display());
        let timeouts = form
            .samples
            .iter()
            .filter(|s| s.outcome == Outcome::Timeout)
            .count();
        assert_eq!(
            rows.iter().filter(|r| r.contains(",timeout,")).count(),
            timeouts
        );
    }
}

/// Probe error kinds are the probe's `ErrorKind` in the results, written and read as the
/// keys results.json always had (`http_5xx`, `connect_refused`, ...), so an older file
/// still reads.
#[test]
fn probe_error_kinds_keep_their_results_json_keys() {
    let old = r#"{"requests": 9, "ok": 3, "timed_out": 0,
        "errors": {"body": 1, "connect": 1, "connect_refused": 1, "http_4xx": 1, "http_5xx": 1, "other": 1},
        "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0}"#;
    let stats: WindowStats = serde_json::from_str(old).unwrap();
    assert_eq!(
        stats.errors.keys().copied().collect::<Vec<_>>(),
        ErrorKind::ALL
    );
    assert_eq!(stats.failed(), 6);
    let again = serde_json::to_value(&stats).unwrap();
    let keys: Vec<&str> = again["errors"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "body",
            "connect",
            "connect_refused",
            "http_4xx",
            "http_5xx",
            "other"
        ]
    );

    let sample: RecordedSample = serde_json::from_str(
        r#"{"endpoint": "add_large", "at_ms": 1.0, "latency_ms": 2.0, "outcome": "error", "status": 503, "error": "http_5xx"}"#,
    )
    .unwrap();
    assert_eq!(sample.error, Some(ErrorKind::Http5xx));
    assert_eq!(serde_json::to_value(&sample).unwrap()["error"], "http_5xx");
    assert!(
        serde_json::from_str::<RecordedSample>(
            r#"{"endpoint": "x", "at_ms": 1.0, "latency_ms": 2.0, "outcome": "error", "error": "http_503"}"#
        )
        .is_err(),
        "a kind the probe does not have is refused"
    );
}

#[test]
fn an_unwritable_out_dir_is_a_clear_error() {
    let results = report_fixture::lab_results();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let err = write_report(&results, &file).unwrap_err().to_string();
    assert!(err.contains("not-a-dir") && err.contains("--out"), "{err}");
}

/// The fixture with the seed's risky form also on the seed-like shared pool, as a real
/// run has it: the shared-vs-separate pools paragraph then has every figure it quotes.
fn with_seed_like_pool() -> LabResults {
    let mut results = report_fixture::lab_results();
    let mut layout = results.run.options.pool_layouts[0].clone();
    layout.topology = PoolTopology::SharedSeedLike;
    results.run.options.pool_layouts.push(layout);
    let forms = &mut results.scenarios[0].forms;
    let mut seed_like = forms[0].clone();
    seed_like.topology = PoolTopology::SharedSeedLike;
    for e in &mut seed_like.endpoints {
        e.lock_waits_seen = Some(if e.role == EndpointRole::Read { 0 } else { 12 });
    }
    forms.insert(2, seed_like);
    results
}

/// The paragraph is worded when the report renders, from the figures results.json
/// holds: the pool size from the seed-like layout, the writes' cadence and the probe's
/// timeout from the probe targets, the lock waits each endpoint saw.
#[test]
fn the_pools_paragraph_is_worded_from_the_figures() {
    let results = with_seed_like_pool();
    let note = pool_topology_note(&results).expect("separate and seed-like ran");
    insta::assert_snapshot!(note);
    let md = render_markdown(&results);
    assert!(
        md.contains(&format!("### Shared pool vs separate pools\n\n{note}\n")),
        "{md}"
    );
    assert!(render_html(&results).contains("Shared pool vs separate pools"));

    let mut bigger = results.clone();
    bigger.run.options.pool_layouts[2].pools[0].size = 10;
    let note = pool_topology_note(&bigger).unwrap();
    assert!(note.contains("one shared pool of 10 connections"), "{note}");

    // Without the seed-like run there is nothing to compare: no paragraph.
    let fixture = report_fixture::lab_results();
    assert_eq!(pool_topology_note(&fixture), None);
}

/// A results.json of schema 2 (a worded `pool_topology_note`, no `lock_waits_seen`)
/// still reads; the report words the paragraph itself and leaves out the count it lacks.
#[test]
fn a_schema_2_results_json_still_reads() {
    let results = with_seed_like_pool();
    let mut json = serde_json::to_value(&results).unwrap();
    json["schema_version"] = 2.into();
    json["pool_topology_note"] = "an old paragraph".into();
    for scenario in json["scenarios"].as_array_mut().unwrap() {
        for form in scenario["forms"].as_array_mut().unwrap() {
            for e in form["endpoints"].as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("lock_waits_seen");
            }
        }
    }
    let old: LabResults = serde_json::from_value(json).unwrap();
    assert_eq!(old.schema_version, 2);
    let note = pool_topology_note(&old).unwrap();
    assert!(!note.contains("seen waiting on a lock"), "{note}");
    assert!(!render_markdown(&old).contains("an old paragraph"));
}

/// The terminal's table of every form (`pgcalm lab` prints it) words the verdicts as the
/// report does, without emoji or Markdown so its columns line up.
#[test]
fn forms_table_words_every_verdict_as_the_report_does() {
    let results = report_fixture::lab_results();
    let table = forms_table(&results);
    assert_eq!(table.headers[7], SAFE_CRITERIA_HEADER);
    let forms: Vec<_> = results.scenarios.iter().flat_map(|s| &s.forms).collect();
    assert_eq!(table.rows.len(), forms.len());
    assert_eq!(
        table.rows[0],
        [
            "add_index",
            "Risky, shared pool",
            "6.0 s",
            "blocked 5.2 s",
            "blocked 6.0 s",
            "56",
            "3.0 s",
            "fail",
            "blocked reads and writes for 6.0 s (56 failed or timed out)"
        ]
    );
    for (row, form) in table.rows.iter().zip(&forms) {
        assert!(
            row.iter()
                .all(|c| c.chars().all(|ch| (ch as u32) < 0x2600) && !c.contains("**")),
            "{row:?}"
        );
        let summary = scenario_summary_table(
            results
                .scenarios
                .iter()
                .find(|s| s.forms.contains(form))
                .unwrap(),
        );
        let report_row = summary.rows.iter().find(|r| r[0] == row[1]).unwrap();
        assert!(
            report_row[7].contains(&row[7]),
            "criteria {:?} vs {:?}",
            report_row[7],
            row[7]
        );
    }
    let safe = table
        .rows
        .iter()
        .find(|r| r[1] == "Safe, shared pool")
        .unwrap();
    assert_eq!(safe[7], "pass");
}

/// A percentile read from a handful of requests (the lookup is probed every 2 s: two in
/// a baseline, three during a short build) is marked, and the report says why.
#[test]
fn a_percentile_from_too_few_requests_is_marked() {
    let results = report_fixture::lab_results();
    let step5 = step5_table(&results).unwrap();
    let row = |aspect: &str| row_of(&step5, aspect);
    // Lookups: 2 in the baseline, 3 during the migration.
    assert_eq!(row("Lookup p50")[1], "340 ms† → 3.0 s†");
    // Reads and writes: 20 and 30 requests.
    assert!(
        !row("p99 latency")[1].contains(FEW_REQUESTS_MARK),
        "{:?}",
        row("p99 latency")
    );
    let md = render_markdown(&results);
    assert!(md.contains(&few_requests_note()), "{md}");
    assert!(few_requests_note().contains(&MIN_PERCENTILE_REQUESTS.to_string()));
}

/// The measured availability the seed's Step 5 asks about: how many reads and writes
/// were answered while each form ran.
#[test]
fn step5_shows_reads_and_writes_answered() {
    let results = report_fixture::lab_results();
    let step5 = step5_table(&results).unwrap();
    let row = |aspect: &str| row_of(&step5, aspect);
    assert_eq!(
        row("Writes answered")[1..],
        ["0 of 30", "0 of 30", "40 of 40"]
    );
    assert_eq!(row("Reads answered")[1..2], ["4 of 30"]);
}

/// The terminal's Step 5 table: the same figures in short, plain cells (no emoji or
/// Markdown, so columns line up), short column headers.
#[test]
fn the_terminal_step5_table_is_short_and_plain() {
    let results = report_fixture::lab_results();
    let t = step5_terminal_table(&results).unwrap();
    assert_eq!(
        t.headers,
        [
            "Aspect",
            "Risky, shared pool",
            "Risky, separate pools",
            "Safe, shared pool"
        ]
    );
    for row in &t.rows {
        for cell in row {
            assert!(cell.chars().count() <= 26, "{cell:?}");
            assert!(
                !cell.contains("**") && !cell.contains('`') && !cell.contains('✅'),
                "{cell:?}"
            );
        }
    }
    let row = |aspect: &str| row_of(&t, aspect);
    assert_eq!(
        row("Statement")[1..],
        ["CREATE INDEX", "CREATE INDEX", "CREATE INDEX CONCURRENTLY"]
    );
    assert_eq!(
        row("Blocks writes?")[1..],
        ["Yes, blocked 6.0 s", "Yes, blocked 6.0 s", "No"]
    );
    assert_eq!(
        row("Writes answered")[1..],
        ["0 of 30", "0 of 30", "40 of 40"]
    );
    assert_eq!(row("Production safe?")[1..], ["No", "No", "Yes"]);
}
