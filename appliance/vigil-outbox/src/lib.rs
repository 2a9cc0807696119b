//! The lossless outbox between the supervisor and the uplink.
//!
//! Every alert is written to disk before anyone tries to publish it and is
//! deleted only when the district acknowledges its id, so an uplink that is
//! down for hours or a power cut mid-send loses nothing.
//!
//! ```text
//! messages  seq -> (id, kind, payload, enqueued_unix_ms)   what is pending, oldest first
//! ids       id  -> seq                                     idempotent push, ack by id
//! attempts  seq -> count                                   publish attempts, for status
//! meta      "next_seq" -> u64                              so a seq is never reused
//! marks     key -> u64                                     the writer's progress, committed with its messages
//! ```
//!
//! Architecture Invariant: this crate knows nothing of MQTT (topics, QoS,
//! JSON); it stores opaque messages. Only the uplink crate gives them meaning.
//!
//! Every write commits with [`Durability::Immediate`] (fsync before the call
//! returns). A file that cannot be read is an error naming it: the outbox is
//! never emptied to "recover", because that would drop alerts silently.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// The outbox's default capacity, in messages.
pub const DEFAULT_MAX_MESSAGES: u64 = 100_000;

/// The largest payload [`Outbox::push`] accepts, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Table names are a storage format: renaming one strands every box's pending alerts.
const MESSAGES: TableDefinition<u64, (&str, &str, &[u8], u64)> = TableDefinition::new("messages");
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
const ATTEMPTS: TableDefinition<u64, u32> = TableDefinition::new("attempts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const MARKS: TableDefinition<&str, u64> = TableDefinition::new("marks");
const NEXT_SEQ: &str = "next_seq";

/// What kind of failure an [`OutboxError`] is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxErrorKind {
    /// The file could not be read or written.
    Io,
    /// The file is not a readable outbox; it is left untouched.
    Corrupt,
    /// The outbox holds its maximum number of messages; nothing was dropped.
    Full,
    /// The payload is over [`MAX_PAYLOAD_BYTES`].
    TooLarge,
}

/// An outbox failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct OutboxError {
    kind: OutboxErrorKind,
    path: PathBuf,
    message: String,
}

impl OutboxError {
    /// What kind of failure this is.
    pub fn kind(&self) -> OutboxErrorKind {
        self.kind
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One pending message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Position in the outbox; increases with every push and is never reused.
    pub seq: u64,
    /// The caller's id, which the district acknowledges.
    pub id: String,
    /// The caller's label for the payload (opaque here).
    pub kind: String,
    /// The message body (opaque here).
    pub payload: Vec<u8>,
    /// When it was pushed, milliseconds since the Unix epoch.
    pub enqueued_unix_ms: u64,
    /// How many times a publish was attempted.
    pub attempts: u32,
}

/// A durable queue of messages awaiting acknowledgement; `Send + Sync`, share it via `Arc`.
#[derive(Debug)]
pub struct Outbox {
    db: Database,
    path: PathBuf,
    max_messages: u64,
}

impl Outbox {
    /// Opens (creating) the outbox at `path` with room for [`DEFAULT_MAX_MESSAGES`].
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        Outbox::open_with_limit(path, DEFAULT_MAX_MESSAGES)
    }

    /// Opens (creating) the outbox at `path` with room for `max_messages`.
    pub fn open_with_limit(path: &Path, max_messages: u64) -> Result<Outbox, OutboxError> {
        let db = Database::create(path).map_err(|e| classify(path, "cannot open the outbox", e.into()))?;
        let outbox = Outbox { db, path: path.to_path_buf(), max_messages };
        // Creating the tables up front lets every read assume they exist.
        outbox.write(|txn| {
            txn.open_table(MESSAGES)?;
            txn.open_table(IDS)?;
            txn.open_table(ATTEMPTS)?;
            txn.open_table(META)?;
            txn.open_table(MARKS)?;
            Ok(())
        })?;
        Ok(outbox)
    }

    /// Queues a message durably and returns its seq; an id already pending returns its seq and changes nothing.
    pub fn push(&self, id: &str, kind: &str, payload: &[u8], now_unix_ms: u64) -> Result<u64, OutboxError> {
        Ok(self.push_batch(&[(id, kind, payload)], now_unix_ms)?[0])
    }

    /// [`Outbox::push_batch`], also setting the mark `key` to `value` in the
    /// same transaction: after a crash the mark tells exactly what was queued.
    pub fn push_marked(
        &self,
        batch: &[(&str, &str, &[u8])],
        now_unix_ms: u64,
        key: &str,
        value: u64,
    ) -> Result<Vec<u64>, OutboxError> {
        self.push_inner(batch, now_unix_ms, Some((key, value)))
    }

    /// Sets a mark on its own.
    pub fn set_mark(&self, key: &str, value: u64) -> Result<(), OutboxError> {
        self.push_inner(&[], 0, Some((key, value))).map(|_| ())
    }

    /// The mark `key`, if it was ever set.
    pub fn mark(&self, key: &str) -> Result<Option<u64>, OutboxError> {
        self.read(|txn| Ok(txn.open_table(MARKS)?.get(key)?.map(|v| v.value())))
    }

    /// Queues messages in order in one durable transaction (one fsync) and
    /// returns their seqs: all are queued or none. Ids already pending keep
    /// their seq. A batch that would overflow the outbox is refused whole.
    pub fn push_batch(&self, batch: &[(&str, &str, &[u8])], now_unix_ms: u64) -> Result<Vec<u64>, OutboxError> {
        self.push_inner(batch, now_unix_ms, None)
    }

    fn push_inner(
        &self,
        batch: &[(&str, &str, &[u8])],
        now_unix_ms: u64,
        mark: Option<(&str, u64)>,
    ) -> Result<Vec<u64>, OutboxError> {
        if let Some((id, _, payload)) = batch.iter().find(|(_, _, p)| p.len() > MAX_PAYLOAD_BYTES) {
            return Err(self.error(
                OutboxErrorKind::TooLarge,
                format!(
                    "message {id:?} has a {} byte payload, over the {MAX_PAYLOAD_BYTES} byte limit; send a smaller payload",
                    payload.len()
                ),
            ));
        }
        // The inner result carries Full, which is this crate's refusal rather than a storage failure.
        self.write(|txn| {
            let mut ids = txn.open_table(IDS)?;
            let mut messages = txn.open_table(MESSAGES)?;
            let mut meta = txn.open_table(META)?;
            // Capacity is checked before anything is written: the closure's Ok commits.
            let mut fresh = 0u64;
            for &(id, _, _) in batch {
                if ids.get(id)?.is_none() {
                    fresh += 1;
                }
            }
            let depth = messages.len()?;
            if depth + fresh > self.max_messages {
                let first = batch.first().map_or("", |m| m.0);
                return Ok(Err(self.error(
                    OutboxErrorKind::Full,
                    format!(
                        "the outbox is full ({depth} of {} messages pending), so {first:?} was not queued; \
                         the uplink must deliver pending messages first",
                        self.max_messages
                    ),
                )));
            }
            let mut seqs = Vec::with_capacity(batch.len());
            for &(id, kind, payload) in batch {
                if let Some(seq) = ids.get(id)? {
                    seqs.push(seq.value());
                    continue;
                }
                let seq = meta.get(NEXT_SEQ)?.map_or(1, |s| s.value());
                // The counter commits with the message, so a seq is never handed out twice.
                meta.insert(NEXT_SEQ, seq + 1)?;
                messages.insert(seq, (id, kind, payload, now_unix_ms))?;
                ids.insert(id, seq)?;
                seqs.push(seq);
            }
            if let Some((key, value)) = mark {
                txn.open_table(MARKS)?.insert(key, value)?;
            }
            Ok(Ok(seqs))
        })?
    }

    /// Up to `limit` pending messages with seq above `after_seq`, oldest first.
    pub fn pending(&self, after_seq: Option<u64>, limit: usize) -> Result<Vec<Message>, OutboxError> {
        let start = match after_seq {
            None => 0,
            Some(seq) => match seq.checked_add(1) {
                Some(start) => start,
                None => return Ok(Vec::new()),
            },
        };
        self.read(|txn| {
            let messages = txn.open_table(MESSAGES)?;
            let attempts = txn.open_table(ATTEMPTS)?;
            let mut out = Vec::new();
            for entry in messages.range(start..)?.take(limit) {
                let (seq, value) = entry?;
                let seq = seq.value();
                let (id, kind, payload, enqueued_unix_ms) = value.value();
                out.push(Message {
                    seq,
                    id: id.to_string(),
                    kind: kind.to_string(),
                    payload: payload.to_vec(),
                    enqueued_unix_ms,
                    attempts: attempts.get(seq)?.map_or(0, |a| a.value()),
                });
            }
            Ok(out)
        })
    }

    /// Counts one publish attempt of `seq`; a seq no longer pending is ignored.
    pub fn mark_attempt(&self, seq: u64) -> Result<(), OutboxError> {
        self.write(|txn| {
            if txn.open_table(MESSAGES)?.get(seq)?.is_none() {
                return Ok(());
            }
            let mut attempts = txn.open_table(ATTEMPTS)?;
            let count = attempts.get(seq)?.map_or(0, |a| a.value());
            attempts.insert(seq, count.saturating_add(1))?;
            Ok(())
        })
    }

    /// Removes the message with `id` durably; true if it was pending.
    pub fn ack(&self, id: &str) -> Result<bool, OutboxError> {
        self.remove(id, Durability::Immediate)
    }

    /// Removes the message with `id` without waiting for the disk: the removal
    /// becomes durable with the next durable write. After a power cut the
    /// message may come back and be sent again, which stable ids make
    /// harmless; it can never be lost. Saves an fsync per delivered message.
    pub fn ack_relaxed(&self, id: &str) -> Result<bool, OutboxError> {
        self.remove(id, Durability::None)
    }

    fn remove(&self, id: &str, durability: Durability) -> Result<bool, OutboxError> {
        self.write_with(durability, |txn| {
            let Some(seq) = txn.open_table(IDS)?.remove(id)?.map(|s| s.value()) else {
                return Ok(false);
            };
            txn.open_table(MESSAGES)?.remove(seq)?;
            txn.open_table(ATTEMPTS)?.remove(seq)?;
            Ok(true)
        })
    }

    /// How many messages are pending.
    pub fn depth(&self) -> Result<u64, OutboxError> {
        self.read(|txn| Ok(txn.open_table(MESSAGES)?.len()?))
    }

    /// When the oldest pending message was pushed; `None` if nothing is pending.
    pub fn oldest_unix_ms(&self) -> Result<Option<u64>, OutboxError> {
        self.read(|txn| Ok(txn.open_table(MESSAGES)?.first()?.map(|(_, value)| value.value().3)))
    }

    fn error(&self, kind: OutboxErrorKind, message: String) -> OutboxError {
        OutboxError { kind, path: self.path.clone(), message }
    }

    /// Runs `f` in a write transaction committed with fsync; an error from `f` aborts it.
    fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>) -> Result<T, OutboxError> {
        self.write_with(Durability::Immediate, f)
    }

    /// Runs `f` in a write transaction committed with `durability`; an error from `f` aborts it.
    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, OutboxError> {
        let run = || -> Result<T, redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e| classify(&self.path, "cannot write the outbox", e))
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>) -> Result<T, OutboxError> {
        let run = || -> Result<T, redb::Error> { f(&self.db.begin_read()?) };
        run().map_err(|e| classify(&self.path, "cannot read the outbox", e))
    }
}

fn classify(path: &Path, what: &str, e: redb::Error) -> OutboxError {
    let kind = match &e {
        // redb reports a file that is not a redb database at all as InvalidData.
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => OutboxErrorKind::Corrupt,
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. } => OutboxErrorKind::Corrupt,
        redb::Error::ValueTooLarge(_) => OutboxErrorKind::TooLarge,
        _ => OutboxErrorKind::Io,
    };
    let message = match (&e, kind) {
        (redb::Error::DatabaseAlreadyOpen, _) => {
            format!("{what}: another process has it open; stop that process or use another path")
        }
        (_, OutboxErrorKind::Corrupt) => format!(
            "{what}: the file is not a readable outbox ({e}); move it aside for inspection, \
             it is never emptied automatically"
        ),
        _ => format!("{what}: {e}"),
    };
    OutboxError { kind, path: path.to_path_buf(), message }
}

#[cfg(test)]
mod tests;
