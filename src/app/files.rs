//! `--check-config`: the checks that touch the file system, reported all at once so that one
//! run lists every problem. They live at app level, not in the config layer, because they ask
//! the stages that use the files (the sender for a CA file, sessions for the GeoIP database).

use std::path::Path;

use crate::config::Config;
use crate::secret::read_secret_file;

/// Returns one line per problem; empty when everything the config names is usable.
pub fn check_files(c: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = read_secret_file(&c.jellyfin.token_file, "jellyfin.token_file") {
        problems.push(e.to_string());
    }
    for rw in &c.remote_write {
        let key = format!("remote_write {:?}", rw.name);
        let secrets = [
            (&rw.bearer_token_file, "bearer_token_file"),
            (&rw.basic_auth_password_file, "basic_auth_password_file"),
        ];
        for (path, what) in secrets {
            if let Some(Err(e)) = path.as_deref().map(|p| read_secret_file(p, what)) {
                problems.push(format!("{key}: {e}"));
            }
        }
        let tls = [
            ("ca_file", rw.ca_file.is_some()),
            ("tls_cert_file", rw.tls_cert_file.is_some()),
            ("tls_server_name", rw.tls_server_name.is_some()),
        ];
        if let (Some((name, _)), "http") = (tls.iter().find(|(_, set)| *set), rw.url.scheme()) {
            problems.push(format!(
                "{key}: {name} is set but url is http://, which has no TLS: it is not used"
            ));
        }
        if let Some(hint) = super::hints::silent_path(&rw.url) {
            problems.push(format!("{key}: url: {hint}"));
        }
        // The proxy password, CA, client certificate and key files, as the sender loads them;
        // the message names the remote itself.
        if let Err(e) = crate::remote_write::transport::apply(reqwest::Client::builder(), rw) {
            problems.push(e.to_string());
        }
    }
    if let Some(Err(e)) = c
        .collectors
        .sessions
        .geoip_database
        .as_deref()
        .map(crate::collectors::sessions_geoip_check)
    {
        problems.push(e.to_string());
    }
    if c.remote_write.is_empty() {
        problems.push(
            "no [[remote_write]] target: the agent would have nowhere to push \
                       (only --once works without one)"
                .into(),
        );
    }
    if let Err(e) = check_writable_dir(&c.state_dir) {
        problems.push(format!("state_dir {}: {e}", c.state_dir.display()));
    }
    problems
}

/// Creates the folder when missing and proves it writable with a throwaway file.
fn check_writable_dir(dir: &Path) -> std::io::Result<()> {
    crate::state_file::create_private_dir(dir)?;
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
