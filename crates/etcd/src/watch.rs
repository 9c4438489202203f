//! Following the keyring with etcd's watch API.
//!
//! A task on the store's runtime keeps one watch on the prefix open,
//! resuming from the revision after the last event it saw whenever the
//! stream breaks (a member killed, the cluster restarted), so no change is
//! missed; if that revision was compacted away it starts afresh and asks for
//! a full read. It only signals: a plain thread calls `on_change` (which
//! reads the store, through the same runtime, so it must not run on it).

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use etcd_client::WatchOptions;
use secrets_manager_persist::{OnChange, PersistError, Watch};
use tokio::sync::oneshot;

use crate::conn::{self, Connector};
use crate::store::Shared;

enum Wake {
    Changed,
    Stop,
}

pub(crate) fn start(
    shared: Arc<Shared>,
    on_change: OnChange,
    poll: Duration,
) -> Result<Watch, PersistError> {
    let cannot = |source: std::io::Error| PersistError::Io {
        path: shared.origin.to_string().into(),
        action: "cannot start watching the keyring",
        source,
    };
    let handle = shared
        .runtime
        .handle()
        .ok_or_else(|| cannot(std::io::Error::other("the store is shutting down")))?;
    let (tx, rx) = mpsc::channel::<Wake>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = handle.spawn(follow(Follow {
        connector: Arc::clone(&shared.connector),
        range: shared.layout.range(),
        origin: shared.origin.to_string(),
        timeout: shared.options.timeout,
        events: tx.clone(),
        stop: stop_rx,
    }));
    let thread = std::thread::Builder::new()
        .name("etcd-keyring-watch".into())
        .spawn(move || {
            // Catch up first: the keyring may have changed since it was
            // last read.
            let mut pending = true;
            loop {
                if pending {
                    pending = !on_change();
                }
                match rx.recv_timeout(poll) {
                    Ok(Wake::Changed) => {
                        // One read covers a burst of changes.
                        while let Ok(wake) = rx.try_recv() {
                            if matches!(wake, Wake::Stop) {
                                return;
                            }
                        }
                        pending = true;
                    }
                    Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    // Retry a failed read every `poll`.
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        })
        .map_err(|e| {
            task.abort();
            cannot(e)
        })?;
    Ok(Watch::new(move || {
        let _ = stop_tx.send(());
        let _ = tx.send(Wake::Stop);
        let _ = thread.join();
        // The runtime (in `shared`) outlives the task it runs.
        drop(shared);
    }))
}

struct Follow {
    connector: Arc<Connector>,
    range: String,
    origin: String,
    timeout: Duration,
    events: mpsc::Sender<Wake>,
    stop: oneshot::Receiver<()>,
}

async fn follow(mut f: Follow) {
    // The revision to resume from; `None`: from now, after a full read.
    let mut next: Option<i64> = None;
    let mut failures: u32 = 0;
    loop {
        if failures > 0 {
            let pause = conn::backoff(failures, Duration::from_millis(25), Duration::from_secs(1));
            tokio::select! {
                _ = &mut f.stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
        let mut options = WatchOptions::new().with_prefix().with_progress_notify();
        if let Some(revision) = next {
            options = options.with_start_revision(revision);
        }
        let opened = tokio::select! {
            _ = &mut f.stop => return,
            opened = tokio::time::timeout(f.timeout, async {
                let mut client = f.connector.client().await?;
                client.watch(f.range.clone(), Some(options)).await
            }) => opened,
        };
        let mut stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                failed(&f, &mut failures, &conn::describe(&e)).await;
                continue;
            }
            Err(_) => {
                failed(&f, &mut failures, "no answer").await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                _ = &mut f.stop => return,
                message = stream.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => {
                    failed(&f, &mut failures, "the cluster closed the watch").await;
                    break;
                }
                Err(e) => {
                    failed(&f, &mut failures, &conn::describe(&e)).await;
                    break;
                }
            };
            if response.created() {
                if failures > 0 {
                    tracing::info!(keyring = %f.origin, "watching the keyring again");
                }
                failures = 0;
                if next.is_none() {
                    // Everything up to here is covered by one full read.
                    let revision = response
                        .header()
                        .map_or(0, etcd_client::ResponseHeader::revision);
                    next = Some(revision.saturating_add(1));
                    if f.events.send(Wake::Changed).is_err() {
                        return;
                    }
                }
            }
            if response.compact_revision() > 0 {
                // The events since `next` are gone: read everything again
                // and watch from now.
                next = None;
                if f.events.send(Wake::Changed).is_err() {
                    return;
                }
                break;
            }
            if response.canceled() {
                failed(&f, &mut failures, response.cancel_reason()).await;
                break;
            }
            let last = response
                .events()
                .iter()
                .filter_map(etcd_client::Event::kv)
                .map(etcd_client::KeyValue::mod_revision)
                .max();
            if let Some(last) = last {
                next = Some(last.saturating_add(1));
                if f.events.send(Wake::Changed).is_err() {
                    return;
                }
            }
        }
    }
}

/// Notes a broken or refused watch; the loop waits and re-makes it.
async fn failed(f: &Follow, failures: &mut u32, why: &str) {
    if *failures == 0 {
        tracing::warn!(keyring = %f.origin, reason = why, "lost the keyring watch; serving from the last keyring read, reconnecting");
    } else {
        tracing::debug!(keyring = %f.origin, reason = why, "keyring watch still down");
    }
    *failures = failures.saturating_add(1);
    f.connector.reset().await;
}
