//! TLS as every source connection uses it (IMAP, Autodiscover and EWS over HTTPS, LDAPS): the
//! certificate verified against the system's CAs plus an optional CA file, a pinned self-signed
//! certificate given as that file, and untrusted certificates let through only when the
//! endpoint accepts them (remembered, for a Warning).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Why no TLS client could be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSetupError {
    #[error("CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// Which protocol a failure is advised for (the flags to name differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Https,
    Ldaps,
}

/// Verifies normally, but when the endpoint accepts untrusted certificates, lets a failing
/// chain through and remembers that it did (for a Warning).
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    /// The CA file's certificates: one of them may be the server's own self-signed certificate.
    pinned: Vec<CertificateDer<'static>>,
    accept_untrusted: bool,
    untrusted: Arc<AtomicBool>,
}

impl Verifier {
    /// A self-signed certificate made with `openssl req -x509` is marked CA:TRUE, which webpki
    /// refuses as a server's certificate. When it is byte for byte a certificate the admin gave
    /// as the CA file, it is trusted as pinned, but only for the names it was issued for. Its
    /// validity period was checked before webpki got to the CA flag.
    fn pinned_self_signed(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        error: &rustls::Error,
    ) -> Option<Result<ServerCertVerified, rustls::Error>> {
        let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = error
        else {
            return None;
        };
        let ca_as_server = matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        );
        if !ca_as_server
            || !self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return None;
        }
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity);
        Some(
            parsed
                .and_then(|c| rustls::client::verify_server_name(&c, server_name))
                .map(|()| ServerCertVerified::assertion()),
        )
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            Err(e) => match self.pinned_self_signed(end_entity, server_name, &e) {
                Some(pinned) => pinned,
                None => Err(e),
            },
        }
        .or_else(|e| {
            if self.accept_untrusted {
                self.untrusted.store(true, Ordering::SeqCst);
                Ok(ServerCertVerified::assertion())
            } else {
                Err(e)
            }
        })
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The system's CAs, read once per process: reading and parsing the system store took a tenth
/// of a cutover's CPU when every mailbox's connection did it again.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

/// A client configuration trusting the system's CAs and `ca_file`; with `accept_untrusted`, a
/// certificate that fails verification is let through and `untrusted` set.
pub fn client_config(
    ca_file: Option<&Path>,
    accept_untrusted: bool,
    untrusted: Arc<AtomicBool>,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = system_roots().clone();
    let pinned = match ca_file {
        Some(path) => add_ca_file(&mut roots, path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsSetupError::Config(format!("no usable CA certificates: {e}")))?;
    let verifier = Verifier {
        inner,
        pinned,
        accept_untrusted,
        untrusted,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds a PEM file's certificates to the roots; returns them.
fn add_ca_file(
    roots: &mut rustls::RootCertStore,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let err = |message: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    for c in &certs {
        roots.add(c.clone()).map_err(|e| err(e.to_string()))?;
    }
    Ok(certs)
}

/// A TLS failure in words that say what to try next, with rustls's own words after them.
pub fn advice(e: &io::Error, host: &str, protocol: Protocol) -> String {
    use rustls::CertificateError as C;
    let raw = e.to_string();
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return raw;
    };
    let advice = match tls {
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!(
                "the server's certificate is not valid for the name {host}: use a name it was issued for"
            )
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the server's certificate is outside its validity period".to_string(),
        rustls::Error::InvalidCertificate(_) => "the server's certificate is not trusted: give the CA that issued it (or the server's own certificate) with --ca-file FILE, or accept it with --accept-untrusted-certificates".to_string(),
        rustls::Error::InvalidMessage(_) => match protocol {
            Protocol::Imap => "the server did not answer in TLS: with --security ssl the port must speak TLS from the first byte (usually 993); a plain port (143) takes --security tls (STARTTLS) or none".to_string(),
            Protocol::Https => format!("{host} did not answer in TLS: is this an HTTPS port (443)?"),
            Protocol::Ldaps => format!("{host} did not answer in TLS: LDAPS listens on 636, plain LDAP on 389"),
        },
        _ => return raw,
    };
    format!("{advice} ({raw})")
}
