//! From files + journal to "what is the state of each migration" (`showmigrations`)
//! and "what must run, in which order" (`migrate`, `migrate --plan`).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::MigrateError;
use crate::file::{Direction, MigrationFile, MigrationSet};
use crate::journal::Entry;

/// The state of one migration, as `showmigrations` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// `[X]`.
    Applied,
    /// `[ ]`.
    NotApplied,
    /// `[-]`: a no-transaction migration stopped part way (or is running now).
    Partial {
        /// The direction it was running in.
        direction: Direction,
        /// Statements completed.
        done: usize,
        /// Statements in that section.
        total: usize,
        /// The runner's backend, when it is still working on it.
        running_pid: Option<i32>,
        /// An INVALID index the statement that runs next left (a CONCURRENTLY build
        /// interrupted before it was journaled); the next run drops and rebuilds it.
        invalid_index: Option<LeftIndex>,
    },
    /// `[!]`: the last attempt failed.
    Failed {
        /// The direction of the failed attempt.
        direction: Direction,
        /// Statements completed (0 for a rolled-back transactional migration).
        done: usize,
        /// Statements in that section.
        total: usize,
        /// Whether the migration is applied despite the failure (a failed unapply
        /// of a transactional migration leaves it applied).
        applied: bool,
        /// A no-transaction migration that stopped part way (`done` statements stay
        /// done; a rerun resumes); false for a rolled-back transaction.
        partial: bool,
        /// The error and where it happened.
        error: String,
        /// File line of the failing statement.
        line: Option<usize>,
        /// An INVALID index the failed CONCURRENTLY build left.
        invalid_index: Option<LeftIndex>,
    },
    /// The last run was cancelled (Ctrl-C, SIGTERM): `[-]` when statements of a
    /// no-transaction section stay done (or an invalid index stayed), else `[ ]` / `[X]`
    /// as the rollback left it.
    Cancelled {
        /// The direction of the cancelled run.
        direction: Direction,
        /// Statements completed (0 for a rolled-back transactional migration).
        done: usize,
        /// Statements in that section.
        total: usize,
        /// Whether the migration is applied (a cancelled unapply of a transactional
        /// migration rolled back).
        applied: bool,
        /// A no-transaction migration that stopped part way (a rerun resumes).
        partial: bool,
        /// 1-based number of the statement it stopped at, when known.
        statement: Option<usize>,
        /// File line of that statement.
        line: Option<usize>,
        /// An INVALID index the cancelled CONCURRENTLY build left.
        invalid_index: Option<LeftIndex>,
    },
}

/// An INVALID index a failed or cancelled `CREATE INDEX CONCURRENTLY` left in the
/// catalog: the next run drops it concurrently and builds it again.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeftIndex {
    /// The index.
    pub index: String,
    /// Its table.
    pub table: String,
}

impl LeftIndex {
    fn describe(&self) -> String {
        format!(
            "INVALID index {} on {} left behind: the next run drops it concurrently and rebuilds it",
            self.index, self.table
        )
    }
}

/// A session of a runner running one of a migration's statements right now, found by
/// its `application_name` (see [`crate::runner::statement_session_name`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatementSession {
    /// Its backend pid.
    pub pid: i32,
    /// The direction being run.
    pub direction: Direction,
    /// 1-based statement number.
    pub number: usize,
    /// File line of the statement.
    pub line: usize,
    /// The runner that sent it is gone (its other session closed): the server runs the
    /// statement to its end, holding its locks, before it notices.
    pub orphaned: bool,
}

/// One line of `showmigrations`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    /// App.
    pub app: String,
    /// Migration name.
    pub name: String,
    /// The file, `None` when the journal knows a migration whose file is gone.
    pub path: Option<std::path::PathBuf>,
    /// State.
    #[serde(flatten)]
    pub state: State,
    /// When it was applied.
    pub applied_at: Option<String>,
    /// How long applying took, in seconds.
    pub duration_secs: Option<f64>,
    /// The file's up section changed after it was applied.
    pub changed_since_applied: bool,
    /// A runner session running one of its statements now (filled by
    /// [`crate::Runner::status`], which looks at the server's sessions).
    pub session: Option<StatementSession>,
}

impl MigrationStatus {
    /// The Django marker: `[X]`, `[ ]`, `[-]` partial, `[!]` failed.
    pub fn marker(&self) -> &'static str {
        match &self.state {
            State::Applied => "[X]",
            State::NotApplied => "[ ]",
            State::Partial { .. } => "[-]",
            State::Failed { .. } => "[!]",
            State::Cancelled { partial: true, .. } => "[-]",
            State::Cancelled { applied: true, .. } => "[X]",
            State::Cancelled { .. } => "[ ]",
        }
    }

    /// Its statement of `direction` that runs next (`done` statements are done) and the
    /// INVALID index slot it would fill: where [`crate::Runner::status`] looks for an
    /// index a CONCURRENTLY build left.
    pub(crate) fn pending_index_mut(
        &mut self,
    ) -> Option<(Direction, usize, &mut Option<LeftIndex>)> {
        match &mut self.state {
            State::Partial {
                direction,
                done,
                invalid_index,
                ..
            }
            | State::Failed {
                direction,
                done,
                invalid_index,
                partial: true,
                ..
            }
            | State::Cancelled {
                direction,
                done,
                invalid_index,
                partial: true,
                ..
            } => Some((*direction, *done, invalid_index)),
            _ => None,
        }
    }

    /// Why it is not simply applied / not applied, in words; `None` for the plain states.
    pub fn explanation(&self) -> Option<String> {
        let mut parts = Vec::new();
        match &self.state {
            State::Applied | State::NotApplied => {}
            State::Partial {
                direction,
                done,
                total,
                running_pid,
                invalid_index,
            } => {
                let verb = if *direction == Direction::Up {
                    "applying"
                } else {
                    "unapplying"
                };
                let partially = format!(
                    "partially {}: {done} of {total} statements done",
                    if *direction == Direction::Up {
                        "applied"
                    } else {
                        "unapplied"
                    },
                );
                parts.push(match (running_pid, &self.session) {
                    (Some(pid), _) => format!(
                        "{verb} now: {done} of {total} statements done (runner backend pid {pid})"
                    ),
                    (None, Some(s)) if s.orphaned => {
                        format!("{partially}; {}", orphan_text(s, false))
                    }
                    (None, _) => format!(
                        "{partially}; the runner stopped before finishing; {}`pgcalm migrate` \
                         resumes at statement {}",
                        left_index_text(invalid_index),
                        done + 1
                    ),
                });
            }
            State::Cancelled {
                direction,
                done,
                total,
                applied,
                partial,
                statement,
                line,
                invalid_index,
            } => {
                let at = match (statement, line) {
                    (Some(n), Some(l)) => format!(" at statement {n} of {total} (line {l})"),
                    (None, Some(l)) => format!(" at line {l}"),
                    _ => String::new(),
                };
                let unapply = if *direction == Direction::Down {
                    "unapply "
                } else {
                    ""
                };
                parts.push(if *partial {
                    format!(
                        "{unapply}cancelled{at}; {done} of {total} statements done; {}{} resumes at \
                         statement {}",
                        left_index_text(invalid_index),
                        if *direction == Direction::Up {
                            "`pgcalm migrate`"
                        } else {
                            "unapplying it again"
                        },
                        done + 1
                    )
                } else if *applied {
                    format!("{unapply}cancelled{at}; rolled back, still applied")
                } else {
                    format!("last run cancelled{at}; rolled back, nothing applied")
                });
            }
            State::Failed {
                direction,
                done,
                total,
                applied,
                partial,
                error,
                line,
                invalid_index,
            } => {
                let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
                let verb = if *direction == Direction::Up {
                    "apply"
                } else {
                    "unapply"
                };
                let first_line = error.lines().next().unwrap_or(error);
                parts.push(if *partial {
                    format!(
                        "{verb} failed at statement {} of {total}{at}: {first_line}; {done} of {total} \
                         statements done; {}rerun resumes at statement {}",
                        done + 1,
                        left_index_text(invalid_index),
                        done + 1
                    )
                } else if *applied {
                    format!("{verb} failed{at}: {first_line}; rolled back, still applied")
                } else {
                    format!("{verb} failed{at}: {first_line}; rolled back, nothing applied")
                });
            }
        }
        // A statement running now of a migration whose state does not say so (one
        // transaction: the journal is written when it commits).
        if let Some(s) = &self.session
            && !matches!(self.state, State::Partial { .. })
        {
            parts.push(if s.orphaned {
                orphan_text(s, true)
            } else {
                format!(
                    "{} now: statement {} (line {}) runs in runner backend pid {}",
                    if s.direction == Direction::Up {
                        "applying"
                    } else {
                        "unapplying"
                    },
                    s.number,
                    s.line,
                    s.pid
                )
            });
        }
        if self.changed_since_applied {
            parts.push("file changed since it was applied".into());
        }
        if self.path.is_none() {
            parts.push("file missing".into());
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// `statement 2 (line 3) is still running in server session pid 42, whose runner is gone; ...`
fn orphan_text(s: &StatementSession, transaction: bool) -> String {
    format!(
        "statement {} (line {}) is still running in server session pid {}, whose runner is gone{}; \
         `pgcalm migrate` waits for it, or stop it with SELECT pg_cancel_backend({})",
        s.number,
        s.line,
        s.pid,
        if transaction {
            " (its transaction rolls back when it ends)"
        } else {
            ""
        },
        s.pid
    )
}

fn left_index_text(index: &Option<LeftIndex>) -> String {
    index
        .as_ref()
        .map(|i| format!("{}; ", i.describe()))
        .unwrap_or_default()
}

/// Computes each migration's state from files and journal. `running_pid` says, for a
/// runner backend pid recorded in the journal, whether it is still the active runner.
pub fn statuses(
    set: &MigrationSet,
    journal: &HashMap<(String, String), Entry>,
    app: Option<&str>,
    active_runner: Option<i32>,
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let apps: Vec<&String> = match app {
        Some(a) => {
            set.app(a)?;
            set.apps.keys().filter(|k| k.as_str() == a).collect()
        }
        None => set.apps.keys().collect(),
    };
    let mut out = Vec::new();
    for app in apps {
        for file in &set.apps[app] {
            let entry = journal.get(&(app.clone(), file.name.clone()));
            out.push(status_of(app, &file.name, Some(file), entry, active_runner));
        }
        let mut orphans: Vec<&Entry> = journal
            .values()
            .filter(|e| {
                &e.app == app && e.state != "not_applied" && set.get(app, &e.name).is_none()
            })
            .collect();
        orphans.sort_by(|a, b| a.name.cmp(&b.name));
        for e in orphans {
            out.push(status_of(app, &e.name, None, Some(e), active_runner));
        }
    }
    Ok(out)
}

fn status_of(
    app: &str,
    name: &str,
    file: Option<&MigrationFile>,
    entry: Option<&Entry>,
    active_runner: Option<i32>,
) -> MigrationStatus {
    let state = match entry {
        None => State::NotApplied,
        Some(e) => {
            let running = e.state.strip_prefix("running_").map(|d| {
                if d == "up" {
                    Direction::Up
                } else {
                    Direction::Down
                }
            });
            let error_direction = e.error_direction.as_deref().map(|d| {
                if d == "up" {
                    Direction::Up
                } else {
                    Direction::Down
                }
            });
            // A stopped run (failed or cancelled): where, and what it left.
            let stopped_in = error_direction.unwrap_or(Direction::Up);
            let stopped_done = if running.is_some() {
                e.done_prefix()
            } else {
                0
            };
            let line = e.error_line.map(|l| l as usize);
            match (&e.error, running) {
                (Some(_), _) if e.cancelled => State::Cancelled {
                    direction: stopped_in,
                    done: stopped_done,
                    total: e.statements_total,
                    applied: e.state == "applied",
                    partial: running.is_some(),
                    statement: file
                        .and_then(|f| f.section(stopped_in))
                        .and_then(|s| s.statements.iter().find(|s| Some(s.line) == line))
                        .map(|s| s.index + 1),
                    line,
                    invalid_index: None,
                },
                (Some(error), _) => State::Failed {
                    direction: stopped_in,
                    done: stopped_done,
                    total: e.statements_total,
                    applied: e.state == "applied",
                    partial: running.is_some(),
                    error: error.clone(),
                    line,
                    invalid_index: None,
                },
                (None, Some(direction)) => State::Partial {
                    direction,
                    done: e.done_prefix(),
                    total: e.statements_total,
                    running_pid: e.runner_pid.filter(|p| Some(*p) == active_runner),
                    invalid_index: None,
                },
                (None, None) if e.state == "applied" => State::Applied,
                (None, None) => State::NotApplied,
            }
        }
    };
    MigrationStatus {
        app: app.to_string(),
        name: name.to_string(),
        path: file.map(|f| f.path.clone()),
        changed_since_applied: matches!(
            (file, entry),
            (Some(f), Some(e)) if e.state == "applied" && e.checksum != f.checksum
        ),
        applied_at: entry.and_then(|e| e.applied_at.clone()),
        duration_secs: entry
            .and_then(|e| e.duration_ms)
            .map(|ms| ms as f64 / 1000.0),
        state,
        session: None,
    }
}

/// What the user asked for, as Django's "Operations to perform" puts it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// `Apply all migrations: a, b`.
    ApplyAll {
        /// The apps.
        apps: Vec<String>,
    },
    /// `Target specific migration: NAME, from APP`.
    Target {
        /// App.
        app: String,
        /// Resolved migration name.
        name: String,
    },
    /// `Unapply all migrations: APP`.
    UnapplyAll {
        /// App.
        app: String,
    },
}

/// One migration to run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The migration.
    pub file: MigrationFile,
    /// Apply or unapply.
    pub direction: Direction,
    /// Statements of an interrupted run to skip (already done).
    pub resume_from: usize,
    /// An earlier run of this section was killed part way (not failed): the statement
    /// at `resume_from` may have completed on the server without being journaled.
    pub interrupted: bool,
}

impl Step {
    /// The section that runs.
    pub fn section(&self) -> &crate::file::Section {
        self.file
            .section(self.direction)
            .expect("plan only holds runnable sections")
    }
}

/// One statement of a step with what the lock table and lint say about it: the lock it
/// takes on each relation, what that blocks, and its verdict (`--plan`, `sqlmigrate`,
/// and the runner's refusal of risky migrations).
#[derive(Debug, Clone, Serialize)]
pub struct StatementVerdict {
    /// 1-based file line.
    pub line: usize,
    /// The lock table's answer for the statement.
    pub locks: pgcalm_lint::StatementLocks,
    /// Lint's findings on it (empty: safe); `-- pgcalm:ignore`d ones are left out.
    pub findings: Vec<pgcalm_lint::Finding>,
}

impl StatementVerdict {
    /// `safe`, or `risky: rule, rule`.
    pub fn verdict(&self) -> String {
        if self.findings.is_empty() {
            "safe".to_string()
        } else {
            let mut rules: Vec<&str> = self.findings.iter().map(|f| f.rule.name()).collect();
            rules.dedup();
            format!("risky: {}", rules.join(", "))
        }
    }

    /// `SHARE on large_email (blocks writes)`, one per relation; `no table lock` when the
    /// statement locks none.
    pub fn lock_summary(&self) -> String {
        if self.locks.locks.is_empty() {
            return "no table lock".to_string();
        }
        self.locks
            .locks
            .iter()
            .map(|l| format!("{} on {} (blocks {})", l.mode, l.target, l.blocks()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The lock and verdict of every statement of a migration section that a step runs
/// (from `resume_from` on), for PostgreSQL `options.pg_version`.
pub fn statement_verdicts(
    file: &MigrationFile,
    direction: Direction,
    resume_from: usize,
    options: &pgcalm_lint::LintOptions,
) -> Vec<StatementVerdict> {
    let Some(section) = file.section(direction) else {
        return Vec::new();
    };
    let findings = section_findings(file, direction, resume_from, options);
    section
        .statements
        .iter()
        .skip(resume_from)
        .map(|s| StatementVerdict {
            line: s.line,
            locks: pgcalm_lint::sql_statement_locks(&s.sql, options.pg_version),
            findings: findings
                .iter()
                // Lint spans a finding over its statement: same start, same statement
                // (a line may hold two).
                .filter(|f| f.span.start == s.offset)
                .cloned()
                .collect(),
        })
        .collect()
}

/// Lint's findings on the statements of a migration section from `resume_from` on, in
/// statement order (`-- pgcalm:ignore`d ones left out): what the runner refuses.
pub(crate) fn section_findings(
    file: &MigrationFile,
    direction: Direction,
    resume_from: usize,
    options: &pgcalm_lint::LintOptions,
) -> Vec<pgcalm_lint::Finding> {
    let Some(section) = file.section(direction) else {
        return Vec::new();
    };
    let run: HashSet<usize> = section
        .statements
        .iter()
        .skip(resume_from)
        .map(|s| s.offset)
        .collect();
    crate::safety::lint_migration_sections(file, options)
        .into_iter()
        .find(|(d, _)| *d == direction)
        .map(|(_, r)| r.findings)
        .unwrap_or_default()
        .into_iter()
        // Lint spans a finding over its statement.
        .filter(|f| run.contains(&f.span.start))
        .collect()
}

/// What `migrate` will do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// What was asked.
    pub operation: Operation,
    /// The migrations to run, in order.
    pub steps: Vec<Step>,
}

/// What to migrate to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// Everything (optionally only these apps).
    All(Vec<String>),
    /// Forward or back to a migration of an app (a prefix of its name), or `zero`.
    To {
        /// App.
        app: String,
        /// Name prefix or `zero`.
        target: String,
    },
    /// Forward only, up to and including a migration: never unapplies anything. What
    /// `pgcalm up` uses for its start point.
    ForwardTo {
        /// App.
        app: String,
        /// Name prefix.
        target: String,
    },
}

/// `pgcalm up`'s start point: an app and a migration (a prefix of its name) to go
/// forward to, written `app:migration` (pgcalm.toml: `[up] migrate_to =
/// ["demoapp:0001"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPoint {
    /// App.
    pub app: String,
    /// Name prefix.
    pub target: String,
}

/// A start point that is not an `app:migration` pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{spec}` is not an `app:migration` pair\n  fix: write it like `demoapp:0001`")]
pub struct StartPointError {
    /// As written.
    pub spec: String,
}

impl std::str::FromStr for StartPoint {
    type Err = StartPointError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        spec.split_once(':')
            .filter(|(a, t)| !a.is_empty() && !t.is_empty())
            .map(|(app, target)| StartPoint {
                app: app.to_string(),
                target: target.to_string(),
            })
            .ok_or_else(|| StartPointError {
                spec: spec.to_string(),
            })
    }
}

impl<'de> serde::Deserialize<'de> for StartPoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor, not String then parse: an error raised inside the deserializer
        // carries the position of this very value (pgcalm.toml's line and column).
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StartPoint;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an `app:migration` pair such as \"demoapp:0001\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StartPoint, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl StartPoint {
    /// Forward to it, never back.
    pub fn goal(&self) -> Goal {
        Goal::ForwardTo {
            app: self.app.clone(),
            target: self.target.clone(),
        }
    }
}

fn is_applied(journal: &HashMap<(String, String), Entry>, f: &MigrationFile) -> bool {
    journal
        .get(&(f.app.clone(), f.name.clone()))
        .is_some_and(|e| e.state == "applied")
}

/// Builds the plan, checking on the way that applied files did not change and that
/// interrupted migrations can continue.
pub fn plan(
    set: &MigrationSet,
    journal: &HashMap<(String, String), Entry>,
    goal: &Goal,
) -> Result<Plan, MigrateError> {
    let mut steps = Vec::new();
    let operation;
    match goal {
        Goal::All(apps) => {
            let apps: Vec<String> = if apps.is_empty() {
                set.apps.keys().cloned().collect()
            } else {
                apps.clone()
            };
            for app in &apps {
                for f in set.app(app)? {
                    if !is_applied(journal, f) {
                        steps.push(forward_step(journal, f)?);
                    }
                }
            }
            operation = Operation::ApplyAll { apps };
        }
        Goal::To { app, target } | Goal::ForwardTo { app, target } => {
            let files = set.app(app)?;
            let forward_only = matches!(goal, Goal::ForwardTo { .. });
            if target == "zero" && !forward_only {
                check_no_missing_files(set, journal, app, 0)?;
                for f in files.iter().rev() {
                    if let Some(step) = backward_step(journal, f)? {
                        steps.push(step);
                    }
                }
                operation = Operation::UnapplyAll { app: app.clone() };
            } else {
                let t = set.resolve(app, target)?;
                if is_applied(journal, t) && !forward_only {
                    check_no_missing_files(set, journal, app, t.number)?;
                    for f in files.iter().rev().filter(|f| f.number > t.number) {
                        if let Some(step) = backward_step(journal, f)? {
                            steps.push(step);
                        }
                    }
                } else {
                    for f in files.iter().filter(|f| f.number <= t.number) {
                        if !is_applied(journal, f) {
                            steps.push(forward_step(journal, f)?);
                        }
                    }
                }
                operation = Operation::Target {
                    app: app.clone(),
                    name: t.name.clone(),
                };
            }
        }
    }
    Ok(Plan { operation, steps })
}

/// Checks every applied migration of the set: a changed file is an error naming it.
pub fn check_checksums(
    set: &MigrationSet,
    journal: &HashMap<(String, String), Entry>,
    apps: &[String],
) -> Result<(), MigrateError> {
    for app in apps {
        for f in set.apps.get(app).map(Vec::as_slice).unwrap_or_default() {
            if let Some(e) = journal.get(&(f.app.clone(), f.name.clone()))
                && e.state == "applied"
                && e.checksum != f.checksum
            {
                return Err(MigrateError::ChecksumMismatch {
                    path: f.path.clone(),
                    recorded: e.checksum.chars().take(12).collect(),
                    actual: f.checksum.chars().take(12).collect(),
                });
            }
        }
    }
    Ok(())
}

fn forward_step(
    journal: &HashMap<(String, String), Entry>,
    f: &MigrationFile,
) -> Result<Step, MigrateError> {
    let mut resume_from = 0;
    let mut interrupted = false;
    if let Some(e) = journal.get(&(f.app.clone(), f.name.clone())) {
        match e.state.as_str() {
            "running_up" => {
                resume_from = e.done_prefix();
                // Killed while a statement ran outside a transaction: it may have finished.
                interrupted = e.in_flight == Some(resume_from);
                check_done_statements(f, Direction::Up, e, resume_from)?;
            }
            "running_down" => {
                return Err(MigrateError::HalfUnapplied {
                    app: f.app.clone(),
                    name: f.name.clone(),
                    done: e.done_prefix(),
                    total: e.statements_total,
                });
            }
            _ => {}
        }
    }
    Ok(Step {
        file: f.clone(),
        direction: Direction::Up,
        resume_from,
        interrupted,
    })
}

/// Going back over a migration needs its file (for the down section): an applied
/// migration of `app` numbered above `floor` whose file is gone is an error.
fn check_no_missing_files(
    set: &MigrationSet,
    journal: &HashMap<(String, String), Entry>,
    app: &str,
    floor: u32,
) -> Result<(), MigrateError> {
    for ((a, name), e) in journal {
        let number = name
            .split('_')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        if a == app && e.state != "not_applied" && number > floor && set.get(app, name).is_none() {
            return Err(MigrateError::MissingFile {
                app: app.to_string(),
                name: name.clone(),
                dir: set.dir.join(app),
            });
        }
    }
    Ok(())
}

fn backward_step(
    journal: &HashMap<(String, String), Entry>,
    f: &MigrationFile,
) -> Result<Option<Step>, MigrateError> {
    let Some(e) = journal.get(&(f.app.clone(), f.name.clone())) else {
        return Ok(None);
    };
    let resume_from = match e.state.as_str() {
        "not_applied" => return Ok(None),
        // A half-applied no-transaction migration is unapplied with its whole down
        // section: down sections are written to cope (`IF EXISTS`).
        "applied" | "running_up" => 0,
        "running_down" => e.done_prefix(),
        _ => 0,
    };
    if f.down.is_none() {
        return Err(MigrateError::Irreversible {
            app: f.app.clone(),
            name: f.name.clone(),
            path: f.path.clone(),
        });
    }
    if e.state == "running_down" {
        check_done_statements(f, Direction::Down, e, resume_from)?;
    }
    Ok(Some(Step {
        file: f.clone(),
        direction: Direction::Down,
        resume_from,
        interrupted: e.state == "running_down" && e.in_flight == Some(resume_from),
    }))
}

/// The statements an interrupted run completed must still read the same.
fn check_done_statements(
    f: &MigrationFile,
    direction: Direction,
    e: &Entry,
    done: usize,
) -> Result<(), MigrateError> {
    let section = f.section(direction).expect("checked by caller");
    for (idx, checksum) in e.done.iter().take(done) {
        let same = section
            .statements
            .get(*idx)
            .is_some_and(|s| &s.checksum == checksum);
        if !same {
            let line = section
                .statements
                .get(*idx)
                .map(|s| s.line)
                .unwrap_or(section.line);
            return Err(MigrateError::CompletedStatementChanged {
                path: f.path.clone(),
                line,
                number: idx + 1,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::file::parse_file;

    #[test]
    fn each_statement_gets_its_own_findings_even_on_a_shared_line() {
        let source = "-- migrate:up\nCREATE INDEX t_x_idx ON t (x); ALTER TABLE t ADD COLUMN y int;\n-- migrate:down\nALTER TABLE t DROP COLUMN y; DROP INDEX t_x_idx;\n";
        let file = parse_file("app", Path::new("app/0001_x.sql"), source).unwrap();
        let verdicts = statement_verdicts(
            &file,
            Direction::Up,
            0,
            &pgcalm_lint::LintOptions::default(),
        );
        let rules =
            |v: &StatementVerdict| v.findings.iter().map(|f| f.rule.name()).collect::<Vec<_>>();
        assert_eq!(verdicts.len(), 2);
        assert_eq!(rules(&verdicts[0]), ["require-concurrent-index-creation"]);
        assert_eq!(rules(&verdicts[1]), Vec::<&str>::new());
        assert_eq!(verdicts[1].verdict(), "safe");
    }
}
