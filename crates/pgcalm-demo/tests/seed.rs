//! `pgcalm seed` against a real server: counts, names, ids, reruns, truncate, cancel.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use std::sync::Mutex;

use common::{demo_db, seed_rows};
use pgcalm_demo::{SeedError, SeedEvent, SeedOptions, seed};
use pgcalm_pg::catalog::{RowCount, describe_table};
use pgcalm_testkit::TestDb;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// `(count, min id, max id, rows whose name/email do not match their id)`.
async fn large_summary(c: &Client) -> (i64, i64, i64, i64) {
    let r = c
        .query_one(
            "SELECT count(*), COALESCE(min(id), 0), COALESCE(max(id), 0),
                    count(*) FILTER (WHERE name <> 'User ' || id
                                        OR email <> 'user' || id || '@example.com')
             FROM large_email WHERE name LIKE 'User %'",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

async fn count(c: &Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Inserts one row the way the demo app does (id from the identity sequence).
async fn insert_with_default_id(c: &Client) -> i64 {
    c.query_one(
        "INSERT INTO large_email (name, email) VALUES ('Probe x', 'probe-x@example.com') RETURNING id",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn seeds_both_tables_with_names_matching_ids() {
    let db = demo_db().await;
    let events = Mutex::new(Vec::new());
    let opts = SeedOptions {
        large_count: 25_000,
        batch_size: 1_000,
        streams: 3,
        ..SeedOptions::default()
    };
    let report = seed(
        db.target(),
        &opts,
        &|e| events.lock().unwrap().push(e),
        Default::default(),
    )
    .await
    .unwrap();

    assert_eq!(
        (report.small_rows, report.large_rows, report.first_i),
        (10, 25_000, 1)
    );
    assert!(!report.cancelled);
    assert_eq!(report.streams, 3);
    let c = db.client().await;
    assert_eq!(large_summary(&c).await, (25_000, 1, 25_000, 0));
    let small: Vec<(i64, String, String)> = c
        .query("SELECT id, name, email FROM small_email ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(small.len(), 10);
    assert_eq!(small[0], (1, "User 1".into(), "user1@example.com".into()));
    assert_eq!(
        small[9],
        (10, "User 10".into(), "user10@example.com".into())
    );

    // The identity sequence was moved past the seeded ids: the app's next insert fits.
    assert_eq!(insert_with_default_id(&c).await, 25_001);

    // ANALYZE ran: the planner's estimate is there without a count.
    let described = describe_table(&c, "large_email", false).await.unwrap();
    assert!(
        matches!(described.rows, RowCount::Estimate(n) if n >= 25_000),
        "{:?}",
        described.rows
    );

    let events = events.into_inner().unwrap();
    assert!(events.contains(&SeedEvent::SmallInserted {
        rows: 10,
        first_i: 1
    }));
    assert!(events.contains(&SeedEvent::LargeStarted {
        total: 25_000,
        first_i: 1,
        streams: 3,
        batch_size: 1_000
    }));
    assert!(events.contains(&SeedEvent::LargeProgress {
        written: 25_000,
        committed: 25_000,
        total: 25_000
    }));
    assert_eq!(events.last(), Some(&SeedEvent::Analyzing));
}

#[tokio::test]
async fn rerun_counts_on_from_the_current_maximum() {
    let db = demo_db().await;
    seed_rows(&db, 1_000).await;
    let c = db.client().await;
    // The app added a row in between.
    assert_eq!(insert_with_default_id(&c).await, 1_001);

    let again = seed_rows(&db, 1_000).await;
    assert_eq!(again.first_i, 1_002);
    assert_eq!(count(&c, "large_email").await, 2_001);
    // Seeded rows: 1..=1000 and 1002..=2001, each named after its id.
    assert_eq!(large_summary(&c).await, (2_000, 1, 2_001, 0));
    assert_eq!(count(&c, "small_email").await, 20);
    let last_small: String = c
        .query_one("SELECT name FROM small_email ORDER BY id DESC LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last_small, "User 20");
    assert_eq!(insert_with_default_id(&c).await, 2_002);
}

#[tokio::test]
async fn truncate_empties_both_tables_first() {
    let db = demo_db().await;
    seed_rows(&db, 3_000).await;
    let opts = SeedOptions {
        large_count: 500,
        truncate: true,
        ..SeedOptions::default()
    };
    let events = Mutex::new(Vec::new());
    let report = seed(
        db.target(),
        &opts,
        &|e| events.lock().unwrap().push(e),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.first_i, 1);
    assert!(events.lock().unwrap().contains(&SeedEvent::Truncated));
    let c = db.client().await;
    assert_eq!(large_summary(&c).await, (500, 1, 500, 0));
    assert_eq!(count(&c, "small_email").await, 10);
    assert_eq!(insert_with_default_id(&c).await, 501);
}

#[tokio::test]
async fn cancelled_seed_keeps_committed_batches_and_a_consistent_table() {
    let db = demo_db().await;
    let cancel = CancellationToken::new();
    let opts = SeedOptions {
        large_count: 5_000_000,
        batch_size: 1_000,
        streams: 2,
        ..SeedOptions::default()
    };
    // Cancel (as Ctrl-C does) as soon as some batches are committed.
    let on_event = |e: SeedEvent| {
        if let SeedEvent::LargeProgress { committed, .. } = e
            && committed >= 5_000
        {
            cancel.cancel();
        }
    };
    let report = seed(db.target(), &opts, &on_event, cancel.clone())
        .await
        .unwrap();

    assert!(report.cancelled);
    assert!(
        report.large_rows >= 5_000 && report.large_rows < 5_000_000,
        "{report:?}"
    );
    assert_eq!(
        report.large_rows % 1_000,
        0,
        "only whole batches are committed"
    );
    let c = db.client().await;
    let (rows, min, max, mismatched) = large_summary(&c).await;
    assert_eq!(
        rows as u64, report.large_rows,
        "the report says exactly what stayed"
    );
    assert_eq!((min, mismatched), (1, 0));
    // The unused part of the reservation was given back: the next id follows the last row.
    assert_eq!(insert_with_default_id(&c).await, max + 1);
    // And a rerun counts on from there.
    let again = seed_rows(&db, 100).await;
    assert_eq!(again.first_i as i64, max + 2);
    assert_eq!(large_summary(&c).await.3, 0);
}

#[tokio::test]
async fn cancel_before_loading_commits_nothing_and_restores_the_sequence() {
    let db = demo_db().await;
    let cancel = CancellationToken::new();
    let on_event = |e: SeedEvent| {
        if matches!(e, SeedEvent::LargeStarted { .. }) {
            cancel.cancel();
        }
    };
    let opts = SeedOptions {
        large_count: 1_000_000,
        ..SeedOptions::default()
    };
    let report = seed(db.target(), &opts, &on_event, cancel.clone())
        .await
        .unwrap();
    assert!(report.cancelled);
    assert_eq!(report.large_rows, 0);
    let c = db.client().await;
    assert_eq!(count(&c, "large_email").await, 0);
    assert_eq!(insert_with_default_id(&c).await, 1);
}

#[tokio::test]
async fn concurrent_app_inserts_never_collide_with_seeded_ids() {
    let db = demo_db().await;
    let writer = db.client().await;
    let stop = CancellationToken::new();
    let inserts = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while !stop.is_cancelled() {
                ids.push(insert_with_default_id(&writer).await);
            }
            ids
        })
    };
    let report = seed_rows(&db, 50_000).await;
    stop.cancel();
    let probe_ids = inserts.await.unwrap();
    assert!(!probe_ids.is_empty());
    let c = db.client().await;
    assert_eq!(large_summary(&c).await.3, 0);
    assert_eq!(large_summary(&c).await.0, 50_000);
    let seeded = report.first_i as i64..report.first_i as i64 + 50_000;
    assert!(
        probe_ids.iter().all(|id| !seeded.contains(id)),
        "an app insert took a seeded id"
    );
    assert_eq!(
        count(&c, "large_email").await,
        50_000 + probe_ids.len() as i64
    );
}

#[tokio::test]
async fn missing_tables_are_named_with_the_fix() {
    let db = TestDb::new().await;
    let err = seed(
        db.target(),
        &SeedOptions::default(),
        &|_| {},
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SeedError::MissingTable {
                table: "small_email",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("pgcalm up"), "{err}");
}

#[tokio::test]
async fn zero_batch_size_is_refused() {
    let db = demo_db().await;
    let opts = SeedOptions {
        batch_size: 0,
        ..SeedOptions::default()
    };
    let err = seed(db.target(), &opts, &|_| {}, Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--batch-size"), "{err}");
}
