//! What a lock is taken on: a relation named as written, or what a statement names
//! only indirectly (the table of an index, every index of a table, every table).

use std::fmt;

use pg_query::NodeEnum;
use pg_query::protobuf::RangeVar;
use serde::Serialize;

/// A relation name as written (`schema.name` or `name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RelName {
    /// Schema when qualified.
    pub schema: Option<String>,
    /// The relation.
    pub name: String,
}

impl RelName {
    /// From a parse-tree `RangeVar`.
    pub fn from_range_var(r: &RangeVar) -> RelName {
        RelName {
            schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
            name: r.relname.clone(),
        }
    }

    /// From a qualified-name list (`DROP TABLE a.b`): the last two strings.
    pub fn from_names(names: &[pg_query::Node]) -> Option<RelName> {
        let parts: Vec<&str> = names
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            })
            .collect();
        match parts.as_slice() {
            [] => None,
            [.., name] => Some(RelName {
                schema: (parts.len() > 1).then(|| parts[parts.len() - 2].to_string()),
                name: name.to_string(),
            }),
        }
    }

    /// Whether two names may be the same relation (an unqualified name matches any
    /// schema: lint does not know the search_path).
    pub fn same_as(&self, other: &RelName) -> bool {
        self.name == other.name
            && match (&self.schema, &other.schema) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for RelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The relation a lock is taken on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum LockTarget {
    /// A table (or view, materialized view, sequence) named in the statement.
    Table(RelName),
    /// An index named in the statement.
    Index(RelName),
    /// The table an index belongs to (the statement names only the index).
    TableOfIndex(RelName),
    /// Every index of a table (`REINDEX TABLE`).
    IndexesOf(RelName),
    /// Every table of the database (`VACUUM` with no table, `REINDEX DATABASE`).
    Database,
}

impl LockTarget {
    /// Whether two targets may be the same relation (names compared with
    /// [`RelName::same_as`]: `post` and `public.post` may be).
    pub fn same_as(&self, other: &LockTarget) -> bool {
        match (self, other) {
            (LockTarget::Table(a), LockTarget::Table(b))
            | (LockTarget::Index(a), LockTarget::Index(b))
            | (LockTarget::TableOfIndex(a), LockTarget::TableOfIndex(b))
            | (LockTarget::IndexesOf(a), LockTarget::IndexesOf(b)) => a.same_as(b),
            (LockTarget::Database, LockTarget::Database) => true,
            _ => false,
        }
    }

    /// The table this lock lands on, when the statement names it.
    pub fn table(&self) -> Option<&RelName> {
        match self {
            LockTarget::Table(t) | LockTarget::IndexesOf(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for LockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockTarget::Table(t) => write!(f, "{t}"),
            LockTarget::Index(i) => write!(f, "index {i}"),
            LockTarget::TableOfIndex(i) => write!(f, "the table of index {i}"),
            LockTarget::IndexesOf(t) => write!(f, "the indexes of {t}"),
            LockTarget::Database => f.write_str("every table"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(schema: Option<&str>, name: &str) -> RelName {
        RelName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }

    #[test]
    fn an_unqualified_name_may_be_any_schemas() {
        assert!(name(None, "t").same_as(&name(Some("public"), "t")));
        assert!(name(Some("a"), "t").same_as(&name(Some("a"), "t")));
        assert!(!name(Some("a"), "t").same_as(&name(Some("b"), "t")));
        assert!(!name(None, "t").same_as(&name(None, "u")));
        assert!(
            LockTarget::Table(name(None, "t")).same_as(&LockTarget::Table(name(Some("s"), "t")))
        );
        assert!(!LockTarget::Table(name(None, "t")).same_as(&LockTarget::Index(name(None, "t"))));
        assert_eq!(
            LockTarget::IndexesOf(name(None, "t")).table(),
            Some(&name(None, "t"))
        );
        assert_eq!(LockTarget::TableOfIndex(name(None, "i")).table(), None);
    }

    #[test]
    fn names_read_as_written() {
        assert_eq!(name(Some("s"), "t").to_string(), "s.t");
        assert_eq!(LockTarget::Index(name(None, "i")).to_string(), "index i");
        assert_eq!(LockTarget::Database.to_string(), "every table");
        let Some(NodeEnum::DropStmt(d)) = crate::split::parse_first("DROP TABLE db.s.t") else {
            panic!();
        };
        let Some(NodeEnum::List(l)) = &d.objects[0].node else {
            panic!();
        };
        assert_eq!(RelName::from_names(&l.items), Some(name(Some("s"), "t")));
    }
}
