//! The SQL inside `DO` blocks and functions, for lint to read statement by statement.
//!
//! A `DO` block's PL/pgSQL body is parsed with PostgreSQL's own PL/pgSQL parser
//! (`pg_query::parse_plpgsql`); every SQL statement it runs (in any branch, loop or
//! exception handler) is taken with its line, and so is the SQL of an `EXECUTE` of a
//! constant string. An `EXECUTE` of a computed string (`format(...)`, concatenation), a
//! `FOR ... IN EXECUTE`, a body in another language or one that does not parse cannot be
//! read: those are listed as [`Opaque`] parts, which the `dynamic-sql` rule reports. A
//! function created earlier in the unit (PL/pgSQL, or `LANGUAGE sql` with a string body)
//! is read when the unit calls it (`SELECT f()`, `CALL p()`, `PERFORM f()` in a block).

use std::sync::Arc;

use pg_query::NodeEnum;
use pg_query::protobuf::Token;
use serde_json::Value;

use crate::unit::string_list;

/// One SQL statement a body runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Embedded {
    /// 1-based line in the file.
    pub line: usize,
    /// Its SQL.
    pub sql: String,
}

/// A part of a body lint cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opaque {
    /// 1-based line in the file.
    pub line: usize,
    /// What it is (`EXECUTE format('ALTER TABLE %I ...', t)`).
    pub what: String,
}

/// What a body runs, as far as lint can read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Body {
    /// The statements, in order, their references to the body's variables written as
    /// parameters (`WHERE id > batch_start` -> `WHERE id > $1`): a value, not a column.
    pub statements: Vec<Embedded>,
    /// What cannot be read.
    pub opaque: Vec<Opaque>,
}

/// A body a statement runs: `the DO block`, `function f`.
#[derive(Debug, Clone)]
pub(crate) struct RunBody {
    /// How messages name it.
    pub name: String,
    /// What it runs.
    pub body: Arc<Body>,
}

/// Marks the SQL of an `EXECUTE` of a constant string while the body is walked.
const EXECUTED: &str = "\u{0}EXECUTE\u{0}";

/// The longest text of an opaque part quoted in a message.
const QUOTE: usize = 80;

fn quote(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > QUOTE {
        format!("{}...", one_line.chars().take(QUOTE).collect::<String>())
    } else {
        one_line
    }
}

/// The body of a `DO` statement (`sql` its text, starting at file line `line`): `None`
/// for any other statement.
pub(crate) fn do_body(node: &NodeEnum, sql: &str, line: usize) -> Option<Body> {
    let NodeEnum::DoStmt(d) = node else {
        return None;
    };
    let language = d.args.iter().find_map(|a| match &a.node {
        Some(NodeEnum::DefElem(e)) if e.defname == "language" => {
            match e.arg.as_deref()?.node.as_ref()? {
                NodeEnum::String(s) => Some(s.sval.to_lowercase()),
                _ => None,
            }
        }
        _ => None,
    });
    let first = body_line(sql, line);
    if language.as_deref().is_some_and(|l| l != "plpgsql") {
        return Some(Body {
            statements: Vec::new(),
            opaque: vec![Opaque {
                line: first,
                what: format!("a body in LANGUAGE {}", language.unwrap_or_default()),
            }],
        });
    }
    Some(plpgsql(sql, first))
}

/// The body of a `CREATE FUNCTION` / `CREATE PROCEDURE` (`sql` its text, starting at file
/// line `line`), with the function's name: PL/pgSQL, or SQL written as a string. `None`
/// for any other statement, or a body in another language (C, a `BEGIN ATOMIC` body:
/// statements lint does not follow).
pub(crate) fn function_body(node: &NodeEnum, sql: &str, line: usize) -> Option<(String, Body)> {
    let NodeEnum::CreateFunctionStmt(f) = node else {
        return None;
    };
    let name = string_list(&f.funcname).pop()?;
    let option = |name: &str| {
        f.options.iter().find_map(|o| match &o.node {
            Some(NodeEnum::DefElem(e)) if e.defname == name => e.arg.as_deref()?.node.clone(),
            _ => None,
        })
    };
    let language = match option("language") {
        Some(NodeEnum::String(s)) => s.sval.to_lowercase(),
        _ => return None,
    };
    let first = body_line(sql, line);
    let body = match language.as_str() {
        "plpgsql" => plpgsql(sql, first),
        "sql" => {
            let Some(NodeEnum::List(l)) = option("as") else {
                return None;
            };
            let text = string_list(&l.items).into_iter().next()?;
            sql_body(&text, first)
        }
        _ => return None,
    };
    Some((name, body))
}

/// The bodies a statement runs: a `DO` block's, and those of the functions of the unit
/// it calls (`sql` its text, starting at file line `line`).
pub(crate) fn bodies_run_by(
    node: &NodeEnum,
    sql: &str,
    line: usize,
    state: &crate::unit::UnitState,
) -> Vec<RunBody> {
    if let Some(body) = do_body(node, sql, line) {
        return vec![RunBody {
            name: "the DO block".into(),
            body: Arc::new(body),
        }];
    }
    called_functions(node)
        .into_iter()
        .filter_map(|f| {
            let body = state.function_bodies.get(&f)?.clone();
            Some(RunBody {
                name: format!("function {f}"),
                body,
            })
        })
        .collect()
}

/// The functions a statement calls by name at its top level (`SELECT f(...)`, `CALL
/// p(...)`), unqualified.
pub(crate) fn called_functions(node: &NodeEnum) -> Vec<String> {
    let name = |f: &pg_query::protobuf::FuncCall| string_list(&f.funcname).pop();
    match node {
        NodeEnum::CallStmt(c) => c.funccall.as_deref().and_then(name).into_iter().collect(),
        NodeEnum::SelectStmt(s) => s
            .target_list
            .iter()
            .filter_map(|t| match &t.node {
                Some(NodeEnum::ResTarget(r)) => match r.val.as_deref()?.node.as_ref()? {
                    NodeEnum::FuncCall(f) => name(f),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The file line of a body's first line: where its string starts (the first string
/// token after the statement's keywords).
fn body_line(sql: &str, line: usize) -> usize {
    let start = pg_query::scan_tokens(sql)
        .ok()
        .and_then(|t| {
            t.iter()
                .find(|t| t.token == Token::Sconst as i32)
                .map(|t| t.start as usize)
        })
        .unwrap_or(0);
    line + sql[..start.min(sql.len())].matches('\n').count()
}

/// The statements of a PL/pgSQL body (of the `DO` or `CREATE FUNCTION` statement `sql`),
/// `first` the file line of its first line.
fn plpgsql(sql: &str, first: usize) -> Body {
    let parsed = match pg_query::parse_plpgsql(sql) {
        Ok(v) => v,
        Err(e) => {
            return Body {
                statements: Vec::new(),
                opaque: vec![Opaque {
                    line: first,
                    what: format!("a body PL/pgSQL's parser refuses ({e})"),
                }],
            };
        }
    };
    let mut found: Vec<(usize, usize, Result<String, String>)> = Vec::new();
    walk(&parsed, &mut found);
    // Object keys come sorted (`else_body` before `then_body`): source order is by line.
    found.sort_by_key(|(line, seq, _)| (*line, *seq));
    let mut variables = Vec::new();
    variable_names(&parsed, &mut variables);
    let mut body = Body::default();
    for (lineno, _, part) in found {
        let line = first + lineno.saturating_sub(1);
        match part {
            Ok(sql) => body.statements.push(Embedded {
                line,
                sql: match sql.strip_prefix(EXECUTED) {
                    Some(executed) => executed.to_string(),
                    None => variables_as_parameters(&sql, &variables),
                },
            }),
            Err(what) => body.opaque.push(Opaque { line, what }),
        }
    }
    body
}

/// The statements of a `LANGUAGE sql` body written as a string.
fn sql_body(text: &str, first: usize) -> Body {
    match crate::split::split_unparsed(text, 0..text.len()) {
        Ok(statements) => Body {
            statements: statements
                .iter()
                .map(|s| Embedded {
                    line: first + s.span.line - 1,
                    sql: s.sql(text).to_string(),
                })
                .collect(),
            opaque: Vec::new(),
        },
        Err(e) => Body {
            statements: Vec::new(),
            opaque: vec![Opaque {
                line: first,
                what: format!("a body that does not parse ({})", e.message),
            }],
        },
    }
}

/// Every statement of a parsed PL/pgSQL tree: (line in the body, order found, its SQL or
/// what cannot be read).
fn walk(v: &Value, found: &mut Vec<(usize, usize, Result<String, String>)>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| walk(i, found)),
        Value::Object(map) => {
            for (key, inner) in map {
                let line = inner.get("lineno").and_then(Value::as_u64).unwrap_or(1) as usize;
                let query = |field: &str| {
                    inner
                        .get(field)?
                        .get("PLpgSQL_expr")?
                        .get("query")?
                        .as_str()
                        .map(str::to_string)
                };
                let seq = found.len();
                match key.as_str() {
                    "PLpgSQL_stmt_execsql" | "PLpgSQL_stmt_perform" | "PLpgSQL_stmt_call" => {
                        let field = match key.as_str() {
                            "PLpgSQL_stmt_execsql" => "sqlstmt",
                            _ => "expr",
                        };
                        if let Some(sql) = query(field) {
                            found.push((line, seq, Ok(sql)));
                        }
                    }
                    "PLpgSQL_stmt_dynexecute" => {
                        let expr = query("query").unwrap_or_default();
                        match constant_string(&expr) {
                            // Marked: the body's variables are not visible in it.
                            Some(sql) => found.push((line, seq, Ok(format!("{EXECUTED}{sql}")))),
                            None => {
                                found.push((line, seq, Err(format!("EXECUTE {}", quote(&expr)))))
                            }
                        }
                    }
                    "PLpgSQL_stmt_dynfors" => {
                        let expr = query("query").unwrap_or_default();
                        found.push((
                            line,
                            seq,
                            Err(format!("FOR ... IN EXECUTE {}", quote(&expr))),
                        ));
                    }
                    "PLpgSQL_stmt_open" | "PLpgSQL_stmt_return_query"
                        if inner.get("dynquery").is_some() =>
                    {
                        let expr = query("dynquery").unwrap_or_default();
                        found.push((line, seq, Err(format!("EXECUTE {}", quote(&expr)))));
                    }
                    _ => {}
                }
                walk(inner, found);
            }
        }
        _ => {}
    }
}

/// The names of a PL/pgSQL body's variables and records (its parameters too), lower case.
fn variable_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| variable_names(i, out)),
        Value::Object(map) => {
            for (key, inner) in map {
                if matches!(key.as_str(), "PLpgSQL_var" | "PLpgSQL_rec" | "PLpgSQL_row")
                    && let Some(name) = inner.get("refname").and_then(Value::as_str)
                    && name != "found"
                {
                    out.push(name.to_lowercase());
                }
                variable_names(inner, out);
            }
        }
        _ => {}
    }
}

/// `sql` with each reference to a variable (`batch_start`, `rec.id`) written `$1`: at run
/// time it is a value PL/pgSQL passes, not a column of the table (a variable named like a
/// column is an error PostgreSQL raises, so names do not collide).
fn variables_as_parameters(sql: &str, variables: &[String]) -> String {
    if variables.is_empty() {
        return sql.to_string();
    }
    let Ok(tokens) = pg_query::scan_tokens(sql) else {
        return sql.to_string();
    };
    let text = |i: usize| &sql[tokens[i].start as usize..tokens[i].end as usize];
    let is = |i: usize, t: Token| tokens.get(i).is_some_and(|x| x.token == t as i32);
    let mut out = String::new();
    let mut at = 0;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let after_dot = i > 0 && is(i - 1, Token::Ascii46);
        if t.token == Token::Ident as i32
            && !after_dot
            && variables.contains(&text(i).to_lowercase())
        {
            // `rec.field`: the whole reference is one value.
            let mut end = i;
            while is(end + 1, Token::Ascii46) && is(end + 2, Token::Ident) {
                end += 2;
            }
            out.push_str(&sql[at..t.start as usize]);
            out.push_str("$1");
            at = tokens[end].end as usize;
            i = end + 1;
            continue;
        }
        i += 1;
    }
    out.push_str(&sql[at..]);
    out
}

/// The SQL of an `EXECUTE` expression that is one string constant (`'...'`, `E'...'`,
/// `$x$...$x$`, adjacent literals).
fn constant_string(expr: &str) -> Option<String> {
    let tokens = pg_query::scan_tokens(expr).ok()?;
    let [t] = tokens.as_slice() else {
        return None;
    };
    if t.token != Token::Sconst as i32 {
        return None;
    }
    let text = &expr[t.start as usize..t.end as usize];
    if let Some(rest) = text.strip_prefix('$') {
        // $tag$...$tag$
        let close = rest.find('$')?;
        let tag = &text[..close + 2];
        return text
            .strip_prefix(tag)?
            .strip_suffix(tag)
            .map(str::to_string);
    }
    let (escaped, text) = match text.strip_prefix(['E', 'e']) {
        Some(t) => (true, t),
        None => (false, text),
    };
    let inner = text
        .strip_prefix('\'')?
        .strip_suffix('\'')?
        .replace("''", "'");
    if escaped && inner.contains('\\') {
        return None;
    }
    Some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn do_of(sql: &str) -> Body {
        do_body(&crate::split::parse_first(sql).unwrap(), sql, 1).unwrap()
    }

    #[test]
    fn a_do_block_gives_its_statements_with_their_lines() {
        let sql = "DO $$\nDECLARE r record;\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN\n    CREATE TYPE mood AS ENUM ('a');\n  ELSE\n    ALTER TYPE mood ADD VALUE 'b';\n  END IF;\n  ALTER TABLE users ADD COLUMN c int;\n  EXECUTE 'CREATE INDEX i ON users (c)';\n  FOR r IN SELECT id FROM users LOOP\n    UPDATE users SET c = 1 WHERE id = r.id;\n  END LOOP;\n  PERFORM f();\nEND\n$$;";
        let body = do_of(sql);
        let got: Vec<(usize, &str)> = body
            .statements
            .iter()
            .map(|e| (e.line, e.sql.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (5, "CREATE TYPE mood AS ENUM ('a')"),
                (7, "ALTER TYPE mood ADD VALUE 'b'"),
                (9, "ALTER TABLE users ADD COLUMN c int"),
                (10, "CREATE INDEX i ON users (c)"),
                (12, "UPDATE users SET c = 1 WHERE id = $1"),
                (14, "SELECT f()"),
            ]
        );
        assert!(body.opaque.is_empty());
    }

    #[test]
    fn the_bodys_variables_become_parameters() {
        let body = do_of(
            "DO $$\nDECLARE batch_start bigint := 0; art record; status text;\nBEGIN\n  UPDATE t SET a = b WHERE id > batch_start AND id <= batch_start + 10000;\n  UPDATE t SET a = 1 WHERE id = art.id AND t.id > 0;\n  EXECUTE 'UPDATE t SET status = 1';\nEND $$",
        );
        assert_eq!(
            body.statements
                .iter()
                .map(|e| e.sql.as_str())
                .collect::<Vec<_>>(),
            [
                "UPDATE t SET a = b WHERE id > $1 AND id <= $1 + 10000",
                "UPDATE t SET a = 1 WHERE id = $1 AND t.id > 0",
                // EXECUTE'd SQL sees no variable: as written.
                "UPDATE t SET status = 1",
            ]
        );
    }

    #[test]
    fn dynamic_sql_and_other_languages_cannot_be_read() {
        let body = do_of(
            "DO $$\nBEGIN\n  EXECUTE format('ALTER TABLE %I ADD COLUMN c int', 'users');\n  EXECUTE 'DROP TABLE ' || quote_ident('x');\nEND $$",
        );
        assert!(body.statements.is_empty());
        assert_eq!(
            body.opaque,
            [
                Opaque {
                    line: 3,
                    what: "EXECUTE format('ALTER TABLE %I ADD COLUMN c int', 'users')".into()
                },
                Opaque {
                    line: 4,
                    what: "EXECUTE 'DROP TABLE ' || quote_ident('x')".into()
                },
            ]
        );
        let body = do_of("DO LANGUAGE plperl $$ 1; $$");
        assert_eq!(body.opaque[0].what, "a body in LANGUAGE plperl");
    }

    #[test]
    fn execute_of_constant_strings_in_every_quoting() {
        for (expr, sql) in [
            ("'DROP TABLE t'", Some("DROP TABLE t")),
            ("'UPDATE t SET a = ''x'''", Some("UPDATE t SET a = 'x'")),
            ("$q$DROP TABLE t$q$", Some("DROP TABLE t")),
            ("$$DROP TABLE t$$", Some("DROP TABLE t")),
            ("E'DROP TABLE t'", Some("DROP TABLE t")),
            ("'DROP TABLE ' || t", None),
            ("sql_text", None),
        ] {
            assert_eq!(constant_string(expr).as_deref(), sql, "{expr}");
        }
    }

    #[test]
    fn functions_in_plpgsql_and_sql_and_their_calls() {
        let sql = "CREATE FUNCTION migrate_data() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  ALTER TABLE users ADD COLUMN d int;\nEND $$";
        let (name, body) =
            function_body(&crate::split::parse_first(sql).unwrap(), sql, 10).unwrap();
        assert_eq!(name, "migrate_data");
        assert_eq!(body.statements[0].line, 12);
        let sql = "CREATE PROCEDURE p() LANGUAGE sql AS 'DELETE FROM t; UPDATE u SET a = 1'";
        let (_, body) = function_body(&crate::split::parse_first(sql).unwrap(), sql, 1).unwrap();
        assert_eq!(
            body.statements
                .iter()
                .map(|e| e.sql.as_str())
                .collect::<Vec<_>>(),
            ["DELETE FROM t", "UPDATE u SET a = 1"]
        );
        let calls = |sql: &str| called_functions(&crate::split::parse_first(sql).unwrap());
        assert_eq!(calls("SELECT migrate_data()"), ["migrate_data"]);
        assert_eq!(calls("CALL public.p()"), ["p"]);
        assert_eq!(calls("SELECT 1"), Vec::<String>::new());
    }
}
