//! Facts about column definitions and expressions that decide a rewrite: a default's
//! volatility, serial types, whether a column has a default.

use pg_query::NodeEnum;
use pg_query::protobuf::ConstrType;

use super::constraints;

/// How an expression's value varies, as far as the parse tree tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Volatility {
    /// Constants, immutable and stable built-ins (`now()`, `CURRENT_TIMESTAMP`).
    Stable,
    /// A function pgcalm does not know (a user function, an extension's).
    Unknown,
    /// Differs per row: `random()`, `gen_random_uuid()`, `nextval()`, `clock_timestamp()`.
    Volatile,
}

/// Built-in volatile functions seen in defaults.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setval",
    "txid_current",
    "pg_current_xact_id",
    "gen_random_bytes",
    "random_string",
];

/// Built-in non-volatile functions common in defaults.
const STABLE_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_date",
    "current_timestamp",
    "localtimestamp",
    "lower",
    "upper",
    "coalesce",
    "concat",
    "make_date",
    "make_timestamp",
    "make_timestamptz",
    "to_timestamp",
    "to_date",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "array_fill",
    "length",
    "md5",
    "abs",
    "round",
    "current_setting",
    "current_user",
    "session_user",
    "timezone",
    "date_trunc",
    "interval",
];

/// The volatility of an expression: the worst of its parts.
pub(crate) fn volatility(expr: &pg_query::Node) -> Volatility {
    let Some(node) = expr.node.as_ref() else {
        return Volatility::Stable;
    };
    let all = |nodes: &[pg_query::Node]| {
        nodes
            .iter()
            .map(volatility)
            .max()
            .unwrap_or(Volatility::Stable)
    };
    let boxed = |n: &Option<Box<pg_query::Node>>| {
        n.as_deref().map(volatility).unwrap_or(Volatility::Stable)
    };
    match node {
        NodeEnum::AConst(_) | NodeEnum::SqlvalueFunction(_) => Volatility::Stable,
        NodeEnum::TypeCast(t) => boxed(&t.arg),
        NodeEnum::AExpr(e) => boxed(&e.lexpr).max(boxed(&e.rexpr)),
        NodeEnum::BoolExpr(b) => all(&b.args),
        NodeEnum::CoalesceExpr(c) => all(&c.args),
        NodeEnum::MinMaxExpr(m) => all(&m.args),
        NodeEnum::AArrayExpr(a) => all(&a.elements),
        NodeEnum::RowExpr(r) => all(&r.args),
        NodeEnum::NullTest(n) => boxed(&n.arg),
        NodeEnum::CaseExpr(c) => {
            let whens = c
                .args
                .iter()
                .filter_map(|w| match &w.node {
                    Some(NodeEnum::CaseWhen(w)) => Some(boxed(&w.expr).max(boxed(&w.result))),
                    _ => None,
                })
                .max()
                .unwrap_or(Volatility::Stable);
            whens.max(boxed(&c.arg)).max(boxed(&c.defresult))
        }
        NodeEnum::FuncCall(f) => {
            let name = f
                .funcname
                .last()
                .and_then(|n| match &n.node {
                    Some(NodeEnum::String(s)) => Some(s.sval.to_ascii_lowercase()),
                    _ => None,
                })
                .unwrap_or_default();
            let own = if VOLATILE_FUNCTIONS.contains(&name.as_str()) {
                Volatility::Volatile
            } else if STABLE_FUNCTIONS.contains(&name.as_str()) {
                Volatility::Stable
            } else {
                Volatility::Unknown
            };
            own.max(all(&f.args))
        }
        _ => Volatility::Unknown,
    }
}

pub(super) fn is_null_const(expr: &pg_query::Node) -> bool {
    match expr.node.as_ref() {
        Some(NodeEnum::AConst(c)) => c.isnull,
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(is_null_const),
        _ => false,
    }
}

/// `serial`, `bigserial`, `smallserial` (and `serial4`/`serial8`/`serial2`): an
/// implicit sequence default, filled into every existing row.
pub(crate) fn is_serial_type(t: &pg_query::protobuf::TypeName) -> bool {
    let name = t.names.last().and_then(|n| match &n.node {
        Some(NodeEnum::String(s)) => Some(s.sval.to_ascii_lowercase()),
        _ => None,
    });
    matches!(
        name.as_deref(),
        Some("serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8")
    )
}

/// A column definition with a `DEFAULT` (even `DEFAULT NULL`: PostgreSQL then validates
/// a new column's foreign key).
pub(crate) fn has_default(col: &pg_query::protobuf::ColumnDef) -> bool {
    col.raw_default.is_some()
        || constraints(&col.constraints).any(|c| c.contype == ConstrType::ConstrDefault as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_of(sql: &str) -> pg_query::Node {
        let Some(NodeEnum::AlterTableStmt(a)) = crate::split::parse_first(sql) else {
            panic!("{sql}");
        };
        let Some(NodeEnum::AlterTableCmd(cmd)) = &a.cmds[0].node else {
            panic!("{sql}");
        };
        let Some(NodeEnum::ColumnDef(col)) = cmd.def.as_deref().and_then(|d| d.node.as_ref())
        else {
            panic!("{sql}");
        };
        constraints(&col.constraints)
            .find_map(|c| c.raw_expr.as_deref().cloned())
            .expect("a default")
    }

    fn of(expr: &str) -> Volatility {
        volatility(&default_of(&format!(
            "ALTER TABLE t ADD COLUMN c int DEFAULT {expr}"
        )))
    }

    #[test]
    fn an_expression_is_as_volatile_as_its_worst_part() {
        use Volatility::*;
        for (expr, expected) in [
            ("0", Stable),
            ("'x'::text", Stable),
            ("now()", Stable),
            ("CURRENT_TIMESTAMP", Stable),
            ("lower('A') || upper('b')", Stable),
            ("random()", Volatile),
            ("gen_random_uuid()", Volatile),
            ("nextval('s')", Volatile),
            ("pg_catalog.clock_timestamp()", Volatile),
            ("coalesce(1, random()::int)", Volatile),
            ("CASE WHEN true THEN 1 ELSE random()::int END", Volatile),
            ("my_function()", Unknown),
            ("abs(my_function())", Unknown),
            ("my_function() + random()::int", Volatile),
        ] {
            assert_eq!(of(expr), expected, "{expr}");
        }
    }

    #[test]
    fn a_null_default_is_a_null_constant() {
        assert!(is_null_const(&default_of(
            "ALTER TABLE t ADD COLUMN c int DEFAULT NULL"
        )));
        assert!(is_null_const(&default_of(
            "ALTER TABLE t ADD COLUMN c int DEFAULT NULL::int"
        )));
        assert!(!is_null_const(&default_of(
            "ALTER TABLE t ADD COLUMN c int DEFAULT 0"
        )));
    }

    #[test]
    fn serial_types_and_defaults() {
        let column = |sql: &str| {
            let Some(NodeEnum::CreateStmt(c)) = crate::split::parse_first(sql) else {
                panic!("{sql}");
            };
            let Some(NodeEnum::ColumnDef(col)) = c.table_elts[0].node.clone() else {
                panic!("{sql}");
            };
            col
        };
        for t in ["serial", "bigserial", "smallserial", "serial8", "SERIAL4"] {
            let col = column(&format!("CREATE TABLE t (c {t})"));
            assert!(is_serial_type(col.type_name.as_ref().unwrap()), "{t}");
        }
        let col = column("CREATE TABLE t (c bigint)");
        assert!(!is_serial_type(col.type_name.as_ref().unwrap()));
        assert!(!has_default(&col));
        assert!(has_default(&column("CREATE TABLE t (c int DEFAULT NULL)")));
    }
}
