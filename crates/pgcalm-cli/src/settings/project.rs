//! The project: the directory pgcalm works for, found the way cargo finds `Cargo.toml`
//! and docker compose its compose file. From the current directory (after `-C DIR`)
//! upwards, the first directory with a `pgcalm.toml` or a `.pgcalm/` is the project; its
//! pgcalm.toml is read and its defaults (the cluster in `.pgcalm/`, the migrations in
//! `migrations/`) are resolved against it, so every command means the same project from
//! any of its subdirectories.
//!
//! `.pgcalm/` is the project's state: the embedded cluster itself (its root, see
//! `pgcalm_pg::Cluster`), and `serve/`, the background demo app's pid and log. As root,
//! when the `postgres` user the server runs as cannot enter the project (a clone in a
//! 0700 home directory), `pgcalm up` keeps the cluster in [`SHARED_DATA_DIR`] instead,
//! and `.pgcalm/` holds [`POINTER_FILE`], naming where.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The configuration file that marks a project.
pub(crate) const CONFIG_FILE: &str = "pgcalm.toml";
/// The project's state directory (and, by default, the embedded cluster's root).
pub(crate) const STATE_DIR: &str = ".pgcalm";
/// In `.pgcalm/`: the path of the cluster kept outside the project.
pub(crate) const POINTER_FILE: &str = "cluster-dir";
/// In `.pgcalm/`: the background demo app (`pgcalm serve --detach`).
pub(crate) const SERVE_DIR: &str = "serve";
/// Where a root-run project's cluster goes when `postgres` cannot enter the project.
pub(crate) const SHARED_DATA_DIR: &str = "/var/lib/pgcalm";

/// A project directory.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// The directory (absolute).
    root: PathBuf,
    /// Whether it is the current directory: then its paths are shown relative, as
    /// `migrations/demoapp/0002_....sql`.
    is_cwd: bool,
}

impl Project {
    /// The nearest directory from `cwd` upwards with a pgcalm.toml or a `.pgcalm/`.
    pub(crate) fn discover(cwd: &Path) -> Option<Project> {
        cwd.ancestors()
            .find(|dir| dir.join(CONFIG_FILE).is_file() || dir.join(STATE_DIR).is_dir())
            .map(|dir| Project::at(dir, cwd))
    }

    /// The project at `root` (a configuration file's directory).
    pub(crate) fn at(root: &Path, cwd: &Path) -> Project {
        let root = cwd.join(root);
        Project {
            is_cwd: root == cwd,
            root,
        }
    }

    /// The directory (absolute).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the project, as commands show it.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        match self.is_cwd {
            true => PathBuf::from(relative),
            false => self.root.join(relative),
        }
    }

    /// Its pgcalm.toml, when it has one.
    pub(crate) fn config_file(&self) -> Option<PathBuf> {
        let path = self.path(CONFIG_FILE);
        path.is_file().then_some(path)
    }

    /// `.pgcalm/`.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// `.pgcalm/serve/`.
    pub(crate) fn serve_dir(&self) -> PathBuf {
        self.state_dir().join(SERVE_DIR)
    }

    /// `.pgcalm/cluster-dir`.
    pub(crate) fn pointer_file(&self) -> PathBuf {
        self.state_dir().join(POINTER_FILE)
    }

    /// The cluster directory `.pgcalm/cluster-dir` names, if it names one.
    pub(crate) fn pointer(&self) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.pointer_file()).ok()?;
        let path = PathBuf::from(text.trim());
        path.is_absolute().then_some(path)
    }

    /// The directory under [`SHARED_DATA_DIR`] for this project's cluster: its name and
    /// a hash of its path, so two clones never share one.
    pub(crate) fn shared_data_dir(&self) -> PathBuf {
        let name: String = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    true => c,
                    false => '_',
                },
            )
            .collect();
        Path::new(SHARED_DATA_DIR).join(format!(
            "{name}-{:016x}",
            fnv1a(self.root.as_os_str().as_encoded_bytes())
        ))
    }

    /// Writes `.pgcalm/cluster-dir` naming `cluster`.
    pub(crate) fn write_pointer(&self, cluster: &Path) -> anyhow::Result<()> {
        let path = self.pointer_file();
        std::fs::create_dir_all(self.state_dir())
            .with_context(|| format!("creating {}", self.state_dir().display()))?;
        std::fs::write(&path, format!("{}\n", cluster.display()))
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// FNV-1a, 64 bits: a stable hash (std's `DefaultHasher` may change between releases,
/// and the directory name must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The error of a command that needs a project where there is none.
pub(crate) fn no_project(cwd: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no pgcalm project in {} or any directory above it (none has a {CONFIG_FILE} or a \
         {STATE_DIR}/ directory)\n  fix: `pgcalm init` starts one here (a {CONFIG_FILE} and \
         migrations/); `pgcalm -C DIR ...` runs in the project at DIR; DATABASE_URL uses a \
         server of your own",
        cwd.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_marked_directory_is_the_project() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("shop");
        let sub = root.join("migrations/demoapp");
        std::fs::create_dir_all(&sub).unwrap();
        assert!(
            Project::discover(&sub).is_none_or(|p| !p.root().starts_with(tmp.path())),
            "nothing marked yet"
        );
        std::fs::write(root.join(CONFIG_FILE), "").unwrap();
        let found = Project::discover(&sub).unwrap();
        assert_eq!(found.root(), root);
        assert_eq!(found.path("migrations"), root.join("migrations"));
        let here = Project::discover(&root).unwrap();
        assert_eq!(here.path("migrations"), Path::new("migrations"));
        // A `.pgcalm/` nearer counts too.
        std::fs::create_dir(root.join("migrations/.pgcalm")).unwrap();
        assert_eq!(
            Project::discover(&sub).unwrap().root(),
            root.join("migrations")
        );
    }

    #[test]
    fn shared_directories_are_named_after_the_project_and_its_path() {
        let a = Project::at(Path::new("/root/my clone"), Path::new("/"));
        let b = Project::at(Path::new("/home/x/my clone"), Path::new("/"));
        let (da, db) = (a.shared_data_dir(), b.shared_data_dir());
        assert!(da.starts_with(SHARED_DATA_DIR), "{}", da.display());
        let name = da.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("my_clone-") && name.len() == 9 + 16,
            "{name}"
        );
        assert_ne!(da, db);
        assert_eq!(da, a.shared_data_dir(), "stable");
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
