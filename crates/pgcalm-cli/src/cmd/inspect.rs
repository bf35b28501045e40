//! `pgcalm inspect TABLE...`: psql's `\d TABLE` plus validity, rows and size.

use pgcalm_pg::catalog::{RowCount, TableReport, describe_table};

use crate::settings::Settings;
use indicatif::HumanCount;

use crate::output::{psql_table, size};

/// Flags of `pgcalm inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Tables to describe (schema-qualified if needed).
    #[arg(required = true)]
    pub tables: Vec<String>,
    /// Use the planner's row estimate instead of an exact count(*) (fast on big tables).
    #[arg(long)]
    pub estimate: bool,
}

/// Describes each table.
pub(crate) async fn run(settings: &Settings, args: Args) -> anyhow::Result<()> {
    let client = settings.target().await?.connect().await?;
    let mut reports = Vec::new();
    for table in &args.tables {
        reports.push(describe_table(&client, table, !args.estimate).await?);
    }
    if settings.json() {
        return crate::output::print_json(&reports);
    }
    let text: Vec<String> = reports.iter().map(render_table).collect();
    print!("{}", text.join("\n"));
    Ok(())
}

/// The text form, laid out like psql's `\d`.
pub(crate) fn render_table(r: &TableReport) -> String {
    let rows: Vec<Vec<String>> = r
        .columns
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.data_type.clone(),
                c.collation.clone().unwrap_or_default(),
                if c.not_null {
                    "not null".into()
                } else {
                    String::new()
                },
                c.default.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let title = format!("Table \"{}.{}\"", r.schema, r.name);
    let mut out = psql_table(
        Some(&title),
        &["Column", "Type", "Collation", "Nullable", "Default"],
        &rows,
    );
    if !r.indexes.is_empty() {
        out.push_str("Indexes:\n");
        for i in &r.indexes {
            let kind = match (i.primary, i.constraint.as_deref(), i.unique) {
                (true, _, _) => "PRIMARY KEY, ",
                (_, Some("u"), _) => "UNIQUE CONSTRAINT, ",
                (_, _, true) => "UNIQUE, ",
                _ => "",
            };
            let invalid = if i.valid {
                ""
            } else {
                " INVALID (a failed or still running CONCURRENTLY build)"
            };
            out.push_str(&format!(
                "    \"{}\" {kind}{}{invalid}\n",
                i.name,
                i.method_and_columns()
            ));
        }
    }
    for (kind, heading) in [
        ("c", "Check constraints"),
        ("f", "Foreign-key constraints"),
        ("n", "Not-null constraints"),
    ] {
        let items: Vec<_> = r.constraints.iter().filter(|c| c.kind == kind).collect();
        if items.is_empty() {
            continue;
        }
        out.push_str(&format!("{heading}:\n"));
        for c in items {
            let not_valid = if c.validated || c.definition.ends_with("NOT VALID") {
                ""
            } else {
                " NOT VALID"
            };
            out.push_str(&format!("    \"{}\" {}{not_valid}\n", c.name, c.definition));
        }
    }
    if !r.referenced_by.is_empty() {
        out.push_str("Referenced by:\n");
        for (table, name, def) in &r.referenced_by {
            out.push_str(&format!(
                "    TABLE \"{table}\" CONSTRAINT \"{name}\" {def}\n"
            ));
        }
    }
    let rows = match r.rows {
        RowCount::Exact(n) => format!("{} (exact count)", HumanCount(n.unsigned_abs())),
        RowCount::Estimate(n) if n < 0 => {
            "unknown (never analyzed; drop --estimate for an exact count)".into()
        }
        RowCount::Estimate(n) => format!("~{} (planner estimate)", HumanCount(n.unsigned_abs())),
    };
    out.push_str(&format!("Rows: {rows}\n"));
    out.push_str(&format!(
        "Size: {} total (table {}, indexes {})\n",
        size(r.total_bytes),
        size(r.table_bytes),
        size(r.indexes_bytes)
    ));
    out
}
