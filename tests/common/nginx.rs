//! The documented deployment, running: nginx terminating TLS in front of two courier processes on
//! the redis-pubsub layer, from the files in `docs/deploy/` with only paths, ports, secrets and the
//! Redis prefix substituted. Certificates (a CA and a leaf for 127.0.0.1) are made at start.
//!
//! nginx runs as the test user under a private prefix in the foreground (`-g 'daemon off;'`), and
//! every process is stopped by its PID: couriers with SIGTERM (their graceful stop), nginx with
//! SIGKILL, also when a test panics (on drop).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderName;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::WebSocketStream;

use super::{API_KEY, SECRET, WAIT};

/// A WebSocket through nginx: TLS to nginx, plain HTTP/1.1 from nginx to a courier.
pub type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// `docs/deploy/`, the files the deployment is made of.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy")
}

/// Why the deployment cannot run here (no `nginx` on `PATH`), or `None`.
pub fn missing() -> Option<String> {
    let found = Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| "no nginx binary on PATH (Debian: apt-get install nginx)".into())
}

/// One courier process of the deployment.
pub struct Courier {
    /// Its WebSocket/API listener (`COURIER_LISTEN`), which nginx proxies to.
    pub addr: SocketAddr,
    /// Its `/healthz` + `/metrics` listener (`COURIER_ADMIN_LISTEN`).
    pub admin: SocketAddr,
    child: Child,
}

/// nginx and two couriers, running. Stop with [`Deployment::stop`]; a drop kills what is left.
pub struct Deployment {
    /// nginx's TLS listener.
    pub https: SocketAddr,
    /// The two couriers behind it.
    pub couriers: Vec<Courier>,
    /// The private directory: config, certificates (`ca.pem`), logs.
    pub dir: PathBuf,
    tls: TlsConnector,
    nginx: Option<Child>,
}

/// A free loopback port (bound and released; the tests that share the box rarely race for it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `text` with every `from` replaced; the documented file must still contain `from`, so a doc
/// edit cannot silently stop the test from running it.
fn substitute(text: String, file: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "docs/deploy/{file} no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// `KEY=value` lines of a systemd `EnvironmentFile` (comments and blank lines skipped).
pub fn env_file(name: &str) -> Vec<(String, String)> {
    let path = deploy_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{name}: {l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// A CA and a leaf for 127.0.0.1 signed by it: (CA PEM, CA DER, leaf chain PEM, leaf key PEM).
fn certificates() -> (String, CertificateDer<'static>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    let chain = format!("{}{}", leaf.pem(), ca.pem());
    (ca.pem(), ca.der().clone(), chain, leaf_key.serialize_pem())
}

/// A TLS client trusting only `ca` (DER), on ring whatever provider other crates enable (rustls
/// deprecates ring's provider for lacking post-quantum key exchange: no concern on loopback).
#[allow(deprecated)]
fn tls_connector(ca: CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("CA into the root store");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Waits until something accepts on `addr`, or panics after `what` failed to come up.
async fn until_listening(addr: SocketAddr, what: &str, child: &mut Child, log: &Path) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}) before listening on {addr}:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {addr} within 10 s");
}

impl Deployment {
    /// Starts the couriers on Redis `redis_url` under key prefix `prefix`, then nginx in front.
    /// Call only when [`missing`] is `None`.
    pub async fn start(redis_url: &str, prefix: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("courier-nginx-{}", &id[..12]));
        std::fs::create_dir_all(&dir).expect("private nginx prefix");
        let (ca_pem, ca_der, chain, key) = certificates();
        for (name, pem) in [
            ("ca.pem", &ca_pem),
            ("fullchain.pem", &chain),
            ("privkey.pem", &key),
        ] {
            std::fs::write(dir.join(name), pem).expect("certificate file");
        }
        let mut couriers = Vec::new();
        for n in 1..=2 {
            couriers.push(Courier::start(n, &dir, redis_url, prefix).await);
        }
        let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let text = std::fs::read_to_string(deploy_dir().join("nginx.conf")).expect("nginx.conf");
        let d = format!("{}/", dir.display());
        let mut conf = text;
        for (from, to) in [
            ("/etc/ssl/courier/", d.as_str()),
            ("/var/log/nginx/", d.as_str()),
            ("/var/lib/nginx/", d.as_str()),
            ("/run/", d.as_str()),
        ] {
            conf = substitute(conf, "nginx.conf", from, to);
        }
        conf = substitute(
            conf,
            "nginx.conf",
            "listen 443 ssl;",
            &format!("listen {https} ssl;"),
        );
        for (n, c) in couriers.iter().enumerate() {
            let documented = format!("server 127.0.0.1:800{};", n + 1);
            conf = substitute(
                conf,
                "nginx.conf",
                &documented,
                &format!("server {};", c.addr),
            );
        }
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = dir.join("error.log");
        let mut nginx = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        until_listening(https, "nginx", &mut nginx, &log).await;
        Self {
            https,
            couriers,
            dir,
            tls: tls_connector(ca_der),
            nginx: Some(nginx),
        }
    }

    /// The CA that signed nginx's certificate, as a PEM file (for a client's `--ca-file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// What both couriers have logged so far (JSON lines, `COURIER_LOG_FORMAT=json`).
    pub fn courier_logs(&self) -> String {
        (1..=self.couriers.len())
            .map(|n| std::fs::read_to_string(self.dir.join(format!("courier-{n}.log"))))
            .collect::<std::io::Result<Vec<_>>>()
            .expect("courier logs")
            .concat()
    }

    /// The `wss://` URL of the notifications endpoint through nginx, without a token.
    pub fn wss_url(&self) -> String {
        format!("wss://{}/ws/notifications/", self.https)
    }

    /// A TLS connection to nginx from source address `from` (any of 127.0.0.0/8).
    pub async fn tls_from(&self, from: Ipv4Addr) -> TlsStream<TcpStream> {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::from((from, 0)))
            .expect("bind a loopback source");
        let tcp = sock.connect(self.https).await.expect("connect to nginx");
        let name = ServerName::IpAddress(self.https.ip().into());
        tokio::time::timeout(WAIT, self.tls.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake with nginx")
    }

    /// A WebSocket handshake through nginx from `from` on `path_and_query` (e.g.
    /// `/ws/notifications/?token=…`) with extra `headers`: the socket, or the HTTP status it was
    /// refused with.
    pub async fn wss_from(
        &self,
        from: Ipv4Addr,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Wss, u16> {
        let tls = self.tls_from(from).await;
        let url = format!("wss://{}{path_and_query}", self.https);
        let mut req = url.into_client_request().expect("request");
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).expect("header name");
            req.headers_mut()
                .append(name, v.parse().expect("header value"));
        }
        let shake = tokio_tungstenite::client_async(req, tls);
        match tokio::time::timeout(WAIT, shake)
            .await
            .expect("handshake timed out")
        {
            Ok((ws, _)) => Ok(ws),
            Err(Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("WebSocket handshake through nginx: {e}"),
        }
    }

    /// Stops the couriers with SIGTERM (each must exit 0, as systemd's stop expects) and nginx.
    pub async fn stop(mut self) {
        for c in &mut self.couriers {
            terminate(&c.child);
        }
        for c in &mut self.couriers {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
            let status = loop {
                if let Some(status) = c.child.try_wait().expect("courier status") {
                    break status;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "courier did not exit within 25 s of SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert!(
                status.success(),
                "courier exited with {status} after SIGTERM"
            );
        }
        self.stop_nginx();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// SIGTERM to nginx's master by PID: it stops its workers and exits (a SIGKILLed master
    /// would leave its workers serving). SIGKILL only if that takes over 5 s.
    fn stop_nginx(&mut self) {
        if let Some(mut nginx) = self.nginx.take() {
            terminate(&nginx);
            if exited(&mut nginx, Duration::from_secs(5)).is_none() {
                let _ = nginx.kill();
                let _ = nginx.wait();
            }
        }
    }
}

/// Sends SIGTERM to `child` by its PID (std's `Child::kill` only sends SIGKILL).
fn terminate(child: &Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
}

/// `child`'s exit status once it exits within `bound`, or `None` (blocking: also used in `Drop`).
fn exited(child: &mut Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Deployment {
    /// A test that panicked: stop everything it started, by PID; keep the logs for a look.
    fn drop(&mut self) {
        self.stop_nginx();
        for c in &mut self.couriers {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("nginx and courier logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Courier {
    /// Starts courier instance `n` (1 or 2) with `courier.env` and `courier-<n>.env`.
    async fn start(n: usize, dir: &Path, redis_url: &str, prefix: &str) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut env = env_file("courier.env");
        env.extend(env_file(&format!("courier-{n}.env")));
        for (k, v) in &mut env {
            let to = match k.as_str() {
                "COURIER_JWT_SECRET" => SECRET.to_owned(),
                "COURIER_API_KEY" => API_KEY.to_owned(),
                "COURIER_REDIS_URL" => redis_url.to_owned(),
                "COURIER_REDIS_PREFIX" => prefix.to_owned(),
                "COURIER_LISTEN" => addr.to_string(),
                "COURIER_ADMIN_LISTEN" => admin.to_string(),
                _ => continue,
            };
            *v = to;
        }
        let log = dir.join(format!("courier-{n}.log"));
        let out = std::fs::File::create(&log).expect("courier log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
            // Only the documented environment: nothing of the test's own COURIER_* leaks in.
            .env_clear()
            .envs(env)
            .env("RUST_LOG", "courier=info")
            .stdin(Stdio::null())
            // Logs go to stdout; errors (`Error: …`, exit 2) to stderr: both into the log.
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("spawn courier");
        until_listening(addr, "courier", &mut child, &log).await;
        until_listening(admin, "courier admin", &mut child, &log).await;
        Self { addr, admin, child }
    }
}
