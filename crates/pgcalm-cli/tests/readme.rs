//! The README's examples are what the binary prints: every ```text block that starts
//! with `$ pgcalm lint ...` is run from the repository root and compared line by line.

#![allow(unused_crate_dependencies)]

mod common;

use std::path::Path;

/// The README's ```text blocks that show a `pgcalm lint` run: (command line, output).
fn lint_examples(readme: &str) -> Vec<(String, String)> {
    let mut examples = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```text" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let Some(command) = block.first().and_then(|l| l.strip_prefix("$ pgcalm lint ")) else {
            continue;
        };
        // A `# ...` after the command is the README's remark, not an argument.
        let command = command.split(" #").next().unwrap().trim().to_string();
        examples.push((command, block[1..].join("\n")));
    }
    examples
}

#[test]
fn the_readme_lint_examples_are_the_real_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let examples = lint_examples(&readme);
    assert!(
        !examples.is_empty(),
        "the README shows no `$ pgcalm lint` example"
    );
    // No embedded server: with one running, lint would grade findings by table size.
    let no_cluster = tempfile::tempdir().unwrap();
    for (command, shown) in examples {
        let out = common::pgcalm()
            .current_dir(&root)
            .env("PGCALM_DATA_DIR", no_cluster.path())
            .env("COLUMNS", "100")
            .arg("lint")
            .args(command.split_whitespace())
            .output()
            .unwrap();
        let printed = common::stdout(&out);
        let printed: Vec<&str> = printed.trim_end().lines().map(str::trim_end).collect();
        let shown: Vec<&str> = shown.trim_end().lines().map(str::trim_end).collect();
        assert_eq!(
            shown, printed,
            "README.md's `pgcalm lint {command}` example differs from what the binary prints"
        );
    }
}
