//! A cluster CA and the certificates it signs, made with rcgen: what
//! `raft-node certs` writes for a real cluster and `raft-node cluster`
//! makes for a local one.
//!
//! The CA is `ca.pem` and `ca.key` in one directory; each certificate it
//! issues goes beside them as `<stem>.pem` and `<stem>.key`. Keys are
//! written readable by their owner only. A CA directory is opened again by
//! re-signing the CA's fixed subject with its stored key, which yields a
//! certificate every earlier one chains to, so new members can be issued
//! certificates later.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::peer::PeerTls;
use super::{TlsError, TlsFiles};
use crate::cluster_id::ClusterId;

/// The CA certificate's subject.
const CA_SUBJECT: &str = "raft-node cluster CA";

/// A CA that signs the certificates of one cluster.
pub struct ClusterCa {
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn write(path: PathBuf, contents: &str, private: bool) -> Result<PathBuf, TlsError> {
    let mode = if private { 0o600 } else { 0o644 };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .and_then(|mut f| {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(contents.as_bytes())
        })
        .map_err(|source| TlsError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

impl ClusterCa {
    fn params() -> Result<CertificateParams, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, CA_SUBJECT);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(params)
    }

    /// The CA in `dir`, made there first if `dir` holds none.
    ///
    /// # Errors
    ///
    /// The directory or its files cannot be read or written.
    pub fn open_or_create(dir: &Path) -> Result<ClusterCa, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let key_path = dir.join("ca.key");
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => KeyPair::from_pem(&pem)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate()?;
                write(key_path, &key.serialize_pem(), true)?;
                key
            }
            Err(e) => return Err(super::file_error(&key_path, e)),
        };
        let cert = Self::params()?.self_signed(&key)?;
        let ca = dir.join("ca.pem");
        if !ca.exists() {
            write(ca, &cert.pem(), false)?;
        }
        Ok(ClusterCa {
            dir: dir.to_owned(),
            cert,
            key,
        })
    }

    /// The CA certificate's file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues node `id` of `cluster` its certificate, for both ends of
    /// peer TLS and, being valid for the loopback addresses too, for a
    /// local API; written as `node-<id>.pem` and `node-<id>.key`.
    ///
    /// # Errors
    ///
    /// The files cannot be written.
    pub fn issue_node(&self, cluster: ClusterId, id: u64) -> Result<TlsFiles, TlsError> {
        let names = vec![PeerTls::name(cluster, id), "localhost".into()];
        let stem = format!("node-{id}");
        self.issue(&stem, names, true)
    }

    /// Issues an API client its certificate, named `name`; written as
    /// `<name>.pem` and `<name>.key`.
    ///
    /// # Errors
    ///
    /// The name is not a DNS name, or the files cannot be written.
    pub fn issue_client(&self, name: &str) -> Result<TlsFiles, TlsError> {
        self.issue(name, vec![name.to_owned()], false)
    }

    fn issue(&self, stem: &str, names: Vec<String>, server: bool) -> Result<TlsFiles, TlsError> {
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, stem.to_owned());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
            for ip in [
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ] {
                params.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(TlsFiles {
            ca: self.ca_path(),
            cert: write(self.dir.join(format!("{stem}.pem")), &cert.pem(), false)?,
            key: write(
                self.dir.join(format!("{stem}.key")),
                &key.serialize_pem(),
                true,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_loads_its_own_certificate_and_refuses_another_nodes_or_a_wildcard() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::open_or_create(dir.path()).unwrap();
        let cluster = ClusterId::of_name("c");
        let two = ca.issue_node(cluster, 2).unwrap();
        assert!(PeerTls::load(&two, cluster, 2, &[1, 2, 3]).is_ok());
        for (id, cluster) in [(3, cluster), (2, ClusterId::of_name("other"))] {
            let e = PeerTls::load(&two, cluster, id, &[])
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("not a certificate for"), "{e}");
        }
        let both = vec![PeerTls::name(cluster, 2), PeerTls::name(cluster, 3)];
        let both = ca.issue("two-nodes", both, true).unwrap();
        assert!(PeerTls::load(&both, cluster, 2, &[]).is_ok());
        let e = PeerTls::load(&both, cluster, 2, &[1, 2, 3])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a certificate for"), "{e}");
        let name = PeerTls::name(cluster, 2);
        let wildcard = format!("*{}", &name[name.find('.').unwrap()..]);
        let every = ca.issue("every-node", vec![wildcard], true).unwrap();
        let e = PeerTls::load(&every, cluster, 2, &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a certificate for"), "{e}");
    }

    #[test]
    fn opening_the_ca_again_signs_certificates_the_first_ca_file_trusts() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterCa::open_or_create(dir.path()).unwrap().ca_path();
        let before = std::fs::read(&first).unwrap();
        let again = ClusterCa::open_or_create(dir.path()).unwrap();
        assert_eq!(std::fs::read(again.ca_path()).unwrap(), before);
        let cluster = ClusterId::of_name("c");
        let files = again.issue_node(cluster, 4).unwrap();
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let roots = crate::tls::load_roots(&first).unwrap();
        let chain = crate::tls::load_certs(&files.cert).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(&chain[0], &[], rustls::pki_types::UnixTime::now())
            .unwrap();
    }
}
