//! What several loadtest test binaries share: a courier server of their own.

#![allow(dead_code)] // Each test binary uses a different subset.

/// A courier server in its own runtime on its own thread: a separate server from the tester's view.
pub struct External {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl External {
    pub fn start(secret: &str, api_key: &str) -> Self {
        let mut config = courier::Config::new(secret);
        config.api_key = Some(api_key.into());
        let state = courier::AppState::new(config).expect("state");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let stop = tokio_util::sync::CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                courier::server::run(listener, state, shutdown)
                    .await
                    .expect("serve");
            });
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The `ws://` URL of its notifications endpoint.
    pub fn target(&self) -> String {
        format!("ws://{}/ws/notifications/", self.addr)
    }
}

impl Drop for External {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
