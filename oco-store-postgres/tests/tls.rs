//! Encrypted connections: with `sslmode=require` the store connects with TLS and accepts only a
//! server whose certificate the given CA (or the system) vouches for. Needs the throwaway
//! cluster's TLS listener (`OCO_TEST_POSTGRES_TLS`, `OCO_TEST_POSTGRES_CA`: see
//! `scripts/throwaway-cluster.sh`); skipped, saying so, without it unless
//! `OCO_REQUIRE_POSTGRES=1`.

// Test fixtures fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::TestDatabase;
use oco_core::store::{Store, StoreError};
use oco_store_postgres::testing::env_or_skip;
use oco_store_postgres::{Options, PgStore};

/// The TLS URL and the CA file, or `None` (after saying so) when the tests are to be skipped.
fn tls(test: &str) -> Option<(String, PathBuf)> {
    let vars = env_or_skip(test, &["OCO_TEST_POSTGRES_TLS", "OCO_TEST_POSTGRES_CA"])?;
    Some((vars[0].clone(), PathBuf::from(&vars[1])))
}

#[test]
fn with_sslmode_require_the_store_connects_encrypted_and_verifies_the_server() {
    let test = "with_sslmode_require_the_store_connects_encrypted_and_verifies_the_server";
    let (Some(db), Some((url, ca))) = (TestDatabase::get(test), tls(test)) else {
        return;
    };
    let name = format!("oco_tls_test_{}", std::process::id());
    let schema = db.schema();
    let options = Options {
        ca_file: Some(ca.clone()),
        ..db.options(&schema)
    };
    let store = PgStore::connect_with(&format!("{url}&application_name={name}"), &options).unwrap();
    assert!(store
        .list_computers(oco_core::store::Page::first(1))
        .unwrap()
        .is_empty());
    // Every session of the store is encrypted, as the server sees it.
    let mut admin = db.client(None);
    let row = admin
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&name],
        )
        .unwrap();
    let (sessions, encrypted): (i64, bool) = (row.get(0), row.get(1));
    assert!(
        sessions >= 1 && encrypted,
        "{sessions} session(s), encrypted: {encrypted}"
    );

    // A server the system's certificates do not vouch for (this one's CA was made for the
    // test) is refused.
    let err = PgStore::connect_with(&url, &db.options(&db.schema())).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn a_ca_file_without_tls_or_without_certificates_is_refused_naming_it() {
    let test = "a_ca_file_without_tls_or_without_certificates_is_refused_naming_it";
    let (Some(db), Some((url, ca))) = (TestDatabase::get(test), tls(test)) else {
        return;
    };
    let options = |ca: PathBuf| Options {
        ca_file: Some(ca),
        ..Options::default()
    };
    // The CA would never be used: the plain URL does not ask for TLS.
    let err = PgStore::connect_with(&db.url, &options(ca.clone())).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("add sslmode=require"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let err = PgStore::connect_with(&url, &options(not_pem.clone())).unwrap_err();
    assert!(
        err.to_string().contains(&not_pem.display().to_string())
            && err.to_string().contains("no PEM certificate"),
        "{err}"
    );
    let missing = dir.path().join("missing.pem");
    let err = PgStore::connect_with(&url, &options(missing.clone())).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}
