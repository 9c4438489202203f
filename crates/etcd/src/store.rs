//! [`EtcdStore`]: the keyring store on an etcd cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use secrets_manager_persist::{
    Keyring, KeyringStore, OnChange, PersistError, Source, Watch, WriteReport,
};
use zeroize::Zeroizing;

use crate::address::Address;
use crate::conn::{self, Connector, Runtime};
use crate::error::EtcdError;
use crate::kek::{Blob, Kek, Wrapping};
use crate::layout::{self, Batch, Guard, Kv, Layout, Op, Raw, Wrap};
use crate::options::EtcdOptions;

/// How many lost compare-and-swaps a write tolerates before giving up:
/// each one means another writer committed, so a writer racing N others
/// needs at most N.
const MAX_CONFLICTS: u32 = 200;

/// A keyring kept in an etcd cluster, under a key prefix.
///
/// A [`KeyringStore`]: synchronous, with the async client driven by a
/// runtime this store owns on a thread of its own, so it may be called from
/// anywhere, inside another tokio runtime too. Cloning is cheap and shares
/// the connection.
///
/// - A version is created by a transaction that succeeds only if its key
///   does not exist (`create_revision == 0`): of N writers racing to add a
///   name, exactly one wins; through the facade the others get a conflict.
/// - Every write is guarded by the revision it read (nothing under the
///   prefix changed since); a lost guard re-reads and re-runs the edit,
///   so concurrent writers lose nothing.
/// - Key material is wrapped under a key-encryption key before it is
///   written ([`EtcdOptions::kek`]); unwrapped only with
///   [`EtcdOptions::allow_plaintext`].
/// - Reads are linearizable; every call gives up after the options'
///   timeout of failing to reach a quorum.
#[derive(Clone)]
pub struct EtcdStore {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) address: Address,
    pub(crate) layout: Layout,
    pub(crate) origin: Source,
    pub(crate) options: EtcdOptions,
    pub(crate) connector: Arc<Connector>,
    pub(crate) runtime: Runtime,
    unwrapped: layout::Unwrapped,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("address", &self.shared.address.to_string())
            .field("options", &self.shared.options)
            .finish()
    }
}

/// Which key-encryption keys a keyring's material is wrapped under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KekStatus {
    /// The KEK new material is wrapped under (the keyring's record).
    pub recorded: Option<String>,
    /// Versions wrapped under each KEK, by id.
    pub wrapped: BTreeMap<String, usize>,
    /// Versions whose material is stored unwrapped.
    pub plaintext: usize,
}

/// What [`EtcdStore::rotate_kek`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KekRotation {
    /// Versions whose material was wrapped again under the new KEK.
    pub rewrapped: usize,
    /// The keyring's KEK record now.
    pub kek: String,
}

enum Failure {
    /// The deadline passed; the last error seen, if any.
    Timeout(Option<String>),
    /// The cluster refused the request.
    Refused(String),
}

impl EtcdStore {
    /// A store for the keyring at `url`
    /// (`etcd://HOST:PORT[,HOST:PORT...]/PREFIX`). Nothing is sent until
    /// the first read or write, except etcd's authentication, which
    /// happens then too.
    ///
    /// # Errors
    ///
    /// A malformed address; TLS settings without a CA certificate; the
    /// runtime cannot start.
    pub fn open(url: &str, options: EtcdOptions) -> Result<Self, EtcdError> {
        let address = Address::parse(url)?;
        let connect = options.connect_options()?;
        let runtime = Runtime::new().map_err(EtcdError::Runtime)?;
        Ok(Self {
            shared: Arc::new(Shared {
                layout: Layout::new(address.prefix()),
                origin: Source::Store(address.to_string()),
                connector: Arc::new(Connector::new(address.endpoints().to_vec(), connect)),
                address,
                options,
                runtime,
                unwrapped: layout::Unwrapped::default(),
            }),
        })
    }

    /// As [`open`](Self::open), with the settings in the environment
    /// ([`EtcdOptions::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) and [`EtcdOptions::from_env`].
    pub fn open_from_env(url: &str) -> Result<Self, EtcdError> {
        Self::open(url, EtcdOptions::from_env()?)
    }

    /// The keyring's address.
    #[must_use]
    pub fn address(&self) -> &Address {
        &self.shared.address
    }

    /// Which key-encryption keys the keyring's material is wrapped under.
    ///
    /// # Errors
    ///
    /// The cluster cannot be reached, or holds malformed records.
    pub fn kek_status(&self) -> Result<KekStatus, PersistError> {
        let raw = self.read_raw()?;
        let mut status = KekStatus {
            recorded: raw.kek.as_ref().map(|k| k.value.clone()),
            ..KekStatus::default()
        };
        for v in &raw.versions {
            let Some(material) = &v.material else {
                continue;
            };
            let blob = Blob::parse(&material.value).map_err(|problem| PersistError::Invalid {
                origin: self.shared.origin.clone(),
                variable: self.shared.layout.key(layout::MATERIAL, &v.name),
                problem,
            })?;
            match blob.wrapping() {
                Wrapping::Kek(id) => *status.wrapped.entry(id).or_default() += 1,
                Wrapping::Plain => status.plaintext += 1,
            }
        }
        Ok(status)
    }

    /// Wraps every version's material again under `new`, and records `new`
    /// as the key new material is wrapped under. The material itself does
    /// not change, so running managers see nothing to apply.
    ///
    /// The current material must be readable with the keys in this store's
    /// options (plaintext material is wrapped too). Each material key is
    /// compare-and-swapped on the revision read; writes racing the
    /// rotation are read again and finished, so running it again is
    /// harmless. Processes holding both keys read throughout; once every
    /// process holds `new`, the old key can go.
    ///
    /// # Errors
    ///
    /// The cluster cannot be reached; material this process cannot unwrap.
    pub fn rotate_kek(&self, new: &Kek) -> Result<KekRotation, PersistError> {
        let s = &self.shared;
        let mut rotation = KekRotation {
            rewrapped: 0,
            kek: new.id().to_owned(),
        };
        let mut conflicts = 0;
        loop {
            let raw = self.read_raw()?;
            let (batches, _) =
                layout::rewrap_plan(&raw, &s.layout, &s.origin, &s.options.keks, new)?;
            if batches.is_empty() {
                return Ok(rotation);
            }
            let mut lost = false;
            for batch in batches {
                let materials = batch
                    .ops
                    .iter()
                    .filter(|op| matches!(op, Op::Put(k, _) if *k != s.layout.kek()))
                    .count();
                if self
                    .commit(None, batch, "cannot re-wrap the keyring's material")?
                    .is_some()
                {
                    rotation.rewrapped += materials;
                } else {
                    lost = true;
                    break;
                }
            }
            if lost {
                conflicts += 1;
                self.conflicted(conflicts)?;
            }
        }
    }

    /// Reads everything under the prefix.
    fn read_raw(&self) -> Result<Raw, PersistError> {
        let s = &self.shared;
        let range = s.layout.range();
        let (revision, kvs) = self.call("cannot read the keyring", move |mut client| {
            let range = range.clone();
            async move {
                let mut response = client
                    .get(range, Some(GetOptions::new().with_prefix()))
                    .await?;
                let revision = response
                    .header()
                    .map_or(0, etcd_client::ResponseHeader::revision);
                let kvs: Vec<Kv> = response
                    .take_kvs()
                    .into_iter()
                    .filter_map(|kv| {
                        let key = kv.key_str().ok()?.to_owned();
                        let (create, modified) = (kv.create_revision(), kv.mod_revision());
                        let (_, value) = kv.into_key_value();
                        Some((key, Zeroizing::new(value), create, modified))
                    })
                    .collect();
                Ok((revision, kvs))
            }
        })?;
        Raw::parse(&s.layout, &s.origin, revision, kvs)
    }

    /// Runs one transaction: `batch`'s guards (and, with `read`, "nothing
    /// under the prefix changed after revision `read`") then its changes.
    /// `Some(revision)` once committed, `None` when a guard failed.
    fn commit(
        &self,
        read: Option<i64>,
        batch: Batch,
        action: &'static str,
    ) -> Result<Option<i64>, PersistError> {
        let range = self.shared.layout.range();
        let batch = Arc::new(batch);
        self.call(action, move |mut client| {
            let mut compares = Vec::with_capacity(batch.guards.len() + 1);
            if let Some(read) = read {
                compares.push(
                    Compare::mod_revision(range.clone(), CompareOp::Less, read.saturating_add(1))
                        .with_prefix(),
                );
            }
            for guard in &batch.guards {
                compares.push(match guard {
                    Guard::Absent(key) => {
                        Compare::create_revision(key.clone(), CompareOp::Equal, 0)
                    }
                    Guard::ModRevision(key, revision) => {
                        Compare::mod_revision(key.clone(), CompareOp::Equal, *revision)
                    }
                });
            }
            let ops: Vec<TxnOp> = batch
                .ops
                .iter()
                .map(|op| match op {
                    Op::Put(key, value) => TxnOp::put(key.clone(), value.to_vec(), None),
                    Op::Delete(key) => TxnOp::delete(key.clone(), None),
                })
                .collect();
            let txn = Txn::new().when(compares).and_then(ops);
            async move {
                let response = client.txn(txn).await?;
                let revision = response
                    .header()
                    .map_or(0, etcd_client::ResponseHeader::revision);
                Ok(response.succeeded().then_some(revision))
            }
        })
    }

    /// Waits a little after a lost compare-and-swap, or gives up.
    fn conflicted(&self, conflicts: u32) -> Result<(), PersistError> {
        if conflicts > MAX_CONFLICTS {
            return Err(self.io_error(
                "cannot write the keyring",
                std::io::ErrorKind::WouldBlock,
                format!(
                    "it changed under {MAX_CONFLICTS} attempts in a row; too many writers at once, try again"
                ),
            ));
        }
        std::thread::sleep(conn::backoff(
            conflicts,
            Duration::from_millis(2),
            Duration::from_millis(100),
        ));
        Ok(())
    }

    fn io_error(
        &self,
        action: &'static str,
        kind: std::io::ErrorKind,
        message: String,
    ) -> PersistError {
        PersistError::Io {
            path: PathBuf::from(self.shared.origin.to_string()),
            action,
            source: std::io::Error::new(kind, message),
        }
    }

    /// Runs `call` with a client on the store's runtime, trying again after
    /// transient failures (a member down, an election) until the timeout.
    fn call<T, F, Fut>(&self, action: &'static str, call: F) -> Result<T, PersistError>
    where
        T: Send + 'static,
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send,
    {
        let connector = Arc::clone(&self.shared.connector);
        let timeout = self.shared.options.timeout;
        let outcome = self.shared.runtime.run(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut last = None;
            for attempt in 0.. {
                let tried = tokio::time::timeout_at(deadline, async {
                    let client = connector.client().await?;
                    call(client).await
                })
                .await;
                match tried {
                    Err(_) => return Err(Failure::Timeout(last)),
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(e)) if conn::transient(&e) => {
                        last = Some(conn::describe(&e));
                        connector.reset().await;
                        let pause = conn::backoff(
                            attempt,
                            Duration::from_millis(20),
                            Duration::from_millis(500),
                        );
                        if tokio::time::Instant::now() + pause >= deadline {
                            return Err(Failure::Timeout(last));
                        }
                        tokio::time::sleep(pause).await;
                    }
                    Ok(Err(e)) => return Err(Failure::Refused(conn::describe(&e))),
                }
            }
            Err(Failure::Timeout(last))
        });
        match outcome {
            Some(Ok(value)) => Ok(value),
            Some(Err(Failure::Timeout(last))) => Err(self.io_error(
                action,
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from a quorum of the etcd cluster within {}{}",
                    show(timeout),
                    last.map(|l| format!(" (last error: {l})"))
                        .unwrap_or_default()
                ),
            )),
            Some(Err(Failure::Refused(message))) => Err(self.io_error(
                action,
                std::io::ErrorKind::PermissionDenied,
                format!("etcd refused: {message}"),
            )),
            None => Err(self.io_error(
                action,
                std::io::ErrorKind::Interrupted,
                "the store is shutting down".to_owned(),
            )),
        }
    }
}

/// A duration as a person writes it.
fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl KeyringStore for EtcdStore {
    fn source(&self) -> Source {
        self.shared.origin.clone()
    }

    /// Reads the keyring; a prefix with nothing under it is an error, as
    /// a missing file is (writing creates the keyring).
    fn read(&self) -> Result<Keyring, PersistError> {
        let s = &self.shared;
        let raw = self.read_raw()?;
        if raw.versions.is_empty() && raw.active.is_none() {
            return Err(self.io_error(
                "cannot read the keyring",
                std::io::ErrorKind::NotFound,
                format!(
                    "no keyring under {}: create one with `secrets-manager init`, or copy one there with `copy --to`",
                    s.layout.range()
                ),
            ));
        }
        raw.keyring(&s.layout, &s.origin, &s.options.keks, &s.unwrapped)
    }

    fn update(
        &self,
        edit: &mut dyn FnMut(&mut Keyring) -> Result<(), PersistError>,
    ) -> Result<WriteReport, PersistError> {
        let s = &self.shared;
        let wrap = Wrap {
            keks: &s.options.keks,
            allow_plaintext: s.options.allow_plaintext,
        };
        let mut conflicts = 0;
        loop {
            let raw = self.read_raw()?;
            let mut keyring = raw.keyring(&s.layout, &s.origin, &s.options.keks, &s.unwrapped)?;
            edit(&mut keyring)?;
            let batches = layout::plan(&raw, &keyring, &s.layout, &s.origin, wrap)?;
            if batches.is_empty() {
                return Ok(WriteReport::default());
            }
            let mut revision = raw.revision;
            let mut lost = false;
            for batch in batches {
                match self.commit(Some(revision), batch, "cannot write the keyring")? {
                    Some(committed) => revision = committed,
                    None => {
                        lost = true;
                        break;
                    }
                }
            }
            if !lost {
                let mut report = WriteReport::default();
                report.written = true;
                return Ok(report);
            }
            conflicts += 1;
            tracing::debug!(keyring = %s.origin, conflicts, "the keyring changed while writing; reading it again");
            self.conflicted(conflicts)?;
        }
    }

    fn watch(&self, on_change: OnChange, poll: Duration) -> Result<Watch, PersistError> {
        crate::watch::start(Arc::clone(&self.shared), on_change, poll)
    }
}
