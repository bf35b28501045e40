//! `adding-primary-key`: `ADD PRIMARY KEY` (or `ADD COLUMN ... PRIMARY KEY`) on an
//! existing table builds its index (and checks NOT NULL) under ACCESS EXCLUSIVE.

use crate::engine::{Cx, Rule, Violation};
use crate::rule_id::RuleId;
use crate::rules::unique_like::{KeyKind, check_key};

/// The rule.
pub(super) static RULE: Rule = Rule {
    id: RuleId::AddingPrimaryKey,
    check,
};

fn check(cx: &Cx<'_>) -> Vec<Violation> {
    check_key(cx, KeyKind::PrimaryKey)
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use crate::rules::test_support::{check, check_pg};

    const RULE: &str = "adding-primary-key";

    #[test]
    fn table_level() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD PRIMARY KEY (id);"), @"
        error[adding-primary-key] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ADD PRIMARY KEY builds a unique index on events while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... PRIMARY KEY USING INDEX, which only takes a short lock. The key columns must be NOT NULL already (see primary-key-using-index-nullable).
          fix:
            ALTER TABLE events ADD CONSTRAINT events_id_not_null CHECK (id IS NOT NULL) NOT VALID;
            ALTER TABLE events VALIDATE CONSTRAINT events_id_not_null;
            CREATE UNIQUE INDEX CONCURRENTLY events_pkey ON events (id);
            ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey;
            ALTER TABLE events DROP CONSTRAINT events_id_not_null;
        ");
    }

    #[test]
    fn new_serial_column() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD COLUMN id bigserial PRIMARY KEY;"), @"
        error[adding-primary-key] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ADD PRIMARY KEY builds a unique index on events while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: add the column without PRIMARY KEY first (nullable, or with a constant default), then CREATE UNIQUE INDEX CONCURRENTLY and ADD CONSTRAINT ... PRIMARY KEY USING INDEX. The key columns must be NOT NULL already (see primary-key-using-index-nullable). (column id)
        ");
    }

    #[test]
    fn using_index_is_left_to_primary_key_using_index_nullable() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;"), @"ok");
    }

    #[test]
    fn columns_not_known_not_null_are_proven_first() {
        assert_snapshot!(check(RULE, "ALTER TABLE events ADD COLUMN note text, ADD PRIMARY KEY (id);"), @"
        error[adding-primary-key] 1:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ADD PRIMARY KEY builds a unique index on events while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... PRIMARY KEY USING INDEX, which only takes a short lock. The key columns must be NOT NULL already (see primary-key-using-index-nullable).
          fix:
            ALTER TABLE events ADD COLUMN note text;
            ALTER TABLE events ADD CONSTRAINT events_id_not_null CHECK (id IS NOT NULL) NOT VALID;
            ALTER TABLE events VALIDATE CONSTRAINT events_id_not_null;
            CREATE UNIQUE INDEX CONCURRENTLY events_pkey ON events (id);
            ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey;
            ALTER TABLE events DROP CONSTRAINT events_id_not_null;
        ");
        // Before PostgreSQL 12 a CHECK does not spare the scan: no fix.
        assert!(!check_pg(RULE, "ALTER TABLE events ADD PRIMARY KEY (id);", 11).contains("fix:"));
        // Known NOT NULL: no check needed.
        assert_snapshot!(check(RULE, "ALTER TABLE events ALTER COLUMN id SET NOT NULL;\nALTER TABLE events ADD PRIMARY KEY (id);"), @"
        error[adding-primary-key] 2:1
          lock: ALTER TABLE takes ACCESS EXCLUSIVE on events: blocks reads and writes
          ADD PRIMARY KEY builds a unique index on events while holding ACCESS EXCLUSIVE: reads and writes wait for the whole build
          help: build the index first with CREATE UNIQUE INDEX CONCURRENTLY (reads and writes go on; outside a transaction), then attach it with ADD CONSTRAINT ... PRIMARY KEY USING INDEX, which only takes a short lock. The key columns must be NOT NULL already (see primary-key-using-index-nullable).
          fix:
            CREATE UNIQUE INDEX CONCURRENTLY events_pkey ON events (id);
            ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey;
        ");
    }
    #[test]
    fn a_key_swap_is_not_split_into_a_drop_then_an_add() {
        // hatchet v0_44_8.sql:7: dropping the old key alone first would leave the table
        // without a replica identity until the new one is attached.
        let out = check(
            RULE,
            "SET lock_timeout = '2s';\nALTER TABLE events DROP CONSTRAINT events_pkey, DROP COLUMN id, ADD PRIMARY KEY (step_id);",
        );
        assert!(!out.contains("fix:"), "{out}");
        assert!(
            out.contains(
                "DROP CONSTRAINT events_pkey, ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX"
            ),
            "{out}"
        );
    }
}
