//! Checks that need no file system: every message names the offending key.

use std::collections::HashSet;
use std::time::Duration;

use super::Config;

/// Every problem of `c`, one message each (empty when there is none): `--check-config`
/// promises them all at once, not one per run.
pub(super) fn validate(c: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    check_url("jellyfin.url", &c.jellyfin.url, &mut problems);
    // The API key goes with every request: it is an admin credential.
    check_cleartext(
        "jellyfin",
        &c.jellyfin.url,
        "the API key",
        c.jellyfin.insecure_http,
        &mut problems,
    );
    if !(1..=10_000).contains(&c.collectors.inventory.page_size) {
        problems.push("collectors.inventory.page_size must be 1 to 10000".into());
    }
    let inventory = &c.collectors.inventory;
    if inventory.min_page_size == 0 {
        problems.push("collectors.inventory.min_page_size must be at least 1".into());
    }
    if inventory.page_timeout.is_zero() {
        problems.push("collectors.inventory.page_timeout must be more than 0s".into());
    }
    if c.collectors.sessions.active_within < Duration::from_secs(1) {
        problems.push("collectors.sessions.active_within must be at least 1s".into());
    }
    if c.jellyfin.timeout.is_zero() {
        problems.push("jellyfin.timeout must be more than 0s".into());
    }
    if c.jellyfin.max_response_size < 1024 {
        problems.push("jellyfin.max_response_size must be at least 1KiB".into());
    }
    if c.collect.interval < Duration::from_secs(1) {
        problems.push("collect.interval must be at least 1s".into());
    }
    for (name, _, interval) in c.collectors.toggles() {
        if interval.is_some_and(|i| i < Duration::from_secs(1)) {
            problems.push(format!("collectors.{name}.interval must be at least 1s"));
        }
    }
    if let Some(level) = c
        .log_level
        .as_deref()
        .filter(|l| tracing_subscriber::EnvFilter::try_new(l).is_err())
    {
        problems.push(format!(
            "log_level {level:?} is not a level or RUST_LOG-style filter"
        ));
    }
    for (name, value) in &c.labels {
        if !is_label_name(name) || name.starts_with("__") {
            problems.push(format!(
                "labels.{name}: not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            ));
        }
        if value.is_empty() {
            problems.push(format!(
                "labels.{name}: the value is empty (an empty label is no label)"
            ));
        }
    }
    let mut names = HashSet::new();
    for (i, rw) in c.remote_write.iter().enumerate() {
        let key = format!("remote_write[{i}] (name {:?})", rw.name);
        let name_ok = !rw.name.is_empty()
            && rw.name.len() <= 64
            && rw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            problems.push(format!(
                "{key}: name must be 1-64 characters of [A-Za-z0-9_-]"
            ));
        }
        if !names.insert(rw.name.as_str()) {
            problems.push(format!(
                "{key}: the name is used twice; each target needs its own"
            ));
        }
        check_url(&format!("{key}.url"), &rw.url, &mut problems);
        if rw.bearer_token_file.is_some()
            && (rw.basic_auth_user.is_some() || rw.basic_auth_password_file.is_some())
        {
            problems.push(format!(
                "{key}: set bearer_token_file or basic auth, not both"
            ));
        }
        if rw.basic_auth_user.is_some() != rw.basic_auth_password_file.is_some() {
            problems.push(format!(
                "{key}: basic_auth_user and basic_auth_password_file go together"
            ));
        }
        let credentials = match (&rw.bearer_token_file, &rw.basic_auth_user) {
            (Some(_), _) => Some("the bearer token"),
            (None, Some(_)) => Some("the basic-auth password"),
            (None, None) => None,
        };
        if let Some(what) = credentials {
            check_cleartext(&key, &rw.url, what, rw.insecure_http, &mut problems);
        }
        if rw
            .concurrency
            .is_some_and(|n| !(1..=super::MAX_CONCURRENCY).contains(&n))
        {
            problems.push(format!(
                "{key}.concurrency must be 1 to {}",
                super::MAX_CONCURRENCY
            ));
        }
        if rw.timeout.is_zero() {
            problems.push(format!("{key}.timeout must be more than 0s"));
        }
        check_egress(&key, rw, &mut problems);
    }
    let b = &c.buffer;
    if b.max_size.as_u64() < 1024 * 1024 {
        problems.push("buffer.max_size must be at least 1MiB".into());
    }
    if b.segment_size.as_u64() < 64 * 1024 || b.segment_size > b.max_size {
        problems
            .push("buffer.segment_size must be at least 64KiB and at most buffer.max_size".into());
    }
    if b.max_age < Duration::from_secs(60) {
        problems.push("buffer.max_age must be at least 1m".into());
    }
    problems
}

fn check_url(key: &str, url: &url::Url, problems: &mut Vec<String>) {
    if url.scheme() != "http" && url.scheme() != "https" {
        problems.push(format!(
            "{key}: scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        problems.push(format!("{key}: the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // A password in a URL ends up in logs and process listings; auth belongs in files.
        problems.push(format!(
            "{key}: the URL carries credentials; use the *_file keys so that no secret sits in the config"
        ));
    }
}

/// The proxy and TLS keys of one remote (see `remote_write::transport`).
fn check_egress(key: &str, rw: &super::RemoteWriteConfig, problems: &mut Vec<String>) {
    if let Some(proxy) = &rw.proxy_url {
        if !proxy.username().is_empty() || proxy.password().is_some() {
            problems.push(format!(
                "{key}.proxy_url: the URL carries credentials; use proxy_user and proxy_password_file so that no secret sits in the config"
            ));
        }
        if proxy.scheme() != "http" {
            problems.push(format!(
                "{key}.proxy_url: scheme must be http (https targets go through it with CONNECT), not {:?}",
                proxy.scheme()
            ));
        }
        if proxy.host_str().is_none() || proxy.port_or_known_default().is_none() {
            problems.push(format!("{key}.proxy_url: the URL has no host"));
        }
        if proxy.path() != "/" || proxy.query().is_some() {
            problems.push(format!(
                "{key}.proxy_url: a proxy is host and port only (http://host:port), no path"
            ));
        }
    }
    if rw.proxy_user.is_some() != rw.proxy_password_file.is_some() {
        problems.push(format!(
            "{key}: proxy_user and proxy_password_file go together"
        ));
    }
    if rw.proxy_user.is_some() && rw.proxy_url.is_none() {
        problems.push(format!("{key}: proxy_user is set but proxy_url is not"));
    }
    if let Some(proxy) = rw.proxy_url.as_ref().filter(|_| rw.proxy_user.is_some()) {
        // Basic auth to an http:// proxy travels in clear text, like credentials to an
        // http:// receiver: the same opt-in covers it.
        if !rw.insecure_http && leaves_in_clear(proxy) {
            problems.push(format!(
                "{key}.proxy_url: http:// to {} would send the proxy password in clear text to anyone on the link; \
                 use a proxy on this host, or set {key}.insecure_http = true if the link is protected otherwise",
                proxy.host_str().unwrap_or("?")
            ));
        }
    }
    if rw.tls_cert_file.is_some() != rw.tls_key_file.is_some() {
        problems.push(format!("{key}: tls_cert_file and tls_key_file go together"));
    }
    if let Some(name) = &rw.tls_server_name {
        if !matches!(url::Host::parse(name), Ok(url::Host::Domain(_))) {
            problems.push(format!("{key}.tls_server_name: {name:?} is not a DNS name"));
        }
        if rw.proxy_url.is_some() {
            // The name would be what the proxy is asked to connect to, and it resolves it.
            problems.push(format!(
                "{key}: tls_server_name cannot be used with proxy_url; put the certificate's name in url, the proxy resolves it"
            ));
        }
    }
}

/// Credentials over http:// may only go to this host itself, unless the table says
/// `insecure_http = true` (a link protected otherwise: a VPN, a tunnel, a private cable).
fn check_cleartext(
    table: &str,
    url: &url::Url,
    what: &str,
    allowed: bool,
    problems: &mut Vec<String>,
) {
    if allowed || !leaves_in_clear(url) {
        return;
    }
    problems.push(format!(
        "{table}.url: http:// to {} would send {what} in clear text to anyone on the link; \
         use https://, or set {table}.insecure_http = true if the link is protected otherwise",
        url.host_str().unwrap_or("?")
    ));
}

/// http:// to a host other than this one: what is sent can be read on the way.
pub(super) fn leaves_in_clear(url: &url::Url) -> bool {
    url.scheme() == "http" && !is_loopback(url)
}

/// 127.0.0.0/8, ::1 and `localhost`: traffic that never leaves the host.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    const MINIMAL: &str = r#"
state_dir = "/tmp/x"
[jellyfin]
url = "http://127.0.0.1:8096/jf"
token_file = "/tmp/token"
"#;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml(text, Path::new("test.toml"), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults_and_a_slash_terminated_url() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.jellyfin.url.as_str(), "http://127.0.0.1:8096/jf/");
        assert_eq!(c.collect.interval.as_secs(), 15);
        assert_eq!(c.jellyfin.timeout.as_secs(), 10);
        assert_eq!(c.buffer.max_size.as_u64(), 512 * 1024 * 1024);
        assert_eq!(c.buffer.max_age.as_secs(), 30 * 24 * 3600);
        let labels: Vec<_> = c.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(labels, ["instance", "job"]);
        assert_eq!(c.labels[1].1, "jellyfin");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load(&format!("{MINIMAL}\n[collect]\nintervall = \"5s\"\n")).unwrap_err();
        assert!(
            err.contains("intervall") && err.contains("test.toml"),
            "{err}"
        );
    }

    #[test]
    fn systemd_directories_fill_the_defaults() {
        let text = "[jellyfin]\nurl = \"http://127.0.0.1:8096\"\n";
        let env = |k: &str| match k {
            "STATE_DIRECTORY" => Some("/var/lib/jp:/var/lib/other".to_string()),
            "CREDENTIALS_DIRECTORY" => Some("/run/credentials/jp.service".to_string()),
            _ => None,
        };
        let c = Config::from_toml(text, Path::new("t.toml"), &env).unwrap();
        assert_eq!(c.state_dir, Path::new("/var/lib/jp"));
        assert_eq!(
            c.jellyfin.token_file,
            Path::new("/run/credentials/jp.service/jellyfin-token")
        );
        let err = Config::from_toml(text, Path::new("t.toml"), &|_| None).unwrap_err();
        assert!(err.to_string().contains("STATE_DIRECTORY"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[labels]\n__x = \"1\"\n", "labels.__x"),
            ("[collect]\ninterval = \"10ms\"\n", "collect.interval"),
            ("[collect]\ninterval = \"soon\"\n", "interval"),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://h/w\"\nconcurrency = 0\n",
                "remote_write[0] (name \"a\").concurrency must be 1 to 16",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://h/w\"\nkind = \"mimir\"\n",
                "kind",
            ),
            (
                "[[remote_write]]\nname = \"a b\"\nurl = \"http://h/api/v1/write\"\n",
                "remote_write[0]",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://u:p@h/api/v1/write\"\n",
                "carries credentials",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://h/w\"\n[[remote_write]]\nname = \"a\"\nurl = \"http://h/w\"\n",
                "used twice",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://h/w\"\nbasic_auth_user = \"u\"\n",
                "go together",
            ),
            ("[buffer]\nmax_size = \"1KiB\"\n", "buffer.max_size"),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://h/w\"\nproxy_url = \"http://u:p@proxy.invalid:3128\"\n",
                "proxy_url: the URL carries credentials",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://h/w\"\nproxy_url = \"socks5://proxy.invalid:1080\"\n",
                "scheme must be http",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://h/w\"\nproxy_user = \"u\"\nproxy_password_file = \"/p\"\n",
                "proxy_user is set but proxy_url is not",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://h/w\"\ntls_cert_file = \"/c\"\n",
                "tls_cert_file and tls_key_file go together",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://127.0.0.1/w\"\ntls_server_name = \"10.0.0.1\"\n",
                "is not a DNS name",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://127.0.0.1/w\"\ntls_server_name = \"vm.invalid\"\nproxy_url = \"http://proxy.invalid:3128\"\n",
                "cannot be used with proxy_url",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"https://h/w\"\nproxy_url = \"http://proxy.invalid:3128\"\nproxy_user = \"u\"\nproxy_password_file = \"/p\"\n",
                "proxy_url: http:// to proxy.invalid would send the proxy password in clear text",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://tiger.invalid/w\"\nbearer_token_file = \"/t\"\n",
                "remote_write[0] (name \"a\").url: http:// to tiger.invalid would send the bearer token in clear text",
            ),
            (
                "[[remote_write]]\nname = \"a\"\nurl = \"http://10.1.2.3/w\"\nbasic_auth_user = \"u\"\nbasic_auth_password_file = \"/p\"\n",
                "set remote_write[0] (name \"a\").insecure_http = true",
            ),
        ];
        for (extra, expected) in cases {
            let err = load(&format!("{MINIMAL}{extra}")).unwrap_err();
            assert!(err.contains(expected), "{extra:?} gave {err}");
        }
    }
}

#[cfg(test)]
mod every_problem {
    use std::path::Path;

    use super::super::Config;

    #[test]
    fn a_config_with_several_problems_gets_them_all_one_line_each() {
        let text = r#"
state_dir = "/tmp/x"
log_level = "loud=!"
[jellyfin]
url = "ftp://u:p@h/"
token_file = "/tmp/token"
timeout = "0s"
[collect]
interval = "10ms"
[collectors.tasks]
interval = "100ms"
[labels]
__bad = "1"
[[remote_write]]
name = "a b"
url = "http://h/w"
basic_auth_user = "u"
[buffer]
max_age = "10s"
"#;
        let err = Config::from_toml(text, Path::new("several.toml"), &|_| None).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "jellyfin.url: scheme must be http or https, not \"ftp\"",
                "jellyfin.url: the URL carries credentials; use the *_file keys so that no secret sits in the config",
                "jellyfin.timeout must be more than 0s",
                "collect.interval must be at least 1s",
                "collectors.tasks.interval must be at least 1s",
                "log_level \"loud=!\" is not a level or RUST_LOG-style filter",
                "labels.__bad: not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                "remote_write[0] (name \"a b\"): name must be 1-64 characters of [A-Za-z0-9_-]",
                "remote_write[0] (name \"a b\"): basic_auth_user and basic_auth_password_file go together",
                "remote_write[0] (name \"a b\").url: http:// to h would send the basic-auth password in clear text to anyone on the link; use https://, or set remote_write[0] (name \"a b\").insecure_http = true if the link is protected otherwise",
                "buffer.max_age must be at least 1m",
            ]
        );
        let lines: Vec<String> = err.lines().collect();
        assert_eq!(lines.len(), err.problems.len());
        assert!(lines.iter().all(|l| l.starts_with("config several.toml: ")));
        assert_eq!(err.to_string(), lines.join("\n"));
    }
}

#[cfg(test)]
mod example {
    use std::path::Path;

    use super::super::Config;

    const EXAMPLE: &str = include_str!("../../config/jellyfin-pusher.example.toml");

    #[test]
    fn the_example_config_is_valid_with_and_without_its_commented_keys() {
        Config::from_toml(EXAMPLE, Path::new("example.toml"), &|_| None).unwrap();
        // Uncomment the optional keys, one auth style at a time.
        let with = |prefixes: &[&str]| {
            EXAMPLE
                .lines()
                .map(|l| {
                    match prefixes
                        .iter()
                        .find(|p| l.starts_with(&format!("# {p} = ")))
                    {
                        Some(_) => &l[2..],
                        None => l,
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        for keys in [
            &[
                "bearer_token_file",
                "ca_file",
                "pid_file",
                "dir",
                "geoip_database",
                "tls_cert_file",
                "tls_key_file",
                "proxy_url",
            ][..],
            &[
                "basic_auth_user",
                "basic_auth_password_file",
                "tls_server_name",
            ],
            &["proxy_url", "proxy_user", "proxy_password_file"],
        ] {
            let mut text = with(keys);
            if keys.contains(&"proxy_user") {
                // The example's proxy is off this host: its password needs the opt-in.
                text = text.replace("insecure_http = false", "insecure_http = true");
            }
            for key in keys {
                assert!(
                    text.contains(&format!("\n{key} = ")),
                    "{key} is documented in the example"
                );
            }
            Config::from_toml(&text, Path::new("example.toml"), &|_| None).unwrap();
        }
    }
}

#[cfg(test)]
mod cleartext {
    use std::path::Path;

    use super::super::Config;

    fn load(jellyfin: &str, remote: &str) -> Result<Config, String> {
        let text = format!(
            "state_dir = \"/tmp/x\"\n[jellyfin]\n{jellyfin}token_file = \"/t\"\n[[remote_write]]\nname = \"a\"\n{remote}"
        );
        Config::from_toml(&text, Path::new("t.toml"), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn credentials_over_http_need_loopback_https_or_an_explicit_opt_in() {
        let ok = "url = \"http://127.0.0.1:8096\"\n";
        let token = "bearer_token_file = \"/t\"\n";
        for host in ["127.0.0.1", "127.9.9.9", "[::1]", "localhost", "LOCALHOST."] {
            load(
                &format!("url = \"http://{host}:8096\"\n"),
                &format!("url = \"http://{host}/w\"\n{token}"),
            )
            .unwrap();
        }
        // https, or no credentials at all, is fine anywhere.
        load(ok, &format!("url = \"https://tiger.invalid/w\"\n{token}")).unwrap();
        load(ok, "url = \"http://tiger.invalid/w\"\n").unwrap();
        // The Jellyfin API key always travels.
        let err = load(
            "url = \"http://jellyfin.invalid:8096\"\n",
            "url = \"http://127.0.0.1/w\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("jellyfin.url: http:// to jellyfin.invalid would send the API key"),
            "{err}"
        );
        assert!(err.contains("jellyfin.insecure_http = true"), "{err}");
        load(
            "url = \"http://jellyfin.invalid:8096\"\ninsecure_http = true\n",
            "url = \"http://127.0.0.1/w\"\n",
        )
        .unwrap();
        // A lookalike of localhost is not loopback.
        let err = load(
            ok,
            &format!("url = \"http://localhost.evil.invalid/w\"\n{token}"),
        )
        .unwrap_err();
        assert!(err.contains("insecure_http"), "{err}");
        load(
            ok,
            &format!("url = \"http://tiger.invalid/w\"\n{token}insecure_http = true\n"),
        )
        .unwrap();
    }
}
