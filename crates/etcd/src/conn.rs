//! The runtime the store owns, the client it drives, and which failures are
//! worth another try.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// A tokio runtime owned by a store, with one worker thread of its own.
///
/// Synchronous callers hand it a future and wait on a standard channel for
/// the result, so a caller inside another tokio runtime blocks its thread
/// (as any synchronous I/O does) instead of panicking as `block_on` would.
/// Dropped from anywhere, even inside an async context: it shuts down in
/// the background.
pub(crate) struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub(crate) fn new() -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd-keyring")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
    }

    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Runs `future` on the runtime and waits for its output (`None` if the
    /// runtime is shutting down). Never call it from the runtime's own
    /// thread: the future could not run while it waits.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let handle = self.handle()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().ok()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Makes clients, and makes a new one after a failure.
pub(crate) struct Connector {
    endpoints: Vec<String>,
    options: ConnectOptions,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl Connector {
    pub(crate) fn new(endpoints: Vec<String>, options: ConnectOptions) -> Self {
        Self {
            endpoints,
            options,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The client, connected (and authenticated) if need be.
    pub(crate) async fn client(&self) -> Result<Client, etcd_client::Error> {
        let mut slot = self.client.lock().await;
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let client = Client::connect(&self.endpoints, Some(self.options.clone())).await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the client after a failure: the next call connects afresh.
    pub(crate) async fn reset(&self) {
        *self.client.lock().await = None;
    }
}

/// Whether an error may go away by trying again (a member down, a leader
/// election, a connection reset), as opposed to a refusal (bad
/// credentials, a request etcd will never take).
pub(crate) fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => matches!(
            i32::from(status.code()),
            // CANCELLED, UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
            // ABORTED, INTERNAL, UNAVAILABLE
            1 | 2 | 4 | 8 | 10 | 13 | 14
        ),
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_) => true,
        _ => false,
    }
}

/// An error for a message: the gRPC status's own text, without the
/// client's decoration.
pub(crate) fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
            status.message().to_owned()
        }
        other => other.to_string(),
    }
}

/// Jittered exponential backoff: about `base * 2^attempt`, at most `cap`.
pub(crate) fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1 << attempt.min(16)).min(cap);
    let mut random = [0u8; 4];
    let fraction = match getrandom::fill(&mut random) {
        Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    ceiling.mul_f64(0.5 + fraction / 2.0)
}
