//! A test cluster that speaks TLS: `ssl = on` with a server certificate for `localhost`
//! and `127.0.0.1`, signed by a self-signed CA generated here, plus an unrelated CA (the
//! wrong root). Started once per test binary, beside the shared plain cluster.
//!
//! ```no_run
//! let tls = pgcalm_testkit::tls::TlsCluster::get();
//! let url = tls.url("postgres", &format!("sslmode=verify-full&sslrootcert={}", tls.ca_file().display()));
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use pgcalm_pg::Target;

use crate::{TestCluster, TestDb, write_server_file};

/// The TLS cluster and the files a client needs to trust it (or not).
pub struct TlsCluster {
    cluster: &'static TestCluster,
    ca: PathBuf,
    wrong_ca: PathBuf,
}

static TLS: OnceLock<TlsCluster> = OnceLock::new();

impl TlsCluster {
    /// The TLS cluster of this test binary, started on first call.
    pub fn get() -> &'static TlsCluster {
        TLS.get_or_init(Self::start)
    }

    fn start() -> TlsCluster {
        let ca_key = KeyPair::generate().expect("generating the CA key");
        let ca = ca_params("pgcalm test CA");
        let ca_pem = ca.self_signed(&ca_key).expect("signing the CA").pem();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().expect("generating the server key");
        let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server certificate names");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_pem = server
            .signed_by(&server_key, &issuer)
            .expect("signing the server certificate")
            .pem();
        let wrong_key = KeyPair::generate().expect("generating the wrong CA key");
        let wrong_pem = ca_params("some other CA")
            .self_signed(&wrong_key)
            .expect("signing the wrong CA")
            .pem();

        let mut client_files = None;
        let cluster = TestCluster::start_with(|dir| {
            let cert = dir.join("server.crt");
            let key = dir.join("server.key");
            write_server_file(&cert, server_pem.as_bytes());
            write_server_file(&key, server_key.serialize_pem().as_bytes());
            client_files = Some((
                write_client_file(dir, "ca.crt", &ca_pem),
                write_client_file(dir, "wrong-ca.crt", &wrong_pem),
            ));
            vec![
                ("ssl".into(), "on".into()),
                ("ssl_cert_file".into(), quote(&cert)),
                ("ssl_key_file".into(), quote(&key)),
            ]
        });
        let (ca, wrong_ca) = client_files.expect("the cluster was prepared");
        TlsCluster {
            cluster,
            ca,
            wrong_ca,
        }
    }

    /// The cluster (its port, its directory).
    pub fn cluster(&self) -> &'static TestCluster {
        self.cluster
    }

    /// The CA certificate that signed the server's certificate (PEM).
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    /// A CA certificate that did not sign it (PEM).
    pub fn wrong_ca_file(&self) -> &Path {
        &self.wrong_ca
    }

    /// A fresh database on the TLS cluster, reached with `query` (e.g.
    /// `sslmode=require`); its [`TestDb::url`] keeps the sslmode and sslrootcert.
    pub async fn database(&self, query: &str) -> TestDb {
        let name = crate::next_db_name();
        let url = self.url(&name, query);
        let target = Target::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        target
            .ensure_database()
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        TestDb { target, url }
    }

    /// `sslmode=verify-full&sslrootcert=<the right CA>`: the strictest way in.
    pub fn verify_full(&self) -> String {
        format!("sslmode=verify-full&sslrootcert={}", self.ca.display())
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DBNAME?QUERY` (no query when
    /// empty): the cluster's own URL, password included, for a child's environment.
    pub fn url(&self, dbname: &str, query: &str) -> String {
        let base = self
            .cluster
            .cluster()
            .url(dbname)
            .unwrap_or_else(|e| panic!("the TLS test cluster's URL: {e}"));
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

fn write_client_file(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// A `postgresql.conf` string value.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}
