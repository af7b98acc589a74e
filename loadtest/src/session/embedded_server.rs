//! The embedded server: courier's library on 127.0.0.1:0 in its own runtime and threads, so its CPU
//! is measured apart from the tester's, and a generated secret and API key.

use std::net::SocketAddr;

use courier::config::{LayerKind, RedisConfig};
use courier::{AppState, Config};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::measure::sysinfo::SERVER_THREAD;

/// Runtime worker threads for the embedded server (the machine class has 2 cores).
const SERVER_THREADS: usize = 2;

/// A running embedded courier.
pub struct EmbeddedServer {
    /// Its listening address.
    pub addr: SocketAddr,
    /// Its state (for the in-process publisher).
    pub state: AppState,
    /// Its runtime, where the embedded publisher runs too (its work is server work).
    pub handle: tokio::runtime::Handle,
    /// The JWT secret it accepts.
    pub secret: String,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedServer {
    /// Starts courier with a generated secret, the given queue limits and channel layer (a Redis
    /// layer with `redis`'s URL and prefix, so the Redis publishers reach it).
    pub async fn start(
        queue_messages: Option<usize>,
        queue_bytes: Option<usize>,
        layer: LayerKind,
        redis: RedisConfig,
    ) -> Result<Self> {
        let secret = format!("loadtest-{}", uuid::Uuid::new_v4().simple());
        let mut config = Config::new(secret.clone());
        config.api_key = Some(format!("key-{}", uuid::Uuid::new_v4().simple()));
        if let Some(q) = queue_messages {
            config.queue_messages = q;
        }
        if let Some(q) = queue_bytes {
            config.queue_bytes = q;
        }
        config.layer = layer;
        config.redis = redis;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SERVER_THREADS)
            .thread_name(SERVER_THREAD)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let setup = {
            // Inside the server's runtime: a Redis layer spawns its tasks here, so their CPU is
            // the server's.
            let _guard = runtime.enter();
            listen(config)
        };
        let (state, listener) = match setup {
            Ok(ok) => ok,
            Err(e) => {
                // Dropping a runtime inside async code panics; this one has nothing to wait for.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let (served, shutdown) = (state.clone(), stop.clone().cancelled_owned());
        // The runtime lives and is dropped on its own thread (dropping it inside async code panics).
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD.into())
            .spawn(move || {
                if let Err(e) = runtime.block_on(courier::server::run(listener, served, shutdown)) {
                    eprintln!("embedded server: {e}");
                }
                runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            })?;
        Ok(Self {
            addr,
            state,
            handle,
            secret,
            stop,
            thread: Some(thread),
        })
    }

    /// The server's API key.
    pub fn api_key(&self) -> Option<String> {
        self.state.config().api_key.clone()
    }

    /// Stops the server and waits (off the async threads) for its thread to end.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The server's state and a listener bound as courier binds its own (`courier::server::bind`: a
/// deep accept backlog, since std's 128 overflows in a connect storm and every dropped SYN costs
/// the client a 1 s retransmit that would show up as handshake latency).
fn listen(config: Config) -> Result<(AppState, tokio::net::TcpListener)> {
    let state = AppState::new(config).map_err(|e| Error::Setup(format!("embedded server: {e}")))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let listener = courier::server::bind(addr, false)
        .map_err(|e| Error::Setup(format!("embedded server: binding {addr}: {e}")))?;
    Ok((state, listener))
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
