//! The rule engine: walks a unit's statements in order ([`UnitLinter`]), asks every enabled
//! [`Rule`] about each one (with the lock table's answer and what the unit did before),
//! applies `-- pgcalm:ignore` directives, and returns [`Finding`]s.

use pg_query::NodeEnum;
use pg_query::protobuf::Token;
use serde::Serialize;

use crate::finding::{Finding, SeenBy};
use std::cell::OnceCell;
use std::sync::Arc;

use crate::locks::{LockTarget, PgVersion, RelName, RelationLock, StatementLocks, statement_locks};
use crate::plpgsql;
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
    /// The body the statement is in (`the DO block`, `function f`), for a statement a
    /// `DO` block or a function runs; `None` for the unit's own statements.
    pub body: Option<&'a str>,
    /// What several rules ask about the statement, worked out once for all of them.
    pub shared: PerStatement<'a>,
}

/// Facts about one statement that several rules ask for, each worked out on the first
/// ask ([`crate::rules::alter_existing_table`], [`crate::rules::later_in_transaction`]).
#[derive(Debug, Default)]
pub(crate) struct PerStatement<'a> {
    pub(crate) alter_existing_table: OnceCell<Option<crate::rules::AlterExisting<'a>>>,
    pub(crate) later_in_transaction: OnceCell<Vec<NodeEnum>>,
    pub(crate) bodies_run: OnceCell<Vec<plpgsql::RunBody>>,
}

impl Cx<'_> {
    /// The bodies the statement runs ([`plpgsql::bodies_run_by`]), read once per
    /// statement: by `dynamic-sql`, then by the walk of their statements.
    pub(crate) fn bodies_run(&self) -> &[plpgsql::RunBody] {
        self.shared.bodies_run.get_or_init(|| {
            plpgsql::bodies_run_by(self.node, self.sql(), self.stmt.span.line, self.state)
        })
    }
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
    deparse_tree(&tree)
}

/// What `pg_query::deparse(tree, Default::default()).ok()` returns, with the tree read
/// into PostgreSQL's nodes by pgcalm's own protobuf reader (`c/deparse_protobuf.c`:
/// libpg_query's cost twice its deparsing on lint's small trees).
pub(crate) fn deparse_tree(tree: &pg_query::protobuf::ParseResult) -> Option<String> {
    use prost::Message;
    deparse_protobuf(&tree.encode_to_vec())
}

/// [`deparse_tree`] of a ParseResult message's bytes.
pub(crate) fn deparse_protobuf(bytes: &[u8]) -> Option<String> {
    // SAFETY: the declarations in `deparse_ffi` match deparse_protobuf.c and pg_query.h;
    // the bytes outlive the call; the result is read before it is freed, once.
    unsafe {
        let result = deparse_ffi::pgcalm_deparse_protobuf(bytes.as_ptr().cast(), bytes.len());
        let sql = if result.error.is_null() && !result.query.is_null() {
            Some(
                std::ffi::CStr::from_ptr(result.query)
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            None
        };
        deparse_ffi::pg_query_free_deparse_result(result);
        sql
    }
}

mod deparse_ffi {
    use std::ffi::{c_char, c_void};

    /// `PgQueryDeparseResult` of pg_query.h (its error only tested for NULL here).
    #[repr(C)]
    pub(super) struct PgQueryDeparseResult {
        pub(super) query: *mut c_char,
        pub(super) error: *mut c_void,
    }

    unsafe extern "C" {
        pub(super) fn pgcalm_deparse_protobuf(
            data: *const c_char,
            len: usize,
        ) -> PgQueryDeparseResult;
        pub(super) fn pg_query_free_deparse_result(result: PgQueryDeparseResult);
    }
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
    /// The unit's simple-query messages ([`LintOptions::simple_queries`]) and how many
    /// statements each holds.
    messages: Vec<(std::ops::Range<usize>, usize)>,
    /// The message whose implicit transaction is open.
    implicit: Option<usize>,
}

impl UnitWalk<'_> {
    /// Before a statement: the implicit transaction of the simple-query message it is in
    /// (if it holds several statements) begins, and that of the message before it ends.
    fn enter(&mut self, stmt: &SourceStatement) {
        let at = stmt.span.start;
        let message = self.messages.iter().position(|(r, _)| r.contains(&at));
        self.state.simple_query = message.map(|m| self.messages[m].1);
        if self.implicit.is_some() && self.implicit != message {
            self.implicit = None;
            if self.state.in_transaction {
                self.state.end_simple_query();
            }
        }
        if let Some(m) = message
            && self.messages[m].1 > 1
            && !self.state.in_transaction
        {
            self.state.begin_simple_query();
            self.implicit = Some(m);
        }
    }

    /// Returns the bodies the statement runs when a rule read them (`None`: not read).
    fn statement(
        &mut self,
        stmt: &SourceStatement,
        visit: impl FnOnce(&Cx<'_>),
    ) -> Option<Vec<plpgsql::RunBody>> {
        let Some(node) = &stmt.node else { return None };
        self.enter(stmt);
        if matches!(node, NodeEnum::TransactionStmt(_)) {
            // BEGIN turns the implicit transaction into a block; COMMIT ends it (the
            // message's next statement starts another).
            self.implicit = None;
        }
        let mut locks = statement_locks(node, self.options.pg_version);
        self.state.lock_through_foreign_keys(&mut locks);
        let cx = Cx {
            source: self.source,
            stmt,
            node,
            locks: &locks,
            state: &self.state,
            kind: self.kind,
            options: self.options,
            body: None,
            shared: PerStatement::default(),
        };
        visit(&cx);
        // What a statement that runs bodies (DO, SELECT, CALL) does to the state leaves
        // the unit's functions as they were: the bodies read before it still hold.
        let runs = cx.shared.bodies_run.into_inner();
        self.state.apply(node, &locks, self.options);
        let sql = stmt.sql(self.source);
        if let Some((name, body)) = plpgsql::function_body(node, sql, stmt.span.line) {
            self.state.function_bodies.insert(name, Arc::new(body));
        }
        runs
    }

    /// Walks the statements of the bodies `node` runs (a `DO` block, the unit's functions
    /// it calls), each body as one transaction (the statement's own, or the unit's), with
    /// where each statement is (`line 12 in the DO block`) for `visit`. Calls inside a
    /// body are followed `MAX_DEPTH` deep. `runs`: the bodies, when a rule read them.
    fn bodies(
        &mut self,
        node: &NodeEnum,
        sql: &str,
        line: usize,
        depth: usize,
        runs: Option<Vec<plpgsql::RunBody>>,
        visit: &mut dyn FnMut(&Cx<'_>, &str),
    ) {
        const MAX_DEPTH: usize = 3;
        if depth >= MAX_DEPTH {
            return;
        }
        let runs = runs.unwrap_or_else(|| plpgsql::bodies_run_by(node, sql, line, &self.state));
        for run in runs {
            // The body's statements as one text, each starting a line of its own.
            let mut source = String::new();
            let mut starts: Vec<(usize, usize)> = Vec::new();
            for e in &run.body.statements {
                starts.push((source.len(), e.line));
                source.push_str(&e.sql);
                source.push_str(";\n");
            }
            let Ok(statements) = crate::split::split_unparsed(&source, 0..source.len()) else {
                continue;
            };
            let was = self.state.in_transaction;
            self.state.in_transaction = true;
            for mut s in statements {
                let Some(inner) = crate::split::parse_first(s.sql(&source)) else {
                    continue;
                };
                let at = starts
                    .iter()
                    .rev()
                    .find(|(start, _)| *start <= s.span.start)
                    .map_or(line, |(_, l)| *l);
                let mut locks = statement_locks(&inner, self.options.pg_version);
                self.state.lock_through_foreign_keys(&mut locks);
                s.node = Some(inner);
                let Some(inner) = &s.node else { continue };
                let cx = Cx {
                    source: &source,
                    stmt: &s,
                    node: inner,
                    locks: &locks,
                    state: &self.state,
                    kind: self.kind,
                    options: self.options,
                    body: Some(&run.name),
                    shared: PerStatement::default(),
                };
                visit(&cx, &format!("line {at} in {}", run.name));
                let inner_runs = cx.shared.bodies_run.into_inner();
                self.state.apply(inner, &locks, self.options);
                // COMMIT / ROLLBACK in a body (a procedure, a DO block run on its own)
                // starts the next transaction at once.
                if matches!(inner, NodeEnum::TransactionStmt(_)) {
                    self.state.in_transaction = true;
                }
                self.bodies(inner, s.sql(&source), at, depth + 1, inner_runs, visit);
            }
            // A DO block run on its own commits (or fails) as a whole.
            self.state.in_transaction = was;
            if !was {
                self.state.end_implicit_transaction();
            }
        }
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
                messages: options
                    .simple_queries
                    .iter()
                    .map(|r| {
                        let r = r.start.min(source.len())..r.end.min(source.len());
                        let n =
                            crate::split::split_unparsed(source, r.clone()).map_or(0, |s| s.len());
                        (r, n)
                    })
                    .collect(),
                implicit: None,
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

    /// Lints the next statement, and the statements of what it runs (a `DO` block, a
    /// function of the unit it calls): their findings are the statement's, each message
    /// saying where in the body (`line 12 in the DO block: ...`), with no fix (a fix
    /// cannot go inside the body in place of the statement), one per rule (the body's
    /// further ones joined to its message).
    pub fn statement(&mut self, stmt: &SourceStatement) {
        let (enabled, result, locks) = (&self.enabled, &mut self.result, &mut self.locks);
        let directives = ignore_directives(self.walk.source, stmt, self.walk.options.today);
        let runs = self.walk.statement(stmt, |cx| {
            lint_statement(cx, enabled, &directives, result);
            if let Some(locks) = locks {
                locks.push(lock_report(cx));
            }
        });
        let Some(node) = &stmt.node else { return };
        if !matches!(
            node,
            NodeEnum::DoStmt(_) | NodeEnum::SelectStmt(_) | NodeEnum::CallStmt(_)
        ) {
            return;
        }
        let sql = stmt.sql(self.walk.source);
        let mut inner = |cx: &Cx<'_>, at: &str| {
            let mut found = LintResult::default();
            run_rules(cx, enabled, &directives, &mut found);
            let body = cx.body.unwrap_or("the body");
            let placed = |mut f: Finding| {
                f.span = stmt.span;
                f.message = format!("{at}: {}", f.message);
                f.help = f.help.replace(
                    "this file runs in one transaction",
                    &format!("{body} runs in one transaction"),
                );
                f.fix_sql = None;
                f
            };
            for f in found.findings {
                let f = placed(f);
                // One finding per rule per statement: what the body repeats is added to the
                // statement's finding of that rule.
                match result
                    .findings
                    .iter_mut()
                    .find(|g| g.span.start == f.span.start && g.rule == f.rule)
                {
                    Some(g) => {
                        const MORE: &str = "; and more in the body";
                        let joined = g.message.matches("; and line ").count();
                        let new = !g.message.contains(&f.message) && !g.message.ends_with(MORE);
                        if new && joined < 4 {
                            g.message = format!("{}; and {}", g.message, f.message);
                        } else if new {
                            g.message.push_str(MORE);
                        }
                    }
                    None => result.findings.push(f),
                }
            }
            for i in found.ignored {
                result.ignored.push(Ignored {
                    finding: placed(i.finding),
                    reason: i.reason,
                });
            }
        };
        self.walk
            .bodies(node, sql, stmt.span.line, 0, runs, &mut inner);
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

/// Every enabled rule on one statement, with its `-- pgcalm:ignore` directives (a
/// malformed one is a finding of its own).
fn lint_statement(
    cx: &Cx<'_>,
    enabled: &[&Rule],
    directives: &[IgnoreDirective],
    result: &mut LintResult,
) {
    let (stmt, locks) = (cx.stmt, cx.locks);
    for d in directives {
        if let Some(until) = d.expired {
            result.findings.push(Finding {
                rule: RuleId::ExpiredIgnore,
                severity: RuleId::ExpiredIgnore.severity(),
                span: stmt.span,
                statement: locks.label.clone(),
                lock: None,
                table: None,
                blocks: Default::default(),
                message: format!(
                    "`-- pgcalm:ignore {}` expired on {until}: its findings are back",
                    d.rules.join(",")
                ),
                help: "fix the statement, or renew the ignore with a later `until` date and \
                       why it is still safe"
                    .into(),
                fix_sql: None,
                seen_by: SeenBy::Lint,
                table_size: None,
            });
        }
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
                table_size: None,
            });
        }
    }
    run_rules(cx, enabled, directives, result);
}

/// Every enabled rule on one statement; findings a directive covers are ignored.
fn run_rules(
    cx: &Cx<'_>,
    enabled: &[&Rule],
    directives: &[IgnoreDirective],
    result: &mut LintResult,
) {
    for rule in enabled {
        let violations = (rule.check)(cx);
        // Most rules find nothing in most statements (400,000 answers on 10,000
        // statements): a vector that never allocated owns nothing, and forgetting it
        // skips the out-of-line drop its type gets (4% of lint's instructions).
        if violations.capacity() == 0 {
            std::mem::forget(violations);
            continue;
        }
        for v in violations {
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
            LockTarget::TableOfIndex(i) => self
                .state
                .indexes
                .get(&i.name)
                .map(|idx| idx.table.to_string())
                .unwrap_or_else(|| l.target.to_string()),
            t => t.to_string(),
        });
        let (mut help, mut fix_sql) = (v.help, v.fix_sql);
        if let Some(steps) = fix_sql.as_deref().and_then(|f| self.steps_of_own(f)) {
            if !help.is_empty() && !help.ends_with('.') {
                help.push('.');
            }
            help.push_str(&format!(
                " Its tool sends this file as one query, where several statements run in one \
                 implicit transaction: the safe form is not written in here, since its steps \
                 must run one at a time (CONCURRENTLY fails in a transaction; a VALIDATE \
                 would scan under its ADD's lock). Split it into migrations of one statement \
                 each, in this order: {}",
                steps
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", then ")
            ));
            fix_sql = None;
        }
        Finding {
            rule: rule.id,
            severity: rule.id.severity(),
            span: self.stmt.span,
            statement: self.locks.label.clone(),
            lock: lock.map(|l| l.mode),
            table,
            blocks: lock.map(|l| l.blocks()).unwrap_or_default(),
            message: v.message,
            help,
            fix_sql,
            seen_by: SeenBy::Lint,
            table_size: None,
        }
    }

    /// For a statement sent alone as one simple-query message (so not in a transaction),
    /// a fix of several statements would run them in one implicit transaction: when that
    /// raises findings they do not have one at a time (CONCURRENTLY, a VALIDATE after its
    /// ADD, a scan under earlier locks), the fix's statements, each to go on its own.
    fn steps_of_own(&self, fix: &str) -> Option<Vec<String>> {
        if self.state.simple_query != Some(1) || self.state.in_transaction {
            return None;
        }
        let statements = crate::split::split_unparsed(fix, 0..fix.len()).ok()?;
        if statements.len() < 2 {
            return None;
        }
        let alone = LintOptions {
            pg_version: self.options.pg_version,
            rules: self.options.rules.clone(),
            schema: self.options.schema.clone(),
            ..LintOptions::default()
        };
        let together = LintOptions {
            assume_in_transaction: true,
            ..alone.clone()
        };
        let found = |options: &LintOptions| -> Vec<(RuleId, usize)> {
            crate::lint_sql(fix, UnitKind::PlainSql, options)
                .map(|r| r.findings.iter().map(|f| (f.rule, f.span.start)).collect())
                .unwrap_or_default()
        };
        let one_at_a_time = found(&alone);
        found(&together)
            .iter()
            .any(|f| !one_at_a_time.contains(f))
            .then(|| {
                statements
                    .iter()
                    .map(|s| format!("{};", s.sql(fix).trim()))
                    .collect()
            })
    }
}

/// One `-- pgcalm:ignore RULE[,RULE] reason` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IgnoreDirective {
    rules: Vec<String>,
    reason: String,
    /// `until DATE` that is not a date.
    bad_date: Option<String>,
    /// The `until` date, when it has passed (today is on or after it).
    expired: Option<crate::Date>,
}

impl IgnoreDirective {
    fn covers(&self, rule: RuleId) -> bool {
        !self.reason.is_empty()
            && self.bad_date.is_none()
            && self.expired.is_none()
            && self.rules.iter().any(|r| r == rule.name())
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
        if let Some(bad) = &self.bad_date {
            return Some(format!(
                "`-- pgcalm:ignore {} until {bad}`: {}",
                self.rules.join(","),
                crate::BadDate(bad.clone())
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
fn ignore_directives(
    source: &str,
    stmt: &SourceStatement,
    today: Option<crate::Date>,
) -> Vec<IgnoreDirective> {
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
            // `RULE until 2027-03-01 reason`
            let (mut bad_date, mut expired, mut reason) = (None, None, reason.trim());
            if let Some(after) = reason.strip_prefix("until")
                && after.starts_with(char::is_whitespace)
            {
                let after = after.trim_start();
                let (date, why) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
                match date.parse::<crate::Date>() {
                    Ok(d) => expired = today.filter(|t| *t >= d).map(|_| d),
                    Err(_) => bad_date = Some(date.to_string()),
                }
                reason = why.trim();
            }
            Some(IgnoreDirective {
                bad_date,
                expired,
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
    use insta::assert_snapshot;

    use crate::rules::test_support::check;
    use crate::{LintOptions, UnitKind, lint_sql};

    #[test]
    fn a_do_block_is_linted_statement_by_statement() {
        // Its statements run in one transaction: the index build keeps accounts locked.
        let sql = "SET lock_timeout = '2s';\nDO $$\nBEGIN\n  ALTER TABLE accounts ADD COLUMN plan text;\n  IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'users_email_idx') THEN\n    EXECUTE 'CREATE INDEX users_email_idx ON users (email)';\n  END IF;\nEND $$;";
        assert_snapshot!(check("require-concurrent-index-creation", sql), @"
        error[require-concurrent-index-creation] 2:1
          lock: CREATE INDEX takes SHARE on users: blocks writes
          line 6 in the DO block: CREATE INDEX holds SHARE on users for the whole build: every INSERT, UPDATE and DELETE waits until it finishes
          help: build it with CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE: reads and writes go on); the DO block runs in one transaction, where CONCURRENTLY fails (25001): put `CREATE INDEX CONCURRENTLY users_email_idx ON users (email);` in a statement of its own, outside any DO block or function. If users is partitioned (lint cannot tell without --schema), CONCURRENTLY is refused there: build the index ON ONLY users, then CONCURRENTLY on each partition, and ATTACH each
        ");
        assert_snapshot!(check("accumulated-locks", sql), @"
        error[accumulated-locks] 2:1
          lock: CREATE INDEX takes ACCESS EXCLUSIVE on accounts: blocks reads and writes
          line 6 in the DO block: CREATE INDEX builds its index on users while this transaction holds, from earlier statements, ACCESS EXCLUSIVE on accounts: reads and writes of accounts wait for the whole build, until COMMIT
          help: commit the earlier statements before it (COMMIT, then this one in a transaction of its own; an index as CREATE INDEX CONCURRENTLY outside any), so no table stays locked while it works
        ");
    }

    #[test]
    fn a_function_of_the_unit_is_linted_where_it_is_called() {
        let sql = "CREATE FUNCTION backfill() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE users SET status = 'active';\nEND $$;\nSELECT backfill();\nDROP FUNCTION backfill();";
        assert_snapshot!(check("unbatched-backfill", sql), @"
        error[unbatched-backfill] 5:1
          lock: UPDATE takes ROW EXCLUSIVE on users: blocks no reads or writes
          line 3 in function backfill: UPDATE on users changes every row in one transaction: each changed row stays locked until it ends (concurrent updates of them wait), and vacuum and replicas fall behind
          help: change the rows in batches of about 10000 by primary key, each batch its own transaction, outside the transaction of any schema change; function backfill runs in one transaction, so its batches cannot commit one by one: move the backfill to a statement of its own, outside any DO block or function, or to a job
        ");
        // Not called: its body does not run in the migration.
        assert_snapshot!(check("unbatched-backfill", "CREATE FUNCTION backfill() RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE users SET status = 'active'; END $$;"), @"ok");
    }

    #[test]
    fn a_body_that_repeats_a_hazard_gives_one_finding_naming_each() {
        let sql = "SET lock_timeout = '2s';\nDO $$\nBEGIN\n  CREATE INDEX a ON users (email);\n  CREATE INDEX b ON orders (state);\nEND $$;";
        let result = lint_sql(sql, UnitKind::PlainSql, &LintOptions::default()).unwrap();
        let rule: Vec<_> = result
            .findings
            .iter()
            .filter(|f| f.rule.name() == "require-concurrent-index-creation")
            .collect();
        assert_eq!(rule.len(), 1);
        assert!(
            rule[0]
                .message
                .starts_with("line 4 in the DO block: CREATE INDEX holds SHARE on users")
                && rule[0]
                    .message
                    .contains("; and line 5 in the DO block: CREATE INDEX holds SHARE on orders"),
            "{}",
            rule[0].message
        );
    }

    #[test]
    fn an_ignore_directive_on_the_do_block_covers_its_statements() {
        let (findings, ignored) = outcome(
            "-- pgcalm:ignore require-concurrent-index-creation tiny table\nDO $$ BEGIN CREATE INDEX i ON t (a); END $$;",
        );
        assert_eq!(findings, Vec::<&str>::new());
        assert_eq!(
            ignored,
            [(
                "require-concurrent-index-creation",
                "tiny table".to_string()
            )]
        );
    }

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
    fn an_ignore_expires_on_its_date() {
        let sql = |until: &str| {
            format!(
                "-- pgcalm:ignore require-concurrent-index-creation until {until} tiny table\nCREATE INDEX i ON t (a);"
            )
        };
        let options = LintOptions {
            today: Some("2027-03-01".parse().unwrap()),
            ..LintOptions::default()
        };
        let run = |sql: &str, options: &LintOptions| {
            let r = lint_sql(sql, UnitKind::Migration { transaction: true }, options).unwrap();
            let findings: Vec<_> = r.findings.iter().map(|f| f.rule.name()).collect();
            let ignored: Vec<_> = r.ignored.iter().map(|i| i.reason.clone()).collect();
            (findings, ignored, r.findings)
        };
        // Before the date: ignored, with the reason after the date.
        let (findings, ignored, _) = run(&sql("2027-03-02"), &options);
        assert_eq!(findings, Vec::<&str>::new());
        assert_eq!(ignored, ["tiny table"]);
        // On and after it: the ignore is a finding, and the finding is back.
        for until in ["2027-03-01", "2020-01-01"] {
            let (findings, ignored, all) = run(&sql(until), &options);
            assert_eq!(
                findings,
                ["expired-ignore", "require-concurrent-index-creation"],
                "{until}"
            );
            assert!(ignored.is_empty());
            assert_eq!(
                all[0].message,
                format!(
                    "`-- pgcalm:ignore require-concurrent-index-creation` expired on {until}: its findings are back"
                )
            );
        }
        // Without a clock nothing expires; a bad date is an invalid ignore.
        let (findings, _, _) = run(&sql("2020-01-01"), &LintOptions::default());
        assert_eq!(findings, Vec::<&str>::new());
        let (findings, _, all) = run(&sql("2027-02-30"), &options);
        assert_eq!(
            findings,
            ["invalid-ignore", "require-concurrent-index-creation"]
        );
        assert!(
            all[0].message.contains("is not a date"),
            "{}",
            all[0].message
        );
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
