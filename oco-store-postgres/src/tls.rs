//! Encrypted connections. A URL with `sslmode=require` connects with TLS (rustls) and verifies
//! the server's certificate and name against [`Options::ca_file`](crate::Options::ca_file), or
//! the system's trusted certificates without one: what libpq calls `verify-full`. `disable` and
//! `prefer` (the client's default) connect without TLS.

use std::path::Path;
use std::sync::Arc;

use oco_core::store::{StoreError, StoreResult};
use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the store's connections are made.
pub(crate) enum Connector {
    Plain,
    Tls(MakeRustlsConnect),
}

impl Connector {
    /// The connector for `config`: TLS when it says `sslmode=require`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] if `ca_file` cannot be read or holds no certificate, if it is given
    /// without `sslmode=require`, or if TLS is required and no certificate is trusted.
    pub(crate) fn for_config(config: &Config, ca_file: Option<&Path>) -> StoreResult<Connector> {
        if config.get_ssl_mode() != SslMode::Require {
            return match ca_file {
                Some(path) => Err(invalid(format!(
                    "a CA file ({}) is given, but the connection string does not ask for TLS: \
                     add sslmode=require",
                    path.display()
                ))),
                None => Ok(Connector::Plain),
            };
        }
        let roots = match ca_file {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        // ring, which the connector needs anyway, rather than aws-lc (a large C build). rustls
        // deprecates ring's provider for lacking post-quantum key exchange: a database
        // connection inside the operator's network can do without it.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector::Tls(MakeRustlsConnect::new(tls)))
    }

    /// A new connection.
    pub(crate) fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Connector::Plain => config.connect(NoTls),
            Connector::Tls(tls) => config.connect(tls.clone()),
        }
    }
}

fn roots_from_file(path: &Path) -> StoreResult<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
    for certificate in certificates {
        let certificate =
            certificate.map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
        roots
            .add(certificate)
            .map_err(|e| invalid(format!("CA file {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(invalid(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(roots)
}

fn system_roots() -> StoreResult<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // Certificates the system lists but rustls cannot use are left out, as browsers do.
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(invalid(format!(
            "sslmode=require, but the system trusts no certificate{why}: give a CA file"
        )));
    }
    Ok(roots)
}

fn invalid(reason: String) -> StoreError {
    StoreError::Invalid { reason }
}
