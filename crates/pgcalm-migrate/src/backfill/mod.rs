//! Backfills as a runner primitive: `-- pgcalm:backfill` above an UPDATE in a
//! `transaction:false` section makes the runner apply it in keyset batches over the
//! table's primary key, one short transaction per batch, each journaling its last key
//! (`pgcalm.backfill_progress`) in the same transaction, so a killed runner resumes
//! after the last committed batch and no row is updated twice.
//!
//! ```sql
//! -- migrate:up transaction:false
//! -- pgcalm:backfill batch_size=auto target=200ms
//! UPDATE large_email SET domain = split_part(email, '@', 2) WHERE domain IS NULL;
//! ```
//!
//! Options: `batch_size=auto|N` (auto: start at 1000 keys, then adapt to `target`,
//! halving or doubling at most per batch, between 10 and 100000), `target=DURATION`
//! (default 200ms), `delay=DURATION` (a pause after every batch, default none). Before
//! every batch the runner reads the replicas' replay lag on the primary and waits while
//! it is above the policy's `max_replica_lag` (default 1s).
//!
//! This module parses the directive ([`BackfillSpec::parse`]), checks and rewrites the
//! UPDATE ([`BackfillUpdate::of`], [`BackfillUpdate::batch_sql`]) and sizes the batches
//! ([`BatchSizer`]). The runner executes the batches (`runner.rs`).

use std::time::Duration;

use pg_query::NodeEnum;
use serde::Serialize;

use crate::duration::parse_duration;

/// `-- pgcalm:backfill` (the line prefix).
pub const DIRECTIVE: &str = "pgcalm:backfill";

/// Batch size when `batch_size=auto` starts, and its bounds.
const AUTO_START: u64 = 1000;
const AUTO_MIN: u64 = 10;
const AUTO_MAX: u64 = 100_000;

/// A `-- pgcalm:backfill` directive, as written above its UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillSpec {
    /// `None`: `batch_size=auto` (adapts to `target`).
    pub batch_size: Option<u64>,
    /// The batch time `auto` aims at. Default 200ms.
    #[serde(with = "crate::event::secs")]
    pub target: Duration,
    /// A pause after every batch (fixed-delay throttling). Default none.
    #[serde(with = "crate::event::secs")]
    pub delay: Duration,
    /// 1-based file line of the directive.
    pub line: usize,
    /// The directive's options as written (part of the migration's checksum).
    pub text: String,
}

impl BackfillSpec {
    /// The options after `-- pgcalm:backfill` (`batch_size=auto target=200ms`). An
    /// error says which option is wrong and what is allowed.
    pub fn parse(options: &str, line: usize) -> Result<BackfillSpec, String> {
        let mut spec = BackfillSpec {
            batch_size: None,
            target: Duration::from_millis(200),
            delay: Duration::ZERO,
            line,
            text: options.trim().to_string(),
        };
        for option in options.split_whitespace() {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("`{option}` is not key=value"))?;
            match key {
                "batch_size" if value == "auto" => spec.batch_size = None,
                "batch_size" => {
                    spec.batch_size = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                format!(
                                    "batch_size={value}: give `auto` or a number of rows above 0"
                                )
                            })?,
                    )
                }
                "target" => {
                    spec.target = parse_duration(value)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            format!("target={value}: give a batch time such as 200ms or 1s")
                        })?
                }
                "delay" => {
                    spec.delay = parse_duration(value)
                        .map_err(|_| format!("delay={value}: give a pause such as 50ms or 1s"))?
                }
                other => {
                    return Err(format!(
                        "unknown option `{other}` (the options are batch_size=auto|N, target=DURATION, delay=DURATION)"
                    ));
                }
            }
        }
        Ok(spec)
    }

    /// The batch size to start with.
    pub fn sizer(&self) -> BatchSizer {
        BatchSizer {
            size: self.batch_size.unwrap_or(AUTO_START),
            adaptive: self.batch_size.is_none(),
            target: self.target,
        }
    }
}

/// `-- pgcalm:backfill OPTIONS` -> `OPTIONS` (trimmed).
pub fn directive_options(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix("--")?.trim_start();
    let rest = rest.strip_prefix(DIRECTIVE)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// The batch size: fixed, or adapted to the target batch time by bounded multiplicative
/// increase and decrease (at most x2 or /2 per batch, within 10..=100000 rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSizer {
    size: u64,
    adaptive: bool,
    target: Duration,
}

impl BatchSizer {
    /// Rows (keys) in the next batch.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// After a batch of the current size took `took`.
    pub fn observe(&mut self, took: Duration) {
        if !self.adaptive {
            return;
        }
        let ratio = self.target.as_secs_f64() / took.as_secs_f64().max(1e-6);
        let next = (self.size as f64 * ratio.clamp(0.5, 2.0)).round() as u64;
        self.size = next.clamp(AUTO_MIN, AUTO_MAX);
    }
}

/// Why an UPDATE cannot be backfilled in batches (the fix is in the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotBatchable(pub String);

/// A single-table `UPDATE ... SET ... [WHERE ...]`, taken apart for batching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillUpdate {
    /// The table as written (`large_email`, `app."Email"`), quoted.
    pub table: String,
    /// `UPDATE table [alias] SET ...` without its WHERE (PostgreSQL's deparser).
    head: String,
    /// The WHERE condition, if any.
    condition: Option<String>,
}

impl BackfillUpdate {
    /// Checks that `sql` is a plain single-table UPDATE (no FROM, RETURNING, WITH or
    /// WHERE CURRENT OF) and takes it apart.
    pub fn of(sql: &str) -> Result<BackfillUpdate, NotBatchable> {
        let not = |why: &str| {
            Err(NotBatchable(format!(
                "a backfill runs a plain single-table `UPDATE table SET ... [WHERE ...]` in batches; this statement {why}"
            )))
        };
        let parsed = match pg_query::parse(sql, 0) {
            Ok(p) => p,
            Err(e) => return not(&format!("does not parse: {e}")),
        };
        let [raw] = parsed.protobuf.stmts.as_slice() else {
            return not("is not one statement");
        };
        let Some(NodeEnum::UpdateStmt(update)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref())
        else {
            return not("is not an UPDATE");
        };
        if !update.from_clause.is_empty() {
            return not("has a FROM clause (write the join as a subquery in SET or WHERE)");
        }
        if update
            .returning_clause
            .as_ref()
            .is_some_and(|r| !r.exprs.is_empty())
        {
            return not("has RETURNING");
        }
        if update.with_clause.is_some() {
            return not("has a WITH clause");
        }
        if matches!(
            update.where_clause.as_ref().and_then(|w| w.node.as_ref()),
            Some(NodeEnum::CurrentOfExpr(_))
        ) {
            return not("uses WHERE CURRENT OF");
        }
        let Some(relation) = &update.relation else {
            return not("names no table");
        };
        let table = match relation.schemaname.as_str() {
            "" => quote(&relation.relname),
            schema => format!("{}.{}", quote(schema), quote(&relation.relname)),
        };
        let deparse = |u: &pg_query::protobuf::UpdateStmt| {
            NodeEnum::UpdateStmt(Box::new(u.clone()))
                .deparse(Default::default())
                .map_err(|e| NotBatchable(format!("pgcalm could not rewrite it: {e}")))
        };
        let full = deparse(update)?;
        let mut bare = update.as_ref().clone();
        bare.where_clause = None;
        let head = deparse(&bare)?;
        let condition = match full.strip_prefix(&head) {
            Some("") => None,
            Some(rest) => match rest.strip_prefix(" WHERE ") {
                Some(c) => Some(c.to_string()),
                None => return not("could not be rewritten (its WHERE clause)"),
            },
            None => return not("could not be rewritten (its WHERE clause)"),
        };
        Ok(BackfillUpdate {
            table,
            head,
            condition,
        })
    }

    /// The next batch's keys: one row (last key as text, one per column; number of
    /// keys) for the `size` keys after `after` (None: from the first) in key order, none
    /// when the walk is over. An index range scan of the primary key.
    pub fn next_keys_sql(
        &self,
        key: &[(String, String)],
        after: Option<&[String]>,
        size: u64,
    ) -> String {
        let cols = columns(key, "");
        let desc = columns(key, " DESC");
        let lower = after
            .map(|a| format!(" WHERE {} > {}", tuple(key, &cols), values(key, a)))
            .unwrap_or_default();
        format!(
            "SELECT ARRAY[{last}], count(*) OVER () FROM \
             (SELECT {cols} FROM {table}{lower} ORDER BY {cols} LIMIT {size}) pgcalm_batch \
             ORDER BY {desc} LIMIT 1",
            last = columns(key, "::text"),
            table = self.table,
        )
    }

    /// One batch: the UPDATE restricted to the keys in (`after`, `upto`] (literal bounds,
    /// so the planner walks the primary key's index), and the journal row of the
    /// statement upserted with `upto` and the counts, in one statement (so it runs
    /// through the runner's one way of sending a statement; the caller reads the row
    /// back in the same transaction).
    pub fn batch_sql(
        &self,
        key: &[(String, String)],
        after: Option<&[String]>,
        upto: &[String],
        keys: i64,
        journal: &JournalKey<'_>,
    ) -> String {
        let cols = columns(key, "");
        let t = tuple(key, &cols);
        let mut range = format!("{t} <= {}", values(key, upto));
        if let Some(a) = after {
            range = format!("{t} > {} AND {range}", values(key, a));
        }
        let condition = self
            .condition
            .as_ref()
            .map(|c| format!(" AND ({c})"))
            .unwrap_or_default();
        let upto = upto
            .iter()
            .map(|v| literal(v))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "WITH pgcalm_updated AS ({head} WHERE {range}{condition} RETURNING 1) \
             INSERT INTO pgcalm.backfill_progress AS p \
             (app, name, direction, statement_index, last_key, rows_scanned, rows_updated, batches, last_batch_rows) \
             SELECT {app}, {name}, {direction}, {index}, ARRAY[{upto}]::text[], {keys}, \
             (SELECT count(*) FROM pgcalm_updated), 1, {keys} \
             ON CONFLICT (app, name, direction, statement_index) DO UPDATE SET \
             last_key = excluded.last_key, \
             rows_scanned = p.rows_scanned + excluded.rows_scanned, \
             rows_updated = p.rows_updated + excluded.rows_updated, \
             batches = p.batches + 1, last_batch_rows = excluded.last_batch_rows, \
             updated_at = now()",
            head = self.head,
            app = literal(journal.app),
            name = literal(journal.name),
            direction = literal(journal.direction),
            index = journal.index,
        )
    }
}

/// The key columns joined, each followed by `suffix` (`"id" DESC`, `"id"::text`).
fn columns(key: &[(String, String)], suffix: &str) -> String {
    key.iter()
        .map(|(c, _)| format!("{c}{suffix}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `cols` as a row when the key has several columns.
fn tuple(key: &[(String, String)], cols: &str) -> String {
    if key.len() == 1 {
        cols.to_string()
    } else {
        format!("({cols})")
    }
}

/// Key values (text) as typed literals, a row when the key has several columns.
fn values(key: &[(String, String)], values: &[String]) -> String {
    let items = key
        .iter()
        .zip(values)
        .map(|((_, ty), v)| format!("{}::{ty}", literal(v)))
        .collect::<Vec<_>>()
        .join(", ");
    tuple(key, &items)
}

/// Which statement a backfill's journal row belongs to.
#[derive(Debug, Clone, Copy)]
pub struct JournalKey<'a> {
    /// App.
    pub app: &'a str,
    /// Migration name.
    pub name: &'a str,
    /// `up` / `down`.
    pub direction: &'a str,
    /// 0-based statement index in its section.
    pub index: usize,
}

fn quote(name: &str) -> String {
    pgcalm_pg::quote_ident(name)
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directive_reads_its_options_and_refuses_unknown_ones() {
        let s = BackfillSpec::parse("batch_size=auto target=300ms", 4).unwrap();
        assert_eq!((s.batch_size, s.target), (None, Duration::from_millis(300)));
        let s = BackfillSpec::parse("batch_size=500 delay=1s", 4).unwrap();
        assert_eq!((s.batch_size, s.delay), (Some(500), Duration::from_secs(1)));
        assert!(BackfillSpec::parse("batch_size=0", 1).is_err());
        assert!(
            BackfillSpec::parse("size=10", 1)
                .unwrap_err()
                .contains("unknown option `size`")
        );
        assert_eq!(
            directive_options("-- pgcalm:backfill batch_size=5"),
            Some("batch_size=5")
        );
        assert_eq!(directive_options("--pgcalm:backfill"), Some(""));
        assert_eq!(directive_options("-- pgcalm:backfills"), None);
    }

    #[test]
    fn auto_batches_grow_and_shrink_by_at_most_two_within_bounds() {
        let mut s = BackfillSpec::parse("", 1).unwrap().sizer();
        assert_eq!(s.size(), 1000);
        s.observe(Duration::from_millis(10)); // far under 200ms: doubles only
        assert_eq!(s.size(), 2000);
        s.observe(Duration::from_secs(10)); // far over: halves only
        assert_eq!(s.size(), 1000);
        s.observe(Duration::from_millis(400));
        assert_eq!(s.size(), 500);
        for _ in 0..30 {
            s.observe(Duration::from_secs(5));
        }
        assert_eq!(s.size(), AUTO_MIN);
        let mut fixed = BackfillSpec::parse("batch_size=7", 1).unwrap().sizer();
        fixed.observe(Duration::from_secs(9));
        assert_eq!(fixed.size(), 7);
    }

    #[test]
    fn a_plain_update_is_split_into_head_and_condition() {
        let u =
            BackfillUpdate::of("UPDATE app.t AS x SET n = n + 1 WHERE x.flag AND n < 3").unwrap();
        assert_eq!(u.table, "\"app\".\"t\"");
        assert_eq!(u.head, "UPDATE app.t x SET n = n + 1");
        assert_eq!(u.condition.as_deref(), Some("x.flag AND n < 3"));
        let u = BackfillUpdate::of("update t set n = 1").unwrap();
        assert_eq!(u.condition, None);
        let key = [("\"id\"".to_string(), "bigint".to_string())];
        let j = JournalKey {
            app: "a",
            name: "0001_x",
            direction: "up",
            index: 0,
        };
        let next = u.next_keys_sql(&key, Some(&["41".to_string()]), 100);
        assert!(
            next.contains(
                "(SELECT \"id\" FROM \"t\" WHERE \"id\" > '41'::bigint ORDER BY \"id\" LIMIT 100)"
            ),
            "{next}"
        );
        pg_query::parse(&next, 0).expect("the key query parses");
        let sql = u.batch_sql(
            &key,
            Some(&["41".to_string()]),
            &["141".to_string()],
            100,
            &j,
        );
        assert!(sql.contains("(UPDATE t SET n = 1 WHERE \"id\" > '41'::bigint AND \"id\" <= '141'::bigint RETURNING 1)"), "{sql}");
        pg_query::parse(&sql, 0).expect("the batch parses");
        let two = [
            ("\"a\"".to_string(), "integer".to_string()),
            ("\"b\"".to_string(), "text".to_string()),
        ];
        let sql = u.batch_sql(&two, None, &["1".to_string(), "x'y".to_string()], 5, &j);
        assert!(
            sql.contains("WHERE (\"a\", \"b\") <= ('1'::integer, 'x''y'::text) RETURNING 1"),
            "{sql}"
        );
    }

    #[test]
    fn updates_that_cannot_be_batched_are_refused_with_the_reason() {
        for (sql, why) in [
            (
                "UPDATE t SET n = s.n FROM s WHERE s.id = t.id",
                "FROM clause",
            ),
            ("UPDATE t SET n = 1 RETURNING id", "RETURNING"),
            ("WITH s AS (SELECT 1) UPDATE t SET n = 1", "WITH clause"),
            ("DELETE FROM t", "is not an UPDATE"),
        ] {
            let e = BackfillUpdate::of(sql).unwrap_err();
            assert!(e.0.contains(why), "{sql}: {}", e.0);
        }
    }
}
