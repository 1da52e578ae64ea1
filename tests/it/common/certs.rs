//! Test certificates made with the openssl CLI: a CA, a server certificate it signed for
//! `vm.example.invalid` and 127.0.0.1, a client certificate it signed, and a client
//! certificate from another CA (one the server does not trust).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::require_binary;

pub const SERVER_NAME: &str = "vm.example.invalid";

pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn make() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            format!("subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for ca in ["ca", "rogue-ca"] {
            new_key(
                d,
                ca,
                &["-x509", "-days", "2", "-out", &format!("{ca}.pem")],
            );
        }
        for (name, ca, ext) in [
            ("server", "ca", "server.ext"),
            ("client", "ca", "client.ext"),
            ("rogue-client", "rogue-ca", "client.ext"),
        ] {
            new_key(d, name, &["-out", &format!("{name}.csr")]);
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    ext,
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        Certs { dir }
    }

    /// `name.pem` or `name.key` in the folder.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// A P-256 key in `name.key` and, by `extra`, a self-signed certificate or a request for
/// one, with the subject CN=`name`.
fn new_key(dir: &Path, name: &str, extra: &[&str]) {
    let (key, subject) = (format!("{name}.key"), format!("/CN={name}"));
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    args.extend(["-keyout", &key, "-subj", &subject]);
    args.extend(extra);
    openssl(dir, &args);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require_binary("openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
