//! The rule engine: walks a unit's statements in order ([`UnitLinter`]), asks every enabled
//! [`Rule`] about each one (with the lock table's answer and what the unit did before),
//! applies `-- pgcalm:ignore` directives, and returns [`Finding`]s.

use pg_query::NodeEnum;
use pg_query::protobuf::Token;
use serde::Serialize;

use crate::finding::{Finding, SeenBy};
use crate::locks::{PgVersion, RelName, RelationLock, StatementLocks, Target, statement_locks};
use crate::rule_id::RuleId;
use crate::rules;
use crate::split::{SourceStatement, Span};
use crate::unit::{LintOptions, RuleSelection, UnitKind, UnitState};

/// A lint rule: one per file under `rules/`, registered in [`rules::ALL`]. What it is
/// called, how bad it is and what it catches are its [`RuleId`]'s.
#[derive(Debug)]
pub(crate) struct Rule {
    /// Which rule.
    pub id: RuleId,
    /// Looks at one statement; returns what is wrong with it (usually nothing).
    pub check: fn(&Cx<'_>) -> Vec<Violation>,
}

impl Rule {
    /// Whether the selection runs this rule.
    pub(crate) fn is_enabled(&self, selection: &RuleSelection) -> bool {
        selection.enable.contains(&self.id)
            || (self.id.info().default_on && !selection.disable.contains(&self.id))
    }
}

/// What a rule reports; the engine adds the rule name, span and lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Violation {
    /// What is wrong.
    pub message: String,
    /// The safe recipe.
    pub help: String,
    /// Rewritten SQL.
    pub fix_sql: Option<String>,
    /// The lock to show; defaults to the statement's strongest lock on an existing
    /// relation.
    pub lock: Option<RelationLock>,
}

impl Violation {
    /// A violation with a message.
    pub(crate) fn new(message: impl Into<String>) -> Violation {
        Violation {
            message: message.into(),
            ..Violation::default()
        }
    }

    /// The safe recipe.
    pub(crate) fn help(mut self, help: impl Into<String>) -> Violation {
        self.help = help.into();
        self
    }

    /// The rewritten SQL.
    pub(crate) fn fix(mut self, sql: impl Into<String>) -> Violation {
        self.fix_sql = Some(sql.into());
        self
    }

    /// The lock that makes it risky.
    pub(crate) fn lock(mut self, lock: &RelationLock) -> Violation {
        self.lock = Some(lock.clone());
        self
    }
}

/// Everything a rule may look at for one statement.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    /// The unit's source text.
    pub source: &'a str,
    /// The statement.
    pub stmt: &'a SourceStatement,
    /// Its parse tree.
    pub node: &'a NodeEnum,
    /// What the lock table says about it.
    pub locks: &'a StatementLocks,
    /// What the unit did before it.
    pub state: &'a UnitState,
    /// Pgcalm migration section or plain SQL.
    pub kind: UnitKind,
    /// Options (PostgreSQL version, ...).
    pub options: &'a LintOptions,
}

impl<'a> Cx<'a> {
    /// The statement's SQL text (no trailing `;`).
    pub(crate) fn sql(&self) -> &'a str {
        self.stmt.sql(self.source)
    }

    /// The target PostgreSQL version.
    pub(crate) fn pg(&self) -> PgVersion {
        self.options.pg_version
    }

    /// A table created earlier in this unit (its locks block no one).
    pub(crate) fn is_new_table(&self, table: &RelName) -> bool {
        self.state.is_new_table(table)
    }

    /// A pgcalm migration section (the runner sets lock_timeout and the transaction).
    pub(crate) fn is_migration(&self) -> bool {
        matches!(self.kind, UnitKind::Migration { .. })
    }

    /// This statement's locks on relations that existed before the unit.
    pub(crate) fn existing_locks(&self) -> impl Iterator<Item = &'a RelationLock> + '_ {
        self.locks
            .locks
            .iter()
            .filter(|l| self.state.is_existing(&l.target))
    }

    /// The strongest of [`Cx::existing_locks`].
    pub(crate) fn strongest_existing_lock(&self) -> Option<&'a RelationLock> {
        self.existing_locks().max_by_key(|l| l.mode)
    }

    /// The lock on a table, if it existed before the unit.
    pub(crate) fn existing_lock_on(&self, table: &RelName) -> Option<&'a RelationLock> {
        self.locks
            .on_table(table)
            .filter(|_| !self.is_new_table(table))
    }

    /// Byte offset (into [`Cx::sql`]) of the first token of the given kind.
    pub(crate) fn token_offset(&self, token: Token) -> Option<usize> {
        pg_query::scan_tokens(self.sql())
            .ok()?
            .into_iter()
            .find(|t| t.token == token as i32)
            .map(|t| t.start as usize)
    }
}

/// SQL for a parse tree (PostgreSQL's own deparser): fixes that change a node, then
/// print it.
pub(crate) fn deparse(node: NodeEnum) -> Option<String> {
    use pg_query::protobuf::{ParseResult, RawStmt};
    let tree = ParseResult {
        version: 0,
        stmts: vec![RawStmt {
            stmt: Some(Box::new(pg_query::Node { node: Some(node) })),
            stmt_location: 0,
            stmt_len: 0,
        }],
    };
    pg_query::deparse(&tree, Default::default()).ok()
}

/// A finding a `-- pgcalm:ignore` directive suppressed, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// The finding.
    pub finding: Finding,
    /// The directive's reason.
    pub reason: String,
}

/// One statement and the locks it takes on relations that existed before the unit
/// (the lock table's answer, with tables created earlier in the unit left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLockReport {
    /// Where it is.
    pub span: Span,
    /// What it is (`CREATE INDEX`).
    pub statement: String,
    /// Its locks on existing relations, strongest first (empty: it blocks no one).
    pub locks: Vec<RelationLock>,
    /// PostgreSQL refuses it inside a transaction block.
    pub outside_transaction: bool,
}

/// What linting a unit produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LintResult {
    /// Findings in statement order.
    pub findings: Vec<Finding>,
    /// Findings suppressed by `-- pgcalm:ignore RULE reason`.
    pub ignored: Vec<Ignored>,
}

/// A unit walked one statement at a time: each statement's context (the lock table's
/// answer and the state before it) for a visitor, then the state learns from it. The
/// statements need not all be in memory at once (a big file is parsed as it is walked).
struct UnitWalk<'a> {
    source: &'a str,
    kind: UnitKind,
    options: &'a LintOptions,
    state: UnitState,
}

impl UnitWalk<'_> {
    fn statement(&mut self, stmt: &SourceStatement, visit: impl FnOnce(&Cx<'_>)) {
        let Some(node) = &stmt.node else { return };
        let locks = statement_locks(node, self.options.pg_version);
        visit(&Cx {
            source: self.source,
            stmt,
            node,
            locks: &locks,
            state: &self.state,
            kind: self.kind,
            options: self.options,
        });
        self.state.apply(node, &locks, self.options);
    }
}

fn lock_report(cx: &Cx<'_>) -> StatementLockReport {
    StatementLockReport {
        span: cx.stmt.span,
        statement: cx.locks.label.clone(),
        locks: cx.existing_locks().cloned().collect(),
        outside_transaction: cx.locks.outside_transaction,
    }
}

/// Lints a unit fed one statement at a time, in order (from
/// [`crate::for_each_statement`], so a big file's trees are never all in memory): its
/// findings, each statement's locks on existing relations if asked, and the state after
/// the unit (a down section starts from its up section's).
pub struct UnitLinter<'a> {
    walk: UnitWalk<'a>,
    enabled: Vec<&'static Rule>,
    result: LintResult,
    locks: Option<Vec<StatementLockReport>>,
}

impl<'a> UnitLinter<'a> {
    /// A linter for a unit of `kind` in `source`, starting from `state` (made with
    /// [`UnitState::new`], then seeded).
    pub fn new(
        source: &'a str,
        kind: UnitKind,
        options: &'a LintOptions,
        state: UnitState,
    ) -> UnitLinter<'a> {
        UnitLinter {
            walk: UnitWalk {
                source,
                kind,
                options,
                state,
            },
            enabled: rules::ALL
                .iter()
                .copied()
                .filter(|r| r.is_enabled(&options.rules))
                .collect(),
            result: LintResult::default(),
            locks: None,
        }
    }

    /// Also keeps each statement's locks on existing relations (`pgcalm lint --locks`,
    /// `--plan`), for [`UnitLinter::finish_with_locks`].
    pub fn with_lock_reports(mut self) -> UnitLinter<'a> {
        self.locks = Some(Vec::new());
        self
    }

    /// Lints the next statement.
    pub fn statement(&mut self, stmt: &SourceStatement) {
        let (enabled, result, locks) = (&self.enabled, &mut self.result, &mut self.locks);
        self.walk.statement(stmt, |cx| {
            lint_statement(cx, enabled, result);
            if let Some(locks) = locks {
                locks.push(lock_report(cx));
            }
        });
    }

    /// The findings, and what lint knows after the unit.
    pub fn finish(self) -> (LintResult, UnitState) {
        (self.result, self.walk.state)
    }

    /// The findings, the locks of each statement, and the state after the unit.
    pub fn finish_with_locks(self) -> (LintResult, Vec<StatementLockReport>, UnitState) {
        (self.result, self.locks.unwrap_or_default(), self.walk.state)
    }
}

/// Every enabled rule on one statement, with its `-- pgcalm:ignore` directives.
fn lint_statement(cx: &Cx<'_>, enabled: &[&Rule], result: &mut LintResult) {
    let (stmt, locks) = (cx.stmt, cx.locks);
    let directives = ignore_directives(cx.source, stmt);
    for d in &directives {
        if let Some(problem) = d.problem() {
            result.findings.push(Finding {
                rule: RuleId::InvalidIgnore,
                severity: RuleId::InvalidIgnore.severity(),
                span: stmt.span,
                statement: locks.label.clone(),
                lock: None,
                table: None,
                blocks: Default::default(),
                message: problem,
                help: "write `-- pgcalm:ignore RULE[,RULE] why this is safe here` on the \
                       line before the statement"
                    .into(),
                fix_sql: None,
                seen_by: SeenBy::Lint,
            });
        }
    }
    for rule in enabled {
        for v in (rule.check)(cx) {
            let finding = cx.finding(rule, v);
            match directives.iter().find(|d| d.covers(rule.id)) {
                Some(d) => result.ignored.push(Ignored {
                    finding,
                    reason: d.reason.clone(),
                }),
                None => result.findings.push(finding),
            }
        }
    }
}

impl Cx<'_> {
    fn finding(&self, rule: &Rule, v: Violation) -> Finding {
        let lock = v.lock.as_ref().or_else(|| self.strongest_existing_lock());
        let table = lock.map(|l| match &l.target {
            // The unit may know the index's table.
            Target::TableOfIndex(i) => self
                .state
                .indexes
                .get(&i.name)
                .map(|idx| idx.table.to_string())
                .unwrap_or_else(|| l.target.to_string()),
            t => t.to_string(),
        });
        Finding {
            rule: rule.id,
            severity: rule.id.severity(),
            span: self.stmt.span,
            statement: self.locks.label.clone(),
            lock: lock.map(|l| l.mode),
            table,
            blocks: lock.map(|l| l.blocks()).unwrap_or_default(),
            message: v.message,
            help: v.help,
            fix_sql: v.fix_sql,
            seen_by: SeenBy::Lint,
        }
    }
}

/// One `-- pgcalm:ignore RULE[,RULE] reason` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IgnoreDirective {
    rules: Vec<String>,
    reason: String,
}

impl IgnoreDirective {
    fn covers(&self, rule: RuleId) -> bool {
        !self.reason.is_empty() && self.rules.iter().any(|r| r == rule.name())
    }

    /// Why the directive is not valid (`None` when it is).
    fn problem(&self) -> Option<String> {
        if self.rules.is_empty() {
            return Some("`-- pgcalm:ignore` names no rule".into());
        }
        if let Some(unknown) = self.rules.iter().find(|r| r.parse::<RuleId>().is_err()) {
            return Some(format!(
                "`-- pgcalm:ignore` names an unknown rule `{unknown}`"
            ));
        }
        if self.reason.is_empty() {
            return Some(format!(
                "`-- pgcalm:ignore {}` needs a reason: the finding stays until it says why \
                 the statement is safe",
                self.rules.join(",")
            ));
        }
        None
    }
}

/// The directives in a statement's comments.
fn ignore_directives(source: &str, stmt: &SourceStatement) -> Vec<IgnoreDirective> {
    stmt.comments
        .iter()
        .filter_map(|range| {
            let text = &source[range.clone()];
            let body = text
                .strip_prefix("--")
                .or_else(|| {
                    text.strip_prefix("/*")
                        .map(|t| t.strip_suffix("*/").unwrap_or(t))
                })?
                .trim();
            let rest = body.strip_prefix("pgcalm:ignore")?;
            if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                return None;
            }
            let rest = rest.trim();
            let (rules, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Some(IgnoreDirective {
                rules: rules
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect(),
                reason: reason.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{LintOptions, UnitKind, lint_sql};

    fn outcome(sql: &str) -> (Vec<&'static str>, Vec<(&'static str, String)>) {
        let r = lint_sql(
            sql,
            UnitKind::Migration { transaction: true },
            &LintOptions::default(),
        )
        .unwrap();
        (
            r.findings.iter().map(|f| f.rule.name()).collect(),
            r.ignored
                .iter()
                .map(|i| (i.finding.rule.name(), i.reason.clone()))
                .collect(),
        )
    }

    #[test]
    fn ignore_directives() {
        // Line before, several rules, a reason.
        let (findings, ignored) = outcome(
            "-- pgcalm:ignore require-concurrent-index-creation,setting-not-null tiny table\nCREATE INDEX i ON t (a);",
        );
        assert_eq!(findings, Vec::<&str>::new());
        assert_eq!(
            ignored,
            [(
                "require-concurrent-index-creation",
                "tiny table".to_string()
            )]
        );
        // A block comment works too; a directive for another rule does not.
        let (findings, _) =
            outcome("/* pgcalm:ignore setting-not-null why */ CREATE INDEX i ON t (a);");
        assert_eq!(findings, ["require-concurrent-index-creation"]);
        // No reason, unknown rule, no rule: an error, and the finding stays.
        for sql in [
            "-- pgcalm:ignore require-concurrent-index-creation\nCREATE INDEX i ON t (a);",
            "-- pgcalm:ignore require-concurrent-index-creatoin typo\nCREATE INDEX i ON t (a);",
            "-- pgcalm:ignore\nCREATE INDEX i ON t (a);",
        ] {
            let (findings, ignored) = outcome(sql);
            assert_eq!(
                findings,
                ["invalid-ignore", "require-concurrent-index-creation"],
                "{sql}"
            );
            assert!(ignored.is_empty());
        }
        // Not a directive: another word after the prefix.
        let (findings, _) = outcome("-- pgcalm:ignored x y\nCREATE INDEX i ON t (a);");
        assert_eq!(findings, ["require-concurrent-index-creation"]);
    }
}
