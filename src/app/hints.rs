//! What `check` says about a failure: the usual causes of each answer (or of no answer),
//! read from the error text and the URL. Pure functions, so each hint is tested on its own;
//! tests/it/check.rs proves them against real servers.

/// A problem visible in the URL alone: VictoriaMetrics answers 204 on these paths to any
/// body and stores nothing from a remote-write request, so a "successful" write proves
/// nothing.
pub fn silent_path(url: &url::Url) -> Option<String> {
    let path = url.path().trim_end_matches('/');
    let endpoint = if path.ends_with("/api/v1/import") {
        "JSON-lines import"
    } else if path.ends_with("/write") && !path.ends_with("/api/v1/write") {
        "InfluxDB line protocol"
    } else {
        return None;
    };
    Some(format!(
        "{path} is VictoriaMetrics' {endpoint} endpoint: it answers 204 to a remote-write \
         body and stores nothing from it; the remote-write path is /api/v1/write (single-node), \
         /insert/<tenant>/prometheus/api/v1/write (cluster vminsert)"
    ))
}

/// A hint for a request that got no HTTP answer; `error` is the whole error chain.
pub fn no_answer(url: &url::Url, proxied: bool, error: &str) -> String {
    let host = url.host_str().unwrap_or("?");
    let port = url.port_or_known_default().unwrap_or(0);
    let e = error.to_ascii_lowercase();
    if e.contains("unsuccessful tunnel") {
        return "the proxy refused to open a tunnel (CONNECT) to the receiver: check proxy_user \
                and proxy_password_file, and that the proxy allows CONNECT to this port"
            .into();
    }
    if e.contains("dns error") || e.contains("failed to lookup address") {
        return format!(
            "DNS: {host} does not resolve on this host; check the name, /etc/resolv.conf, or \
             put the address in url (with tls_server_name for https)"
        );
    }
    if e.contains("connection refused") {
        let through = if proxied {
            "the proxy (proxy_url)"
        } else {
            "the receiver"
        };
        return format!(
            "connect: nothing accepts connections at {through}'s address, or a firewall \
             rejects them: check the port, that it runs, and that the DMZ firewall lets this \
             host out to {host}:{port}/tcp"
        );
    }
    if e.contains("timed out") || e.contains("timeout") {
        return format!(
            "no answer in time: a firewall probably drops the packets; let this host out to \
             {host}:{port}/tcp, or raise timeout if the receiver is merely slow"
        );
    }
    if e.contains("unknownissuer") || e.contains("unknown issuer") {
        return "TLS: the receiver's certificate is not signed by a CA this host trusts: set \
                ca_file to the PEM of the CA that signed it"
            .into();
    }
    if e.contains("notvalidforname") || e.contains("not valid for name") {
        return format!(
            "TLS: the receiver's certificate is not made out to {host}: put the name it is \
             made out to in url, or set tls_server_name to it"
        );
    }
    if e.contains("expired") {
        return "TLS: the receiver's certificate has expired (or this host's clock is wrong)"
            .into();
    }
    if e.contains("certificaterequired") || e.contains("handshakefailure") {
        return "TLS: the receiver requires a client certificate: set tls_cert_file and \
                tls_key_file"
            .into();
    }
    if e.contains("unknownca") || e.contains("badcertificate") || e.contains("decrypterror") {
        return "TLS: the receiver refused the client certificate (tls_cert_file): it is not \
                signed by a CA the receiver trusts, or does not match tls_key_file"
            .into();
    }
    if e.contains("invalidcontenttype") || e.contains("corrupt message") || e.contains("tls") {
        return format!(
            "TLS: the handshake failed; does {host}:{port} speak TLS at all (url says https://)?"
        );
    }
    "no answer; see the error for the cause".into()
}

/// A hint for an HTTP answer other than 2xx; `message` is the receiver's (redacted) text.
pub fn answered(url: &url::Url, proxied: bool, status: u16, message: &str) -> String {
    let path = url.path();
    if message.contains("No required SSL certificate was sent") {
        return "TLS: the receiver requires a client certificate: set tls_cert_file and \
                tls_key_file"
            .into();
    }
    if message.contains("The SSL certificate error") {
        return "TLS: the receiver refused the client certificate (tls_cert_file): it is not \
                signed by a CA the receiver trusts, or has expired"
            .into();
    }
    if message.contains("plain HTTP request was sent to HTTPS port") {
        return "the port speaks TLS: url must start with https://".into();
    }
    let token_refused = status == 401
        || (status == 400
            && (message.contains("cannot find the provided auth token")
                || message.contains("missing `Authorization` request header")));
    if status == 407 || (token_refused && proxied && url.scheme() == "http") {
        return "the proxy or the receiver refused the credentials: check proxy_user and \
                proxy_password_file, then bearer_token_file or the basic-auth files"
            .into();
    }
    if token_refused {
        return "token: the receiver refused the credentials: check bearer_token_file (or \
                basic_auth_user and basic_auth_password_file); with vmauth the token must be \
                a bearer_token of one of its users"
            .into();
    }
    if status == 403 {
        return "token: the credentials are valid but not allowed here (vmauth: the user's \
                url_map has no route for this path)"
            .into();
    }
    if message.contains("missing route for") {
        return format!(
            "wrong path: vmauth has no route for {path} in this token's url_map \
             (config/vmauth.example.yml routes /api/v1/write only)"
        );
    }
    if matches!(status, 400 | 404 | 405) {
        if path.trim_end_matches('/').ends_with("/api/v1/push") {
            return format!(
                "wrong path: {path} is Mimir's, Cortex's and Loki's push path; VictoriaMetrics \
                 takes remote write at /api/v1/write (single-node) or \
                 /insert/<tenant>/prometheus/api/v1/write (cluster vminsert)"
            );
        }
        if path.contains("/insert/") {
            return format!(
                "wrong path: {path} is a cluster (vminsert) path; a single-node VictoriaMetrics \
                 takes /api/v1/write"
            );
        }
        if message.contains("unsupported path")
            || message.contains("missing route")
            || status == 404
        {
            return format!(
                "wrong path: the receiver has no remote-write endpoint at {path}: \
                 VictoriaMetrics single-node takes /api/v1/write, a cluster's vminsert \
                 /insert/<tenant>/prometheus/api/v1/write, vmauth the path its url_map routes"
            );
        }
        return "the receiver refused the request as malformed: see its message".into();
    }
    if status == 413 {
        return "the request was too large for the receiver or a proxy in between".into();
    }
    if (500..600).contains(&status) {
        return "the receiver (or a proxy in front of it) has a problem of its own: see its \
                message and its log"
            .into();
    }
    if (300..400).contains(&status) {
        return "redirects are not followed: point url at the final address".into();
    }
    "unexpected answer: see the receiver's message".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn the_usual_mistakes_get_their_hint() {
        let vm = url("http://vm.example.invalid:8428/api/v1/write");
        assert!(silent_path(&vm).is_none());
        assert!(
            silent_path(&url("http://h:8428/write"))
                .unwrap()
                .contains("InfluxDB")
        );
        assert!(
            silent_path(&url("http://h:8428/api/v1/import"))
                .unwrap()
                .contains("JSON")
        );
        let cases = [
            (
                no_answer(
                    &vm,
                    false,
                    "error sending request: client error (Connect): dns error: failed to lookup address information: Name or service not known",
                ),
                "DNS: vm.example.invalid",
            ),
            (
                no_answer(
                    &vm,
                    false,
                    "tcp connect error: Connection refused (os error 111)",
                ),
                "the DMZ firewall lets this host out to vm.example.invalid:8428/tcp",
            ),
            (no_answer(&vm, true, "unsuccessful tunnel"), "CONNECT"),
            (
                no_answer(&vm, false, "invalid peer certificate: UnknownIssuer"),
                "set ca_file",
            ),
            (
                no_answer(&vm, false, "invalid peer certificate: NotValidForName"),
                "tls_server_name",
            ),
            (
                answered(&vm, false, 401, "Unauthorized"),
                "bearer_token_file",
            ),
            (
                answered(
                    &vm,
                    false,
                    400,
                    "cannot find the provided auth token \"<redacted>\"",
                ),
                "bearer_token_file",
            ),
            (answered(&vm, true, 401, ""), "proxy_password_file"),
            (answered(&vm, false, 403, ""), "url_map"),
            (
                answered(
                    &url("http://h/api/v1/push"),
                    false,
                    400,
                    "unsupported path requested",
                ),
                "Mimir",
            ),
            (
                answered(
                    &url("http://h/api/v1/push"),
                    false,
                    400,
                    "missing route for \"/api/v1/push\"",
                ),
                "url_map",
            ),
            (
                answered(
                    &url("http://h/insert/0/prometheus/api/v1/write"),
                    false,
                    400,
                    "unsupported path requested",
                ),
                "single-node",
            ),
            (
                answered(
                    &vm,
                    false,
                    400,
                    "unsupported path requested: \"/api/v1/write\"",
                ),
                "/insert/<tenant>/prometheus/api/v1/write",
            ),
            (
                answered(
                    &vm,
                    false,
                    400,
                    "<html>No required SSL certificate was sent</html>",
                ),
                "requires a client certificate",
            ),
            (
                answered(&vm, false, 400, "<html>The SSL certificate error</html>"),
                "refused the client certificate",
            ),
        ];
        for (hint, expected) in cases {
            assert!(hint.contains(expected), "{hint:?} lacks {expected:?}");
        }
    }
}
