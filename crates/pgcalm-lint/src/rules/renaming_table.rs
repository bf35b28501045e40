//! `renaming-table`: `ALTER TABLE ... RENAME TO` on an existing table. The rename is a
//! brief ACCESS EXCLUSIVE, but application code already running keeps using the old name.
//! Safe when the same transaction then creates a view with the old name (a simple view
//! is updatable, so old code keeps reading and writing through it).

use pg_query::NodeEnum;
use pg_query::protobuf::{ObjectType, Token};

use crate::engine::{Cx, Rule, Violation};
use crate::finding::Severity;
use crate::locks::RelName;
use crate::rules::rel;

/// The rule.
pub static RULE: Rule = Rule {
    name: "renaming-table",
    severity: Severity::Error,
    summary: "RENAME TO breaks application code that still uses the old table name",
    default_on: true,
    check,
};

/// The text after this statement up to the end of its transaction: the first COMMIT,
/// ROLLBACK, END or ABORT, or the next migration section marker. Found by scanning a
/// window that grows from 4 KB, so a long file is not re-read for every rename.
fn rest_of_transaction<'a>(cx: &Cx<'a>) -> &'a str {
    let rest = &cx.source[cx.stmt.span.end..];
    let mut window = 4096;
    loop {
        let mut end = window.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let text = &rest[..end];
        if let Ok(tokens) = pg_query::scan_tokens(text) {
            let mut statement_start = true;
            for t in &tokens {
                let kind = t.token;
                if kind == Token::SqlComment as i32 || kind == Token::CComment as i32 {
                    if text[t.start as usize..t.end as usize].contains("migrate:") {
                        return &text[..t.start as usize];
                    }
                    continue;
                }
                let ends = [Token::Commit, Token::Rollback, Token::EndP, Token::AbortP];
                if statement_start && ends.iter().any(|e| kind == *e as i32) {
                    return &text[..t.start as usize];
                }
                statement_start = kind == Token::Ascii59 as i32;
            }
            if end == rest.len() {
                return text;
            }
        } else if end == rest.len() {
            return "";
        }
        window *= 4;
    }
}

/// Whether a later statement of the same transaction creates a view named `old`. The
/// rest of the transaction may be the rest of a big file: it is only scanned, and only
/// statements that create a view are parsed.
fn view_follows_in_transaction(cx: &Cx<'_>, old: &RelName) -> bool {
    if !cx.state.in_transaction {
        return false;
    }
    let rest = rest_of_transaction(cx);
    let Ok(statements) = crate::split::split_unparsed(rest, 0..rest.len()) else {
        return false;
    };
    statements.iter().map(|s| s.sql(rest)).any(|sql| {
        creates_a_view(sql)
            && matches!(crate::split::parse_first(sql),
                Some(NodeEnum::ViewStmt(v)) if v.view.as_ref().is_some_and(|r| RelName::from_range_var(r).same_as(old)))
    })
}

/// `CREATE [OR REPLACE] [TEMP] [RECURSIVE] VIEW ...`: VIEW among its first words.
fn creates_a_view(sql: &str) -> bool {
    // Its first 200 bytes, unless they end inside a literal.
    let head = &sql[..sql.floor_char_boundary(200)];
    let tokens = pg_query::scan_tokens(head).or_else(|_| pg_query::scan_tokens(sql));
    tokens.is_ok_and(|tokens| {
        let mut words = tokens
            .iter()
            .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32);
        words
            .next()
            .is_some_and(|t| t.token == Token::Create as i32)
            && words.take(4).any(|t| t.token == Token::View as i32)
    })
}

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    let NodeEnum::RenameStmt(r) = cx.node else {
        return Vec::new();
    };
    if r.rename_type != ObjectType::ObjectTable as i32 {
        return Vec::new();
    }
    let Some(old) = r.relation.as_ref().map(RelName::from_range_var) else {
        return Vec::new();
    };
    if cx.is_new_table(&old) || view_follows_in_transaction(cx, &old) {
        return Vec::new();
    }
    let new = RelName {
        schema: old.schema.clone(),
        name: r.newname.clone(),
    };
    let view = format!(
        "ALTER TABLE {} RENAME TO {};\nCREATE VIEW {} AS SELECT * FROM {};",
        rel(&old),
        crate::rules::ident(&r.newname),
        rel(&old),
        rel(&new)
    );
    let fix = if cx.state.in_transaction {
        view
    } else {
        format!("BEGIN;\n{view}\nCOMMIT;")
    };
    let mut v = Violation::new(format!(
        "RENAME TO {} on {old}: application code already running still queries {old} and fails \
         until every instance is redeployed",
        r.newname
    ))
    .help(
        "in the same transaction, create a view with the old name over the renamed table \
         (simple views are updatable); drop the view once no code uses the old name",
    )
    .fix(fix);
    if let Some(lock) = cx.existing_lock_on(&old) {
        v = v.lock(lock);
    }
    vec![v]
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_migration};

    const RULE: &str = "renaming-table";

    #[test]
    fn rename_without_a_view() {
        assert_snapshot!(check(RULE, "ALTER TABLE orders RENAME TO purchases;"), @"
        error[renaming-table] 1:1
          lock: ALTER ... RENAME takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          RENAME TO purchases on orders: application code already running still queries orders and fails until every instance is redeployed
          help: in the same transaction, create a view with the old name over the renamed table (simple views are updatable); drop the view once no code uses the old name
          fix:
            BEGIN;
            ALTER TABLE orders RENAME TO purchases;
            CREATE VIEW orders AS SELECT * FROM purchases;
            COMMIT;
        ");
    }

    #[test]
    fn a_view_after_commit_is_too_late() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders RENAME TO purchases;\nCOMMIT;\nCREATE VIEW orders AS SELECT * FROM purchases;"), @"
        error[renaming-table] 2:1
          lock: ALTER ... RENAME takes ACCESS EXCLUSIVE on orders: blocks reads and writes
          RENAME TO purchases on orders: application code already running still queries orders and fails until every instance is redeployed
          help: in the same transaction, create a view with the old name over the renamed table (simple views are updatable); drop the view once no code uses the old name
          fix:
            ALTER TABLE orders RENAME TO purchases;
            CREATE VIEW orders AS SELECT * FROM purchases;
        ");
    }

    #[test]
    fn a_view_in_the_same_transaction_keeps_old_code_working() {
        assert_snapshot!(check(RULE, "BEGIN;\nALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;\nCOMMIT;"), @"ok");
        assert_snapshot!(check_migration(RULE, "ALTER TABLE orders RENAME TO purchases;\nCREATE VIEW orders AS SELECT * FROM purchases;", true), @"ok");
    }
}
