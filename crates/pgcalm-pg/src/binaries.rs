//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`).
//!
//! Search order (DESIGN.md): `PG_BIN` (alone, when set), `pg_config --bindir`, `PATH`, then
//! `/usr/lib/postgresql/*/bin` newest major first. The first directory holding both
//! `initdb` and `pg_ctl` wins.
//!
//! PgBouncer (`pgcalm up --pooler`): `PGCALM_PGBOUNCER` (alone, when set), then `PATH`,
//! then `/usr/sbin` (where the Debian package `pgbouncer` puts it, outside an ordinary
//! user's `PATH`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::PgError;

/// A directory of PostgreSQL server binaries and the major version they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// Directory that holds `initdb`, `pg_ctl` and `postgres`.
    pub bindir: PathBuf,
    /// Major version reported by `pg_ctl --version` (e.g. 15).
    pub major: u32,
    /// Full version string, e.g. `15.18`.
    pub version: String,
}

impl PgBinaries {
    /// Locates the server binaries, or explains which package installs them.
    pub fn locate() -> Result<Self, PgError> {
        let candidates = candidate_dirs();
        for dir in &candidates {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Self::from_dir(dir);
            }
        }
        Err(PgError::BinariesNotFound {
            searched: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Reads the version of the binaries in `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, PgError> {
        let pg_ctl = dir.join("pg_ctl");
        let out = Command::new(&pg_ctl)
            .arg("--version")
            .output()
            .map_err(|source| PgError::Spawn {
                program: pg_ctl.display().to_string(),
                source,
            })?;
        // "pg_ctl (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_string();
        let major = parse_major(&version).ok_or_else(|| PgError::BadVersion {
            program: pg_ctl.display().to_string(),
            output: text.trim().to_string(),
        })?;
        Ok(Self {
            bindir: dir.to_path_buf(),
            major,
            version,
        })
    }

    /// Path of one binary in this directory.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// The environment variable that names the PgBouncer binary, overriding the search.
pub const PGBOUNCER_ENV: &str = "PGCALM_PGBOUNCER";

/// Locates the `pgbouncer` binary, or explains which package installs it.
pub fn locate_pgbouncer() -> Result<PathBuf, PgError> {
    let candidates: Vec<PathBuf> = match std::env::var_os(PGBOUNCER_ENV) {
        // An explicit path is the only place looked at, as with PG_BIN.
        Some(path) => vec![PathBuf::from(path)],
        None => std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join("pgbouncer"))
            .collect(),
    };
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| PgError::PoolerNotFound {
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Major version from a version string: `15.18` -> 15, `9.6.1` -> 9.
pub fn parse_major(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    // An explicit PG_BIN is the only place looked at: silently using other binaries
    // than the ones asked for would hide a typo.
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return vec![PathBuf::from(dir)];
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, p)| p));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        assert_eq!(parse_major("15.18"), Some(15));
        assert_eq!(parse_major("9.6.1"), Some(9));
        assert_eq!(parse_major("17devel"), Some(17));
        assert_eq!(parse_major(""), None);
    }
}
