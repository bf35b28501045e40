//! Project discovery with the real binary, as cargo and docker compose do it: from a
//! subdirectory or with `-C DIR` / `--project DIR`, pgcalm finds the project by walking
//! up for `pgcalm.toml` (or `.pgcalm/`); outside any project `up` refuses and says how to
//! start one (`pgcalm init`); as root in a directory the `postgres` user cannot enter,
//! the data is kept where the server can reach it. And each command's `--help` lists the
//! flags that apply to it.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use common::{fails, ok, pgcalm, repo_migrations, stderr, stdout};

/// A project: `pgcalm.toml` (up applies demoapp 0001) and the seed's migrations.
fn project_in(dir: &Path) {
    let app = dir.join("migrations/demoapp");
    std::fs::create_dir_all(&app).unwrap();
    for name in ["0001_initial.sql", "0002_add_email_index_concurrently.sql"] {
        std::fs::copy(repo_migrations().join("demoapp").join(name), app.join(name)).unwrap();
    }
    std::fs::write(
        dir.join("pgcalm.toml"),
        "[up]\nmigrate_to = [\"demoapp:0001\"]\n",
    )
    .unwrap();
}

/// `down --volumes` in the project at the end, even when the test fails half-way.
struct Down(PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = pgcalm()
            .current_dir(&self.0)
            .args(["down", "--volumes"])
            .output();
    }
}

/// No ancestor of `dir` is a project (else "outside any project" cannot be tested here).
fn assert_outside_any_project(dir: &Path) {
    for ancestor in dir.ancestors() {
        assert!(
            !ancestor.join("pgcalm.toml").exists() && !ancestor.join(".pgcalm").exists(),
            "{} is a pgcalm project: the test needs a directory outside any",
            ancestor.display()
        );
    }
}

#[test]
fn commands_find_the_project_from_a_subdirectory_and_with_dash_c() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("shop");
    project_in(&root);
    let _down = Down(root.clone());
    let sub = root.join("migrations/demoapp");

    // `up` from a subdirectory creates the cluster at the project's root, and applies the
    // start point from the project's pgcalm.toml.
    let up = ok(pgcalm().current_dir(&sub).arg("up"));
    assert!(
        up.contains(&format!("cluster in {}", root.join(".pgcalm").display())),
        "{up}"
    );
    assert!(up.contains("Applying demoapp.0001_initial... OK"), "{up}");
    assert!(
        !sub.join(".pgcalm").exists(),
        "no second cluster in the subdirectory"
    );
    assert!(!root.join("migrations/.pgcalm").exists());

    let status = ok(pgcalm().current_dir(&sub).arg("status"));
    assert!(
        status.contains(&format!("Data dir: {}", root.join(".pgcalm").display())),
        "{status}"
    );
    assert!(
        status.contains("Migrations: demoapp at 0001_initial (1/2 applied"),
        "{status}"
    );

    // -C DIR and --project DIR from anywhere else.
    let elsewhere = tmp.path();
    let shown = ok(pgcalm()
        .current_dir(elsewhere)
        .args(["-C", "shop", "showmigrations"]));
    assert!(shown.contains("[X] 0001_initial"), "{shown}");
    assert!(
        shown.contains("[ ] 0002_add_email_index_concurrently"),
        "{shown}"
    );
    let one = ok(pgcalm().current_dir("/").arg("--project").arg(&root).args([
        "psql",
        "-Atc",
        "SELECT count(*) FROM large_email",
    ]));
    assert_eq!(one.trim(), "0");
    let err = fails(pgcalm().args(["-C", "/nonexistent/pgcalm-project", "status"]));
    assert!(err.contains("/nonexistent/pgcalm-project"), "{err}");

    let gone = ok(pgcalm().current_dir(&sub).args(["down", "--volumes"]));
    assert!(gone.contains("Deleted"), "{gone}");
    assert!(!root.join(".pgcalm").exists());
}

#[test]
fn up_outside_any_project_refuses_with_the_way_to_start_one_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    assert_outside_any_project(tmp.path());
    let _down = Down(tmp.path().to_path_buf());

    let out = pgcalm().current_dir(tmp.path()).arg("up").output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(err.contains("no pgcalm project"), "{err}");
    assert!(err.contains(&tmp.path().display().to_string()), "{err}");
    assert!(err.contains("pgcalm init"), "{err}");
    assert!(err.contains("-C"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "up created {left:?}");

    // The commands that only read say the same instead of "run `pgcalm up`".
    let err = fails(pgcalm().current_dir(tmp.path()).arg("showmigrations"));
    assert!(err.contains("pgcalm init"), "{err}");
}

#[test]
fn init_scaffolds_a_project_and_refuses_to_overwrite_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("new");
    std::fs::create_dir(&root).unwrap();
    let _down = Down(root.clone());

    let out = ok(pgcalm().current_dir(&root).arg("init"));
    assert!(
        out.contains("pgcalm.toml") && out.contains("migrations/"),
        "{out}"
    );
    assert!(out.contains("pgcalm up"), "says what comes next: {out}");
    let toml = std::fs::read_to_string(root.join("pgcalm.toml")).unwrap();
    assert!(
        toml.contains("# lock_timeout = \"2s\""),
        "commented defaults: {toml}"
    );
    assert!(root.join("migrations").is_dir());
    // The scaffolded file is valid: a command that reads it runs.
    ok(pgcalm().current_dir(&root).args(["lint", "--list-rules"]));

    // A second init changes nothing.
    std::fs::write(root.join("pgcalm.toml"), "# mine\n").unwrap();
    let err = fails(pgcalm().current_dir(&root).arg("init"));
    assert!(
        err.contains("already") && err.contains("pgcalm.toml"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("pgcalm.toml")).unwrap(),
        "# mine\n"
    );

    // The new project works: up from its migrations directory.
    let up = ok(pgcalm().current_dir(root.join("migrations")).arg("up"));
    assert!(up.contains("Database risky_migrations created"), "{up}");
    assert!(root.join(".pgcalm/PGCALM_CLUSTER").is_file());
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn as_root_a_project_the_postgres_user_cannot_enter_keeps_its_data_where_the_server_can() {
    if !as_root() {
        eprintln!("skipped: needs root (the server runs as `postgres` only then)");
        return;
    }
    // A clone in a home directory of mode 0700, like /root.
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let root = home.join("clone");
    project_in(&root);
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _down = Down(root.clone());

    let up = ok(pgcalm().current_dir(&root).arg("up"));
    let pointer = root.join(".pgcalm/cluster-dir");
    let data = PathBuf::from(
        std::fs::read_to_string(&pointer)
            .unwrap_or_else(|e| panic!("{}: {e}\n{up}", pointer.display()))
            .trim(),
    );
    assert!(data.starts_with("/var/lib/pgcalm"), "{}", data.display());
    assert!(
        up.contains(&data.display().to_string()) && up.contains("cannot enter"),
        "up says where and why: {up}"
    );
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700, "{}", data.display());
    let postgres_uid = ok(assert_cmd::Command::new("id").args(["-u", "postgres"]));
    assert_eq!(meta.uid().to_string(), postgres_uid.trim());

    let one =
        ok(pgcalm()
            .current_dir(&root)
            .args(["psql", "-Atc", "SELECT count(*) FROM small_email"]));
    assert_eq!(one.trim(), "0");
    let status = ok(pgcalm().current_dir(&root).arg("status"));
    assert!(
        status.contains(&format!("Data dir: {}", data.display())),
        "{status}"
    );

    let gone = ok(pgcalm().current_dir(&root).args(["down", "--volumes"]));
    assert!(gone.contains(&data.display().to_string()), "{gone}");
    assert!(!data.exists(), "the data is deleted");
    assert!(!pointer.exists(), "so is the pointer to it");
    // What pgcalm did not create stays.
    assert!(root.join("pgcalm.toml").is_file() && root.join("migrations").is_dir());
}

#[test]
fn each_commands_help_lists_the_flags_that_apply_to_it() {
    let help = |command: &str| ok(pgcalm().args([command, "--help"]));
    let lint = help("lint");
    for flag in ["--lock-timeout", "--allow-risky", "--port"] {
        assert!(!lint.contains(flag), "lint --help shows {flag}:\n{lint}");
    }
    // The server's flags apply since lint grades findings by the tables' sizes.
    assert!(
        lint.contains("--migrations-dir")
            && lint.contains("github")
            && lint.contains("--database-url"),
        "{lint}"
    );

    let up = help("up");
    assert!(
        up.contains("--data-dir") && up.contains("--database-url"),
        "{up}"
    );
    assert!(!up.contains("github") && !up.contains("markdown"), "{up}");

    let probe = help("probe");
    for flag in ["--data-dir", "--database-url", "--migrations-dir"] {
        assert!(!probe.contains(flag), "probe --help shows {flag}:\n{probe}");
    }
    let down = help("down");
    assert!(
        !down.contains("--migrations-dir") && !down.contains("--format"),
        "{down}"
    );

    // A flag that does not apply is refused like any unknown flag.
    let out = pgcalm()
        .args(["probe", "--data-dir", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = pgcalm()
        .args(["status", "--format", "github"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
