//! The load tester against courier's own TLS listener: a `wss://` run with `--ca-cert` delivers
//! everything and reports its TLS handshakes; a tester that does not trust the CA is refused with
//! a clear error before any run, unless `--insecure`, which the report marks.

mod common;
mod services;

use common::tls::{spawn_tls_server, Pki};
use common::{API_KEY, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_tester_runs_over_wss_against_courier_tls() {
    let Some(loadtest) = common::loadtest::binary() else {
        services::available("the loadtest binary", false, common::loadtest::HINT);
        return;
    };
    let pki = Pki::new();
    let (server, _admin) = spawn_tls_server(common::config(), &pki).await;
    let dir =
        std::env::temp_dir().join(format!("courier-tls-lt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = pki.ca_file();
    let target = format!("wss://{}/ws/notifications/", server.addr);
    let shape = [
        "--target",
        &target,
        "--jwt-secret",
        SECRET,
        "--api-key",
        API_KEY,
        "-c",
        "30",
        "-u",
        "10",
        "--bursts",
        "2",
        "--events-per-burst",
        "5",
        "-t",
        "lost==0",
        "-t",
        "failed==0",
    ];

    let ca_arg = ca.to_str().expect("utf-8");
    let trusted = common::loadtest::run(
        &loadtest,
        &dir,
        &[&shape[..], &["--ca-cert", ca_arg]].concat(),
    )
    .await;
    let r = &trusted.report;
    assert_eq!(
        trusted.code,
        Some(0),
        "{}\n{}",
        trusted.stdout,
        trusted.stderr
    );
    assert_eq!(r["deliveries"]["received"], 30 * 2 * 5, "{r}");
    assert_eq!(r["deliveries"]["lost"], 0);
    assert_eq!(r["tls"]["insecure"], false, "{}", r["tls"]);
    assert!(
        r["tls"]["handshake_ms"]["p50"].is_number(),
        "TLS handshake latency: {}",
        r["tls"]
    );

    // The built-in roots do not know the private CA: refused before any run, saying why.
    let untrusted = common::loadtest::run(&loadtest, &dir, &shape).await;
    assert_eq!(untrusted.code, Some(2), "{}", untrusted.stdout);
    assert!(
        untrusted.stderr.contains("UnknownIssuer") && untrusted.stderr.contains("--ca-cert"),
        "{}",
        untrusted.stderr
    );

    let insecure =
        common::loadtest::run(&loadtest, &dir, &[&shape[..], &["--insecure"]].concat()).await;
    assert_eq!(
        insecure.code,
        Some(0),
        "{}\n{}",
        insecure.stdout,
        insecure.stderr
    );
    assert_eq!(insecure.report["tls"]["insecure"], true);
    assert!(insecure.stdout.contains("INSECURE"), "{}", insecure.stdout);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
