//! How a remote is reached: its proxy and its TLS settings, applied to the HTTP client the
//! sender (and `check`) build. One place, so that the agent and `check` can never disagree.
//!
//! - `proxy_url`: an HTTP proxy for this remote only; https targets go through it with
//!   CONNECT, so the proxy never sees the metrics or the receiver's credentials. Without it
//!   no proxy is used at all: `HTTP_PROXY` and friends in the environment are ignored, so the
//!   config alone says where the data goes.
//! - `tls_cert_file`/`tls_key_file`: a client certificate for receivers that require one.
//! - `ca_file`: extra CAs to trust for the receiver's certificate.
//! - `tls_server_name`: the name the receiver's certificate is checked against (and sent as
//!   SNI) when `url` names the host by address: the request goes to that name, which this
//!   client alone resolves to `url`'s host (like curl's `--connect-to`).

use std::net::SocketAddr;
use std::path::Path;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::sender::{CaFileError, load_ca_file};
use crate::config::RemoteWriteConfig;
use crate::secret::read_secret_file;

/// A remote's proxy or TLS settings that cannot be used; names the remote.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("remote_write {remote:?}: {source}")]
    CaFile { remote: String, source: CaFileError },
    #[error("remote_write {remote:?}: {message}")]
    Setting { remote: String, message: String },
}

/// Applies the remote's proxy and TLS settings to `builder`; returns it with the URL to send
/// to (`url`, or with `tls_server_name` as its host).
pub fn apply(
    mut builder: reqwest::ClientBuilder,
    config: &RemoteWriteConfig,
) -> Result<(reqwest::ClientBuilder, url::Url), TransportError> {
    let setting = |message: String| TransportError::Setting {
        remote: config.name.clone(),
        message,
    };
    builder = match &config.proxy_url {
        Some(proxy_url) => builder.proxy(proxy(config, proxy_url).map_err(setting)?),
        None => builder.no_proxy(),
    };
    if let Some(path) = &config.ca_file {
        let certs = load_ca_file(path).map_err(|source| TransportError::CaFile {
            remote: config.name.clone(),
            source,
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(key_file)) = (&config.tls_cert_file, &config.tls_key_file) {
        builder = builder.identity(load_identity(cert, key_file).map_err(setting)?);
    }
    let mut url = config.url.clone();
    if let Some(name) = &config.tls_server_name {
        let host = match config.url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => return Err(setting("url has no host".into())),
        };
        url.set_host(Some(name))
            .map_err(|e| setting(format!("tls_server_name: {e}")))?;
        builder = builder.dns_resolver(std::sync::Arc::new(ConnectTo {
            name: name.to_ascii_lowercase(),
            host,
        }));
    }
    Ok((builder, url))
}

/// The proxy, with its basic auth read from `proxy_password_file` now.
fn proxy(config: &RemoteWriteConfig, url: &url::Url) -> Result<reqwest::Proxy, String> {
    let mut proxy =
        reqwest::Proxy::all(url.as_str()).map_err(|e| format!("proxy_url is not usable: {e}"))?;
    if let (Some(user), Some(file)) = (&config.proxy_user, &config.proxy_password_file) {
        let password = read_secret_file(file, "proxy_password_file").map_err(|e| e.to_string())?;
        proxy = proxy.basic_auth(user, password.expose());
    }
    Ok(proxy)
}

/// Reads the client certificate and its key (both PEM).
pub fn load_identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, String> {
    let mut pem = std::fs::read(cert)
        .map_err(|e| format!("cannot read tls_cert_file {}: {e}", cert.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "tls_cert_file {} holds no PEM certificate",
            cert.display()
        ));
    }
    let key_pem = std::fs::read(key)
        .map_err(|e| format!("cannot read tls_key_file {}: {e}", key.display()))?;
    if !String::from_utf8_lossy(&key_pem).contains("PRIVATE KEY-----") {
        return Err(format!(
            "tls_key_file {} holds no PEM private key",
            key.display()
        ));
    }
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        format!(
            "tls_cert_file {} and tls_key_file {} are not a usable certificate and key: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// Resolves `name` (the `tls_server_name`) to the addresses of `host` (the `url`'s host);
/// every other name as usual.
struct ConnectTo {
    name: String,
    host: String,
}

impl Resolve for ConnectTo {
    fn resolve(&self, name: Name) -> Resolving {
        let target = if name.as_str().eq_ignore_ascii_case(&self.name) {
            self.host.clone()
        } else {
            name.as_str().to_string()
        };
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.as_str(), 0))
                .await?
                .collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
