//! The real binary with `sslmode` in DATABASE_URL, against the testkit's TLS cluster
//! (`ssl = on`, a certificate signed by a test CA): `status` and `migrate` connect
//! encrypted (the server's `pg_stat_ssl` says so), and a wrong root is refused with the
//! reason and the fix. The tests' own set-up sessions are plain (sslmode=disable): only
//! the binary speaks TLS.
#![allow(unused_crate_dependencies)] // a test crate uses some of the dev-dependencies

mod common;

use common::{fails, ok, pgcalm};
use pgcalm_testkit::tls::TlsCluster;

/// A migrations directory whose one migration records whether its session is encrypted.
fn tls_recording_migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("probe");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("0001_record_tls.sql"),
        "-- migrate:up\n\
         CREATE TABLE tls_seen AS SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n\n\
         -- migrate:down\n\
         DROP TABLE tls_seen;\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn status_and_migrate_connect_encrypted_with_sslmode_in_database_url() {
    let tls = TlsCluster::get();
    let db = tls.database("sslmode=disable").await;
    let migrations = tls_recording_migrations();

    let status = ok(pgcalm()
        .env("DATABASE_URL", tls.url(db.name(), "sslmode=require"))
        .env("PGCALM_MIGRATIONS_DIR", migrations.path())
        .arg("status"));
    assert!(status.contains("State:    reachable"), "{status}");
    assert!(
        status.contains("TLS:      TLSv1.") && status.contains("(sslmode=require)"),
        "{status}"
    );

    let url = tls.url(db.name(), &tls.verify_full());
    ok(pgcalm()
        .env("DATABASE_URL", &url)
        .env("PGCALM_MIGRATIONS_DIR", migrations.path())
        .args(["migrate", "probe"]));
    assert_eq!(
        db.query_i64("SELECT count(*) FROM tls_seen WHERE ssl")
            .await,
        1,
        "the migration ran in an encrypted session"
    );
}

#[tokio::test]
async fn a_wrong_root_is_refused_with_the_reason_and_the_fix() {
    let tls = TlsCluster::get();
    let db = tls.database("sslmode=disable").await;
    let migrations = tls_recording_migrations();
    let url = tls.url(
        db.name(),
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            tls.wrong_ca_file().display()
        ),
    );
    let err = fails(
        pgcalm()
            .env("DATABASE_URL", &url)
            .env("PGCALM_MIGRATIONS_DIR", migrations.path())
            .args(["migrate", "probe"]),
    );
    let port = tls.cluster().port();
    assert!(
        err.contains(&format!(
            "refusing the server at 127.0.0.1:{port} (sslmode=verify-full"
        )) && err.contains("unknown issuer")
            && err.contains("fix: set sslrootcert to the CA certificate"),
        "{err}"
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'tls_seen'")
            .await,
        0,
        "nothing ran"
    );
}
