//! vmauth with config/vmauth.example.yml: the write-only ingress in front of a real
//! VictoriaMetrics, accepting one bearer token for /api/v1/write only.

use std::process::{Child, Command, Stdio};

use super::require_binary;
use super::servers::{VictoriaMetrics, start_on_free_port};

pub const TOKEN: &str = "dmz-write-token-0123456789";
const EXAMPLE: &str = include_str!("../../../config/vmauth.example.yml");

pub struct Vmauth {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Vmauth {
    pub async fn start(vm: &VictoriaMetrics) -> Vmauth {
        let dir = tempfile::tempdir().unwrap();
        let config = EXAMPLE
            .replace("REPLACE_WITH_THE_DMZ_WRITE_TOKEN", TOKEN)
            .replace("http://127.0.0.1:8428", &vm.base_url());
        assert_ne!(config, EXAMPLE);
        let path = dir.path().join("auth.yml");
        std::fs::write(&path, config).unwrap();
        let spawn = |port: u16| {
            Command::new(require_binary("vmauth"))
                .arg(format!("-auth.config={}", path.display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-loggerLevel=ERROR")
                // As the example asks for a port that faces the DMZ.
                .args(
                    [
                        "-metricsAuthKey",
                        "-pprofAuthKey",
                        "-flagsAuthKey",
                        "-reloadAuthKey",
                    ]
                    .map(|f| format!("{f}=not-the-dmz-token")),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let (port, child) = start_on_free_port("vmauth", "/health", spawn).await;
        Vmauth {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Vmauth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
