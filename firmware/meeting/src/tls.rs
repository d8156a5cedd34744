//! TLS for the control API (rustls with the ring provider): the service's self-signed
//! certificate (rcgen), its SHA-256 fingerprint as `sha256:HEX`, and the box's verifier that pins
//! that fingerprint instead of trusting a CA. No IO here: the `roomcast server` driver keeps the
//! certificate in `--tls-dir`, the box's client opens the connections.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::MeetingError;

/// The SHA-256 digest of a certificate (its DER bytes), written `sha256:` and 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &Fingerprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = MeetingError;
    /// `sha256:` then 64 hex digits, upper or lower case, optionally in `:`-separated pairs
    /// (as `openssl x509 -fingerprint -sha256` prints them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MeetingError::Invalid("a fingerprint is sha256: and 64 hex digits".into());
        let hex = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("SHA256:")).ok_or_else(bad)?;
        let digits: Vec<u8> = hex.bytes().filter(|&c| c != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// The crypto provider every TLS configuration here uses (ring: no C toolchain beyond `cc`).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A new self-signed certificate (ECDSA P-256) for `names` (DNS names or IP addresses):
/// the certificate and the PKCS#8 private key, both PEM.
pub fn self_signed(names: Vec<String>) -> Result<(String, String), MeetingError> {
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| MeetingError::Tls(e.to_string()))?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// The service's TLS configuration for one certificate chain and key (DER), HTTP/1.1 by ALPN.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, MeetingError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| MeetingError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| MeetingError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// PEM text to DER: the certificates and the private key of a `--tls-dir`.
pub fn parse_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), MeetingError> {
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MeetingError::Tls(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(MeetingError::Tls("no certificate in the PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| MeetingError::Tls(format!("private key: {e}")))?;
    Ok((chain, key))
}

/// The first certificate of a PEM text (the leaf).
pub fn leaf_of(cert_pem: &[u8]) -> Result<CertificateDer<'static>, MeetingError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(cert_pem).map_err(|e| MeetingError::Tls(format!("certificate: {e}")))
}

/// A PKCS#8 DER key, for tests that make certificates in memory.
pub fn pkcs8(der: Vec<u8>) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))
}

/// The box's client configuration: trust exactly the certificate with this fingerprint (the
/// service's self-signed one; its names and dates are not checked, the pin is the identity).
pub fn pinned_client_config(expected: Fingerprint) -> Result<rustls::ClientConfig, MeetingError> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier { expected, provider: provider.clone() });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MeetingError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The box's client configuration trusting the CA certificates of a PEM text (`ca_file`), with
/// the usual name and date checks (webpki).
pub fn ca_client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, MeetingError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| MeetingError::Tls(format!("CA file: {e}")))?;
        roots.add(cert).map_err(|e| MeetingError::Tls(format!("CA file: {e}")))?;
    }
    if roots.is_empty() {
        return Err(MeetingError::Tls("the CA file holds no certificate".into()));
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| MeetingError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The error a [`PinnedVerifier`] refuses a certificate with; the client finds it in the
/// handshake error with [`fingerprint_mismatch`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("certificate fingerprint {got}, expected {expected}")]
pub struct Mismatch {
    /// The pinned fingerprint.
    pub expected: Fingerprint,
    /// The presented certificate's.
    pub got: Fingerprint,
}

/// Accepts only the leaf certificate whose SHA-256 is the pinned one; handshake signatures
/// are still verified against that certificate's key.
#[derive(Debug)]
pub struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if got.matches(&self.expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(Mismatch {
                expected: self.expected,
                got,
            })))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The pin mismatch inside a failed handshake's error chain (rustls wraps it in an
/// `io::Error`), if that is why it failed.
pub fn fingerprint_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<Mismatch> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(o))) = e.downcast_ref::<rustls::Error>() {
            if let Some(m) = o.0.downcast_ref::<Mismatch>() {
                return Some(m.clone());
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                cur = Some(inner);
                continue;
            }
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse() {
        let fp = Fingerprint::of(b"certificate bytes");
        let text = fp.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64, "{text}");
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let colons: String = text.as_bytes()[7..]
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(format!("SHA256:{colons}").parse::<Fingerprint>().unwrap(), fp);
        assert!("sha256:abcd".parse::<Fingerprint>().is_err());
        assert!(text[7..].parse::<Fingerprint>().is_err(), "needs the sha256: prefix");
        assert!(format!("sha256:{}", "zz".repeat(32)).parse::<Fingerprint>().is_err());
        assert!(!fp.matches(&Fingerprint::of(b"other")));
    }

    #[test]
    fn self_signed_certificates_load_and_pin() {
        let (cert, key) = self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (chain, key) = parse_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let fp = Fingerprint::of(&chain[0]);
        assert_eq!(Fingerprint::of(&leaf_of(cert.as_bytes()).unwrap()), fp);
        server_config(chain.clone(), key).unwrap();
        let v = PinnedVerifier { expected: fp, provider: provider() };
        let name = ServerName::try_from("localhost").unwrap();
        assert!(v.verify_server_cert(&chain[0], &[], &name, &[], UnixTime::now()).is_ok());
        let other = PinnedVerifier { expected: Fingerprint::of(b"x"), provider: provider() };
        let err = other.verify_server_cert(&chain[0], &[], &name, &[], UnixTime::now()).unwrap_err();
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        let m = fingerprint_mismatch(&io).expect("the mismatch is found in the io error");
        assert_eq!(m.got, fp);
        assert_eq!(m.expected, Fingerprint::of(b"x"));
        assert!(ca_client_config(cert.as_bytes()).is_ok());
        assert!(ca_client_config(b"no pem here").is_err());
        assert!(parse_pem(b"", b"").is_err());
    }
}
