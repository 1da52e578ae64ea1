//! The way out of the DMZ, with real servers on 127.0.0.1: an HTTP proxy (Debian's
//! tinyproxy, with basic auth) and a TLS terminator that requires client certificates
//! (Debian's nginx in front of VictoriaMetrics). What arrived in VictoriaMetrics is compared
//! with what the fake Jellyfin was asked; the proxy's own log proves the way it took.

use crate::common;

use std::time::Duration;

use common::agent::AgentDir;
use common::certs::{Certs, SERVER_NAME};
use common::egress::{Nginx, PROXY_PASSWORD, PROXY_USER, Tinyproxy};
use common::fake_jellyfin::FakeJellyfin;
use common::servers::VictoriaMetrics;
use common::{assert_one_sample_per_request, up_timestamps, wait_for};

fn proxy_keys(proxy: &Tinyproxy, dir: &std::path::Path) -> String {
    let password = dir.join("proxy-password");
    std::fs::write(&password, format!("{PROXY_PASSWORD}\n")).unwrap();
    format!(
        "proxy_url = \"{}\"\nproxy_user = \"{PROXY_USER}\"\nproxy_password_file = \"{}\"\n",
        proxy.url(),
        password.display()
    )
}

fn tls_keys(certs: &Certs, client: &str) -> String {
    format!(
        "ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        certs.path("ca.pem").display(),
        certs.path(&format!("{client}.pem")).display(),
        certs.path(&format!("{client}.key")).display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_go_through_the_proxy_and_jellyfin_never_does() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let proxy = Tinyproxy::start().await;
    let keydir = tempfile::tempdir().unwrap();
    let dir = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &vm.write_url())],
        "1s",
        &proxy_keys(&proxy, keydir.path()),
    );
    // An HTTP_PROXY in the environment is ignored: Jellyfin is asked directly, and the remote
    // goes through its own proxy_url only.
    let mut agent =
        dir.start_with_env(&[("HTTP_PROXY", &proxy.url()), ("http_proxy", &proxy.url())]);
    proxy
        .wait_for_log(&format!("POST {}", vm.write_url()))
        .await;
    jellyfin.wait_for_requests("/System/Info", 3).await;
    assert!(agent.stop().success(), "{}", agent.log());
    vm.settle().await;

    assert_one_sample_per_request(
        &up_timestamps(&vm).await,
        &jellyfin.requests_to("/System/Info"),
    );
    let log = proxy.log();
    assert!(
        !log.contains(&format!(":{}/", jellyfin.port)),
        "Jellyfin was asked through the proxy:\n{log}"
    );
    assert!(!agent.log().contains(PROXY_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_proxy_password_keeps_the_samples_buffered() {
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let proxy = Tinyproxy::start().await;
    let keydir = tempfile::tempdir().unwrap();
    let keys = proxy_keys(&proxy, keydir.path());
    std::fs::write(keydir.path().join("proxy-password"), "wrong\n").unwrap();
    let dir = AgentDir::new(&jellyfin.url(), &[("tiger", &vm.write_url())], "1s", &keys);
    let mut agent = dir.start();
    // tinyproxy 1.11 refuses a plain-HTTP request with wrong proxy credentials with a 401.
    wait_for(
        "the refusal in the agent's log",
        Duration::from_secs(20),
        || async { agent.log().contains("reason=HTTP 401").then_some(()) },
    )
    .await;
    assert!(agent.stop().success());
    vm.settle().await;
    assert_eq!(up_timestamps(&vm).await, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_through_the_proxy_and_by_server_name() {
    let certs = Certs::make();
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let nginx = Nginx::start(&certs, &vm.base_url()).await;
    let proxy = Tinyproxy::start().await;
    let keydir = tempfile::tempdir().unwrap();

    // 1. https through the proxy: CONNECT, then TLS with the client certificate end to end.
    let through_proxy = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &nginx.write_url())],
        "1s",
        &format!(
            "{}{}",
            proxy_keys(&proxy, keydir.path()),
            tls_keys(&certs, "client")
        ),
    );
    let mut agent = through_proxy.start();
    proxy
        .wait_for_log(&format!("CONNECT 127.0.0.1:{}", nginx.port))
        .await;
    jellyfin.wait_for_requests("/System/Info", 3).await;
    assert!(agent.stop().success(), "{}", agent.log());
    assert!(
        !proxy.log().contains("POST"),
        "the proxy saw only a tunnel, never a request:\n{}",
        proxy.log()
    );

    // 2. Directly, by address, with the certificate checked against tls_server_name.
    let by_name = AgentDir::new(
        &jellyfin.url(),
        &[("tiger", &nginx.write_url())],
        "1s",
        &format!(
            "{}tls_server_name = \"{SERVER_NAME}\"\n",
            tls_keys(&certs, "client")
        ),
    );
    let before = jellyfin.requests_to("/System/Info").len();
    let mut agent = by_name.start();
    jellyfin.wait_for_requests("/System/Info", before + 3).await;
    assert!(agent.stop().success(), "{}", agent.log());

    vm.settle().await;
    assert_one_sample_per_request(
        &up_timestamps(&vm).await,
        &jellyfin.requests_to("/System/Info"),
    );
    assert!(
        nginx
            .access_log()
            .contains("\"POST /api/v1/write HTTP/1.1\" 204"),
        "{}",
        nginx.access_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_untrusted_client_certificate_is_retried_never_dropped() {
    let certs = Certs::make();
    let jellyfin = FakeJellyfin::start("").await;
    let vm = VictoriaMetrics::start().await;
    let nginx = Nginx::start(&certs, &vm.base_url()).await;
    for (keys, nginx_says) in [
        (
            format!("ca_file = \"{}\"\n", certs.path("ca.pem").display()),
            "No required SSL certificate was sent",
        ),
        (
            tls_keys(&certs, "rogue-client"),
            "The SSL certificate error",
        ),
    ] {
        let dir = AgentDir::new(
            &jellyfin.url(),
            &[("tiger", &nginx.write_url())],
            "1s",
            &keys,
        );
        let mut agent = dir.start();
        wait_for(nginx_says, Duration::from_secs(20), || async {
            agent.log().contains(nginx_says).then_some(())
        })
        .await;
        assert!(agent.stop().success());
        let log = agent.log();
        assert!(
            log.contains("the block stays buffered and is retried"),
            "{log}"
        );
        assert!(!log.contains("rejected a block"), "{log}");
    }
    vm.settle().await;
    assert_eq!(up_timestamps(&vm).await, Vec::<i64>::new());
}
