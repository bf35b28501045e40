//! report.html in a real browser: headless Chromium loads the page from disk, its DOM
//! holds one rendered timeline per scenario and form, and a screenshot is a picture
//! (not blank, with the failure marks' red and the endpoints' colours in it).
//!
//! The page comes from the writers' fixture and from a real short run of the lab.
//!
//! Needs the `chromium` package (Debian; `./dev.sh setup` and `.ci/run` install it).
//! Without it the test fails under CI (`CI` set) and is skipped loudly elsewhere.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod report_fixture;

use pgcalm_lab::{LabOptions, LabResults, Outcome, run_lab, timeline_id, write_report};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use pgcalm_testkit::TestDb;

/// Longest a page load may take before Chromium is killed (it normally takes ~2 s; the
/// margin is for a loaded 2-core machine).
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(120);

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGCALM_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

fn require_chromium() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        let msg =
            "chromium is not installed: `apt-get install -y chromium` (or set PGCALM_CHROMIUM)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}; CI must install it");
        }
        eprintln!("\n!!!!!!!! SKIPPED report_chromium: {msg} !!!!!!!!\n");
    }
    found
}

/// Runs headless Chromium on `page` with `extra` flags; returns its stdout. Output goes
/// to files, not pipes: a DOM dump is larger than a pipe's buffer.
fn run_chromium(bin: &Path, work: &Path, page: &Path, extra: &[String]) -> String {
    std::fs::create_dir_all(work).unwrap();
    let (stdout_path, stderr_path) = (work.join("stdout"), work.join("stderr"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_DEADLINE:?}: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "chromium failed: {status}\n{stderr}");
    String::from_utf8_lossy(&std::fs::read(&stdout_path).unwrap()).into_owned()
}

/// Decoded RGBA pixels of a PNG, with its size.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 4]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(
        info.bit_depth,
        png::BitDepth::Eight,
        "unexpected PNG bit depth"
    );
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| match channels {
            3 => [c[0], c[1], c[2], 255],
            4 => [c[0], c[1], c[2], c[3]],
            _ => [c[0], c[0], c[0], 255],
        })
        .collect();
    (info.width, info.height, pixels)
}

fn near(p: [u8; 4], rgb: [u8; 3]) -> bool {
    p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 24)
}

/// Loads `results`' report.html in headless Chromium: the DOM holds every timeline with
/// its markers, and a screenshot shows a page with the charts' colours (red where
/// requests failed). Returns the screenshot's path inside `dir`.
fn check_in_chromium(bin: &Path, results: &LabResults, dir: &Path) -> PathBuf {
    let files = write_report(results, &dir.join("lab-report")).unwrap();
    let forms: Vec<String> = results
        .scenarios
        .iter()
        .flat_map(|s| s.forms.iter().map(move |f| timeline_id(s, f)))
        .collect();
    let failures = results
        .scenarios
        .iter()
        .flat_map(|s| &s.forms)
        .flat_map(|f| &f.samples)
        .filter(|s| s.outcome != Outcome::Ok)
        .count();

    // The DOM after load: every timeline is there, as SVG with its markers.
    let dom = run_chromium(
        bin,
        &dir.join("chromium-dom"),
        &files.html,
        &["--dump-dom".into()],
    );
    assert!(
        dom.contains("<h1>pgcalm lab report</h1>"),
        "page did not load: {}",
        &dom[..dom.len().min(500)]
    );
    assert_eq!(
        dom.matches("<svg ").count(),
        forms.len(),
        "one svg per form"
    );
    for id in &forms {
        assert!(dom.contains(&format!("id=\"{id}\"")), "missing {id}");
    }
    assert_eq!(
        dom.contains("class=\"fail "),
        failures > 0,
        "failure marks in the DOM"
    );
    assert_eq!(
        dom.matches("class=\"migration-start\"").count(),
        forms.len()
    );
    assert!(
        !dom.contains("This page contains the following errors"),
        "parse errors in the page"
    );

    // The picture: the page's size, not blank, and the charts' colours drawn.
    let shot = dir.join("report.png");
    let flags = [
        format!("--screenshot={}", shot.display()),
        "--window-size=1400,3000".into(),
        "--hide-scrollbars".into(),
    ];
    run_chromium(bin, &dir.join("chromium-shot"), &files.html, &flags);
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1400, 3000));
    let mut colours: Vec<[u8; 4]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 50,
        "screenshot looks blank: {} colours",
        colours.len()
    );
    let count = |rgb: [u8; 3]| pixels.iter().filter(|p| near(**p, rgb)).count();
    assert!(
        count([0x00, 0x72, 0xB2]) > 100,
        "the first endpoint's points are drawn"
    );
    if failures > 0 {
        assert!(
            count([0xD7, 0x19, 0x1C]) > 100,
            "red failure marks are drawn"
        );
    }
    assert!(
        count([0xFF, 0xFF, 0xFF]) < pixels.len() * 98 / 100,
        "mostly white: nothing drawn"
    );
    if let Some(keep) = std::env::var_os("PGCALM_KEEP_REPORT") {
        let keep = PathBuf::from(keep).join(dir.file_name().unwrap());
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&shot, keep.join("report.png")).unwrap();
        for file in [&files.html, &files.markdown, &files.json] {
            std::fs::copy(file, keep.join(file.file_name().unwrap())).unwrap();
        }
    }
    shot
}

#[test]
fn report_html_renders_its_timelines_in_headless_chromium() {
    let Some(bin) = require_chromium() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("fixture")
        .tempdir()
        .unwrap();
    check_in_chromium(&bin, &report_fixture::lab_results(), dir.path());
}

/// The seed's scenario run for real (a few thousand rows, the risky transaction held
/// open as on a bigger table, so the probe sees the blocking), reported, and rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_lab_run_renders_in_headless_chromium() {
    let Some(bin) = require_chromium() else {
        return;
    };
    let db = TestDb::new().await;
    let dir = tempfile::Builder::new()
        .prefix("real-run")
        .tempdir()
        .unwrap();
    let opts = LabOptions {
        rows: 5_000,
        scenarios: vec!["add_index".into()],
        work_dir: dir.path().join("work"),
        hold: Some(Duration::from_millis(3500)),
        baseline: Duration::from_secs(1),
        seed_streams: 1,
        database_label: "test database".into(),
        ..LabOptions::default()
    };
    let results = run_lab(db.target(), &opts, Arc::new(|_| {}), Default::default())
        .await
        .unwrap();
    let risky = &results.scenario("add_index").unwrap().forms[0];
    assert!(
        risky.samples.iter().any(|s| s.outcome != Outcome::Ok),
        "the held risky build shows failures to draw"
    );
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || check_in_chromium(&bin, &results, &path))
        .await
        .unwrap();
}
