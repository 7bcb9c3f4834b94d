//! Certificates: a private CA and a leaf for every name the organisation answers to (and
//! 127.0.0.1), or one self-signed certificate, which Microsoft's service refuses.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::CertificateKind;
use crate::error::Error;

pub struct CertBundle {
    /// What a client should trust: the CA, or the self-signed certificate itself.
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl CertBundle {
    pub fn generate(kind: CertificateKind, names: &[String]) -> Result<Self, Error> {
        let tls = |e: rcgen::Error| Error::Tls(e.to_string());
        let mut sans: Vec<String> = vec!["127.0.0.1".into(), "localhost".into()];
        sans.extend(names.iter().cloned());
        let leaf_key = KeyPair::generate().map_err(tls)?;
        let mut leaf_params = CertificateParams::new(sans).map_err(tls)?;
        let cn = names.first().cloned().unwrap_or_else(|| "localhost".into());
        leaf_params.distinguished_name.push(DnType::CommonName, cn);
        match kind {
            CertificateKind::SelfSigned => {
                let cert = leaf_params.self_signed(&leaf_key).map_err(tls)?;
                Ok(Self {
                    ca_pem: cert.pem(),
                    chain: vec![cert.der().clone()],
                    key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
                })
            }
            CertificateKind::Trusted => {
                let ca_key = KeyPair::generate().map_err(tls)?;
                let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
                // A distinct name per CA: clients that trust several (one bundle) pick by name.
                ca_params.distinguished_name.push(
                    DnType::CommonName,
                    format!("fake-exchange test CA {:08x}", rand::random::<u32>()),
                );
                ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
                let issuer = Issuer::new(ca_params, ca_key);
                let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls)?;
                Ok(Self {
                    ca_pem: ca_cert.pem(),
                    chain: vec![leaf.der().clone(), ca_cert.der().clone()],
                    key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
                })
            }
        }
    }

    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .map_err(|e| Error::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
