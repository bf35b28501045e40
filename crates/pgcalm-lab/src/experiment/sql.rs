//! The lab's own SQL: a scenario's `setup.sql` / `teardown.sql`, and EXPLAIN ANALYZE of
//! its query before and after the migration.

use pgcalm_pg::PgError;
use tokio_postgres::Client;

use super::{Lab, LabError, LabStep};
use crate::results::Explain;
use crate::scenario::Scenario;

/// Runs a scenario's plain SQL file (setup or teardown) in one implicit transaction.
pub(super) async fn run_sql(
    client: &Client,
    scenario: &Scenario,
    file: &'static str,
    sql: &str,
) -> Result<(), LabError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| LabError::ScenarioSql {
            scenario: scenario.name.to_string(),
            file,
            message: e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string()),
        })
}

/// EXPLAIN (ANALYZE) of `query`: its main scan node and execution time.
pub(crate) async fn explain(client: &Client, query: &str) -> Result<Explain, LabError> {
    let rows = client
        .query(&format!("EXPLAIN (ANALYZE) {query}"), &[])
        .await
        .map_err(PgError::query("running EXPLAIN ANALYZE"))?;
    let lines: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    Ok(parse_explain(&lines.join("\n")))
}

/// The first scan node and the `Execution Time` of an EXPLAIN ANALYZE text plan.
pub(crate) fn parse_explain(plan: &str) -> Explain {
    let node = plan
        .lines()
        .map(|l| l.trim().trim_start_matches("->").trim())
        .find(|l| l.contains("Scan"))
        .map(|l| l.split("  (").next().unwrap_or(l).trim().to_string())
        .unwrap_or_default();
    let execution_ms = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("Execution Time:"))
        .and_then(|t| t.trim().trim_end_matches("ms").trim().parse().ok())
        .unwrap_or(0.0);
    Explain {
        node,
        execution_ms,
        plan: plan.to_string(),
    }
}

impl Lab {
    /// EXPLAIN ANALYZE of the scenario's query, if it has one (before and after the
    /// migration).
    pub(super) async fn explain_scenario(
        &self,
        admin: &Client,
        scenario: &Scenario,
    ) -> Result<Option<Explain>, LabError> {
        let Some(query) = scenario.explain else {
            return Ok(None);
        };
        self.step(LabStep::Explain);
        Ok(Some(explain(admin, query).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_text_gives_the_scan_node_and_execution_time() {
        let plan = "Gather  (cost=1000.00..116778.10 rows=1 width=39) (actual time=338.012..340.101 rows=1 loops=1)
  Workers Planned: 2
  ->  Parallel Seq Scan on large_email  (cost=0.00..115778.00 rows=1 width=39) (actual time=220.1..330.2 rows=0 loops=3)
        Filter: ((email)::text = 'user1000000@example.com'::text)
Planning Time: 0.101 ms
Execution Time: 340.152 ms";
        let e = parse_explain(plan);
        assert_eq!(e.node, "Parallel Seq Scan on large_email");
        assert_eq!(e.execution_ms, 340.152);
        let after = "Index Scan using large_email_email_idx on large_email  (cost=0.56..8.58 rows=1 width=39) (actual time=0.030..0.031 rows=1 loops=1)
  Index Cond: ((email)::text = 'user1000000@example.com'::text)
Planning Time: 0.2 ms
Execution Time: 0.052 ms";
        let e = parse_explain(after);
        assert_eq!(
            e.node,
            "Index Scan using large_email_email_idx on large_email"
        );
        assert_eq!(e.execution_ms, 0.052);
    }
}
