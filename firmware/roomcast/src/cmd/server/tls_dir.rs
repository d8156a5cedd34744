//! The service's certificate kept in `--tls-dir`: `cert.pem` and `key.pem` (mode 0600, the
//! directory 0700), made self-signed on first start and reused after, so the fingerprint boxes
//! pin stays the same across restarts.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use roomcast_meeting::tls::{self, Fingerprint};

/// The certificate and key of a `--tls-dir`.
pub struct Identity {
    /// rustls' configuration serving them.
    pub config: rustls::ServerConfig,
    /// The certificate's SHA-256.
    pub fingerprint: Fingerprint,
    /// Where the certificate is (for `curl --cacert`).
    pub cert_path: PathBuf,
    /// Whether it was made now.
    pub created: bool,
}

/// Loads `dir/cert.pem` and `dir/key.pem`, or makes them for `names` when neither exists.
pub fn load_or_create(dir: &Path, names: Vec<String>) -> anyhow::Result<Identity> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let created = match (cert_path.exists(), key_path.exists()) {
        (true, true) => false,
        (false, false) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            let (cert, key) = tls::self_signed(names)?;
            write_new(&key_path, key.as_bytes(), 0o600)?;
            write_new(&cert_path, cert.as_bytes(), 0o644)?;
            true
        }
        _ => anyhow::bail!(
            "{} has only one of cert.pem and key.pem; remove it to make a new certificate (boxes must then pin the new fingerprint)",
            dir.display()
        ),
    };
    let mode =
        std::fs::metadata(&key_path).with_context(|| format!("reading {}", key_path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        anyhow::bail!("{} is readable by others (mode {:o}): chmod 600 it", key_path.display(), mode & 0o777);
    }
    let cert_pem = std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem = std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let (chain, key) = tls::parse_pem(&cert_pem, &key_pem)?;
    let fingerprint = Fingerprint::of(&chain[0]);
    let config = tls::server_config(chain, key)?;
    Ok(Identity { config, fingerprint, cert_path, created })
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_once_then_reuses_with_a_private_key() {
        let dir = std::env::temp_dir().join(format!("roomcast-tls-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create(&dir, vec!["localhost".into()]).unwrap();
        assert!(a.created);
        let mode = std::fs::metadata(dir.join("key.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&dir, vec!["localhost".into()]).unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint, b.fingerprint, "the same certificate after a restart");
        std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create(&dir, vec![]).is_err(), "a key readable by others is refused");
        std::fs::remove_file(dir.join("key.pem")).unwrap();
        assert!(load_or_create(&dir, vec![]).is_err(), "half a pair is refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
