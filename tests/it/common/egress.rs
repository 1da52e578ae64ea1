//! The DMZ's way out, with the real Debian servers: tinyproxy (an HTTP proxy with CONNECT and
//! basic auth, logging every request) and nginx terminating TLS in front of VictoriaMetrics
//! and requiring a client certificate. Both listen on 127.0.0.1 with their own config.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::certs::Certs;
use super::{free_port, require_binary, wait_for};

pub const PROXY_USER: &str = "dmz";
pub const PROXY_PASSWORD: &str = "proxy-secret-4711";

/// Waits until something accepts TCP connections on `port`, while `child` runs.
async fn listening(child: &mut Child, port: u16) -> bool {
    for _ in 0..100 {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Starts `spawn(port)` on free ports until one works (another test may take the port).
async fn start(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (u16, Child) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        if listening(&mut child, port).await {
            return (port, child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} did not start on any of 5 free ports")
}

pub struct Tinyproxy {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// A proxy that wants `PROXY_USER`/`PROXY_PASSWORD`.
    pub async fn start() -> Tinyproxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        let (port, child) = start("tinyproxy", |port| {
            std::fs::write(
                &conf,
                format!(
                    "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\n\
                     MaxClients 20\nAllow 127.0.0.1\nBasicAuth {PROXY_USER} {PROXY_PASSWORD}\nDisableViaHeader Yes\n",
                    log.display()
                ),
            )
            .unwrap();
            Command::new(require_binary("tinyproxy"))
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tinyproxy")
        })
        .await;
        Tinyproxy {
            port,
            child,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the proxy's log holds `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        wait_for(
            &format!("{needle:?} in tinyproxy's log"),
            Duration::from_secs(20),
            || async { self.log().contains(needle).then_some(()) },
        )
        .await;
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on 127.0.0.1 with the server certificate of `certs`, requiring a client certificate
/// signed by its CA, proxying to `upstream` (a VictoriaMetrics base URL).
pub struct Nginx {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    pub async fn start(certs: &Certs, upstream: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_path_buf();
        let (port, child) = start("nginx", |port| {
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
                 http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/body;\n\
                 proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n\
                 scgi_temp_path {d}/scgi;\n\
                 server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {name};\n\
                 ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
                 ssl_client_certificate {ca};\n  ssl_verify_client on;\n\
                 location / {{ proxy_pass {upstream}; }}\n }}\n}}\n",
                d = d.display(),
                name = super::certs::SERVER_NAME,
                cert = certs.path("server.pem").display(),
                key = certs.path("server.key").display(),
                ca = certs.path("ca.pem").display(),
            );
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            Command::new(require_binary("nginx"))
                .arg("-p")
                .arg(&d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(d.join("error.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx")
        })
        .await;
        Nginx { port, child, dir }
    }

    /// The https write URL, by address.
    pub fn write_url(&self) -> String {
        format!("https://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// nginx's access log: one line per request, with its status.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
