//! The order migration tools run their files in, from the paths alone: lint reads files
//! in that order, since a later file is linted with what the earlier ones created.
//!
//! - Flyway: versioned migrations (`V2__x.sql`) by version, compared as numbers part by
//!   part (`.` and `_` separate the parts; `1.0` is `1`), then the repeatable ones
//!   (`R__x.sql`) by description, then undo migrations (`U2__x.sql`).
//! - golang-migrate, goose, dbmate, pgcalm, and any name that starts with digits: by
//!   that number, so an unpadded `2_x.sql` comes before `10_x.sql` (their versions are
//!   integers); zero-padded and timestamped names keep their text order.
//! - Prisma and Diesel: directories named by a timestamp, which text order already
//!   sorts, and so does the rule above.
//!
//! A path is compared a component at a time, so each directory's files stay together;
//! in a directory Flyway's migrations come before its other files (callbacks such as
//! `afterMigrate.sql`).
//! Sqitch's order is its `sqitch.plan`, not its file names; Alembic's and Django's SQL
//! output is one file.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::tool::flyway_kind;

/// Sorts `paths` in the order their migration tools run them (see the module doc).
pub fn sort_in_run_order(paths: &mut [PathBuf]) {
    paths.sort_by(|a, b| run_order(a, b));
}

/// Compares two paths in the order their migration tools run them; paths that name the
/// same migration version differently keep their text order.
pub fn run_order(a: &Path, b: &Path) -> Ordering {
    let mut ca = a.iter();
    let mut cb = b.iter();
    loop {
        match (ca.next(), cb.next()) {
            (Some(x), Some(y)) => {
                let order = match (x.to_str(), y.to_str()) {
                    (Some(x), Some(y)) => component_order(x, y),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
        }
    }
}

/// One file or directory name against another: Flyway names first, in Flyway's order
/// (one block, so the order stays total beside names compared as text); then by a
/// leading number between names that start with digits (a block in text order too),
/// else as text.
fn component_order(a: &str, b: &str) -> Ordering {
    let order = match (flyway_key(a), flyway_key(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => match (leading_number(a), leading_number(b)) {
            (Some((x, rest_a)), Some((y, rest_b))) => {
                number_order(x, y).then_with(|| rest_a.cmp(rest_b))
            }
            _ => Ordering::Equal,
        },
    };
    order.then_with(|| a.cmp(b))
}

/// Flyway's place of a migration file: versioned (by version), repeatable (by
/// description), undo (by version).
#[derive(Debug, PartialEq, Eq)]
struct FlywayKey<'a> {
    rank: u8,
    version: Vec<&'a str>,
    description: &'a str,
}

impl Ord for FlywayKey<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank
            .cmp(&other.rank)
            .then_with(|| version_order(&self.version, &other.version))
            .then_with(|| self.description.cmp(other.description))
    }
}

impl PartialOrd for FlywayKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn flyway_key(name: &str) -> Option<FlywayKey<'_>> {
    let kind = flyway_kind(name)?;
    let (prefix, description) = name.split_once("__")?;
    let version = prefix[1..]
        .split(['.', '_'])
        .filter(|p| !p.is_empty())
        .collect();
    Some(FlywayKey {
        rank: match kind {
            'V' => 0,
            'R' => 1,
            _ => 2,
        },
        version,
        description,
    })
}

/// Version parts compared as numbers, a missing part counting as 0 (`1` = `1.0`).
fn version_order(a: &[&str], b: &[&str]) -> Ordering {
    (0..a.len().max(b.len()))
        .map(|i| {
            number_order(
                a.get(i).copied().unwrap_or("0"),
                b.get(i).copied().unwrap_or("0"),
            )
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// The digits a name starts with, and the rest.
fn leading_number(name: &str) -> Option<(&str, &str)> {
    let end = name
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(name.len());
    (end > 0).then(|| name.split_at(end))
}

/// Two digit strings compared as numbers of any length.
fn number_order(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut paths: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        sort_in_run_order(&mut paths);
        paths.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn flyway_versions_compare_as_numbers_and_repeatables_come_last() {
        assert_eq!(
            sorted(&[
                "db/R__b_views.sql",
                "db/V10__drop.sql",
                "db/R__a_functions.sql",
                "db/V2__index.sql",
                "db/V1_1__more.sql",
                "db/V1__init.sql",
                "db/U2__undo.sql",
                "db/V1.0.1__fix.sql",
            ]),
            [
                "db/V1__init.sql",
                "db/V1.0.1__fix.sql",
                "db/V1_1__more.sql",
                "db/V2__index.sql",
                "db/V10__drop.sql",
                "db/R__a_functions.sql",
                "db/R__b_views.sql",
                "db/U2__undo.sql",
            ]
        );
    }

    #[test]
    fn numeric_prefixes_compare_as_numbers_padded_or_not() {
        assert_eq!(
            sorted(&[
                "gm/10_drop.up.sql",
                "gm/2_index.up.sql",
                "gm/1_t.up.sql",
                "gm/1_t.down.sql",
                "gm/schema.sql",
                "gm/V3__flyway_first.sql",
            ]),
            [
                "gm/V3__flyway_first.sql",
                "gm/1_t.down.sql",
                "gm/1_t.up.sql",
                "gm/2_index.up.sql",
                "gm/10_drop.up.sql",
                "gm/schema.sql",
            ]
        );
        // What text order already sorted stays as it was.
        let same = [
            "a/20240101000000_x/migration.sql",
            "a/20240102000000_y/migration.sql",
            "b/2024-01-01-000000_x/up.sql",
            "b/2024-01-02-000000_y/up.sql",
            "c/00001_a.sql",
            "c/00002_b.sql",
        ];
        assert_eq!(sorted(&same), same);
    }
}
