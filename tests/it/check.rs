//! `jellyfin-pusher check` against real servers on 127.0.0.1: VictoriaMetrics (its real
//! answers to the usual wrong paths), vmauth with the example's token route, nginx requiring
//! client certificates, tinyproxy, plus a `.invalid` name (never resolves) and a closed port.
//! Every failure must carry its hint, and the good write must land in VictoriaMetrics.

use crate::common;

use common::agent::AgentDir;
use common::certs::{Certs, SERVER_NAME};
use common::egress::Nginx;
use common::fake_jellyfin::{FakeJellyfin, Mode};
use common::servers::VictoriaMetrics;
use common::vmauth::{TOKEN, Vmauth};
use common::{free_port, now_ms};

/// Runs `check`: (exit code, stdout).
fn check(dir: &AgentDir) -> (i32, String) {
    let out = dir.run(&["check"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The report's line about `remote` and the hint under it.
fn about<'a>(report: &'a str, remote: &str) -> &'a str {
    let start = report
        .find(&format!("remote {remote} ("))
        .unwrap_or_else(|| panic!("no line about {remote}:\n{report}"));
    let rest = &report[start..];
    let end = rest[1..]
        .find("\nremote ")
        .or_else(|| rest[1..].find("\njellyfin "))
        .map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

fn remote(name: &str, url: &str, keys: &str) -> String {
    format!("[[remote_write]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout = \"3s\"\n{keys}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_write_lands_and_the_usual_mistakes_are_explained() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let vmauth = Vmauth::start(&vm).await;
    let secrets = tempfile::tempdir().unwrap();
    let good_token = secrets.path().join("good");
    let bad_token = secrets.path().join("bad");
    std::fs::write(&good_token, format!("{TOKEN}\n")).unwrap();
    std::fs::write(&bad_token, "not-the-token\n").unwrap();
    let base = vm.base_url();
    let closed = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let remotes = [
        remote("good", &vm.write_url(), ""),
        remote("push", &format!("{base}/api/v1/push"), ""),
        remote("influx", &format!("{base}/write"), ""),
        remote(
            "cluster",
            &format!("{base}/insert/0/prometheus/api/v1/write"),
            "",
        ),
        remote("dns", "http://vm.example.invalid:8428/api/v1/write", ""),
        remote("closed", &closed, ""),
        remote(
            "vmauth",
            &vmauth.url("/api/v1/write"),
            &format!("bearer_token_file = \"{}\"\n", good_token.display()),
        ),
        remote(
            "vmauth_token",
            &vmauth.url("/api/v1/write"),
            &format!("bearer_token_file = \"{}\"\n", bad_token.display()),
        ),
        remote(
            "vmauth_path",
            &vmauth.url("/api/v1/push"),
            &format!("bearer_token_file = \"{}\"\n", good_token.display()),
        ),
    ]
    .concat();
    let dir = AgentDir::new(&jellyfin.url(), &[], "1s", &remotes);
    let before = now_ms();
    let (code, report) = check(&dir);
    let after = now_ms();
    println!("{report}");
    assert_eq!(code, 1, "{report}");

    let expect = [
        ("good", "OK: HTTP 204"),
        ("vmauth", "OK: HTTP 204"),
        ("push", "Mimir"),
        ("influx", "nothing was stored"),
        ("cluster", "single-node VictoriaMetrics takes /api/v1/write"),
        ("dns", "DNS: vm.example.invalid does not resolve"),
        ("closed", "nothing accepts connections"),
        (
            "vmauth_token",
            "hint: token: the receiver refused the credentials",
        ),
        ("vmauth_path", "vmauth has no route for /api/v1/push"),
    ];
    for (name, says) in expect {
        let text = about(&report, name);
        assert!(text.contains(says), "{name} should say {says:?}:\n{text}");
    }
    assert!(report.contains("jellyfin ("), "{report}");
    assert!(report.contains("10.11.11"), "{report}");
    assert!(
        !report.contains(TOKEN) && !report.contains("not-the-token"),
        "{report}"
    );

    // The good writes landed, as the one sample per remote that check says it wrote; the
    // refused and silent ones did not.
    vm.settle().await;
    let series = vm.export("{__name__=\"jellyfin_pusher_check\"}").await;
    let remotes: Vec<&str> = series.iter().map(|s| s.label("remote").unwrap()).collect();
    assert_eq!(remotes, ["good", "vmauth"], "{series:?}");
    for s in &series {
        assert_eq!(s.values, [1.0]);
        assert!((before..=after).contains(&s.timestamps[0]));
        assert_eq!(s.label("job"), Some("jellyfin"));
        assert_eq!(s.label("instance"), Some("test-dmz"));
    }

    // Jellyfin's answers have their hints too.
    jellyfin.set_mode(Mode::Unauthorized);
    let (code, report) = check(&dir);
    assert_eq!(code, 1);
    assert!(
        report.contains("401 Unauthorized: the API key in jellyfin.token_file is wrong"),
        "{report}"
    );
    let unreachable = AgentDir::new(
        // https: an http:// Jellyfin off this host is refused by the config (clear-text key).
        "https://jellyfin.example.invalid:8096",
        &[],
        "1s",
        &remote("good", &vm.write_url(), ""),
    );
    let (code, report) = check(&unreachable);
    assert_eq!(code, 1);
    assert!(
        report.contains("DNS: jellyfin.example.invalid does not resolve"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_which_certificate_is_wrong() {
    let certs = Certs::make();
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let nginx = Nginx::start(&certs, &vm.base_url()).await;
    let url = nginx.write_url();
    let path = |f: &str| certs.path(f).display().to_string();
    let ca = format!("ca_file = \"{}\"\n", path("ca.pem"));
    let identity = |client: &str| {
        format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            path(&format!("{client}.pem")),
            path(&format!("{client}.key"))
        )
    };
    let remotes = [
        remote("good", &url, &format!("{ca}{}", identity("client"))),
        remote(
            "by_name",
            &url,
            &format!(
                "{ca}{}tls_server_name = \"{SERVER_NAME}\"\n",
                identity("client")
            ),
        ),
        remote("no_ca", &url, &identity("client")),
        remote("no_cert", &url, &ca),
        remote(
            "rogue_cert",
            &url,
            &format!("{ca}{}", identity("rogue-client")),
        ),
        remote(
            "wrong_name",
            &url,
            &format!(
                "{ca}{}tls_server_name = \"other.example.invalid\"\n",
                identity("client")
            ),
        ),
        remote("plain_http", &url.replace("https://", "http://"), ""),
    ]
    .concat();
    let dir = AgentDir::new(&jellyfin.url(), &[], "1s", &remotes);
    let (code, report) = check(&dir);
    println!("{report}");
    assert_eq!(code, 1);
    let expect = [
        ("good", "OK: HTTP 204"),
        ("by_name", "OK: HTTP 204"),
        ("no_ca", "not signed by a CA this host trusts: set ca_file"),
        (
            "no_cert",
            "requires a client certificate: set tls_cert_file",
        ),
        ("rogue_cert", "refused the client certificate"),
        ("wrong_name", "set tls_server_name"),
        ("plain_http", "url must start with https://"),
    ];
    for (name, says) in expect {
        let text = about(&report, name);
        assert!(text.contains(says), "{name} should say {says:?}:\n{text}");
    }

    // A missing key file is named before anything is sent.
    let missing = AgentDir::new(
        &jellyfin.url(),
        &[],
        "1s",
        &remote(
            "gone",
            &url,
            &format!(
                "tls_cert_file = \"{}\"\ntls_key_file = \"/nonexistent/client.key\"\n",
                path("client.pem")
            ),
        ),
    );
    let (code, report) = check(&missing);
    assert_eq!(code, 1);
    assert!(
        about(&report, "gone").contains("cannot read tls_key_file /nonexistent/client.key"),
        "{report}"
    );
}
