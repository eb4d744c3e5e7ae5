//! The engine's snapshots of a JetStream log, kept next to the stream in a
//! JetStream object store bucket (R3, file storage), so that every host —
//! a new one with an empty data directory too — starts from the newest one.
//!
//! Each object is named for the LSN it ends at (`snapshot-<lsn:020>`, as a
//! local snapshot file is) and records, in its metadata, that LSN and the
//! stream sequence of the message that ends at it. The bytes are opaque
//! here: the engine's own checksummed format, which it checks when it loads
//! them. Before the engine trusts one, the log reads the message at the
//! recorded sequence back and checks that it ends at the recorded LSN
//! ([`super::JetStreamOpening`]'s `resume_after`).
//!
//! Every call is bounded in time: each request by the log's deadline, a
//! transfer additionally by one second per MiB.
//!
//! Architecture invariant: this module names no ticket; an image is bytes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectInfo, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::io::{Io, STREAM_REPLICAS};
use crate::error::{Damage, OpenError, StorageError};
use crate::log::{ImageMark, ImageStore, StoredImage};

/// The bucket that holds a stream's snapshots.
pub fn bucket_for(stream: &str) -> String {
    format!("ticketlog-{stream}-snapshots")
}

/// The object name of the image ending at `lsn`.
fn object_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}")
}

/// The LSN an object name stands for, if it is one of ours.
fn parse_object_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Metadata keys of an object.
const LSN_KEY: &str = "ticketlog-lsn";
const SEQ_KEY: &str = "ticketlog-stream-seq";

/// Time allowed for moving `bytes` bytes, on top of the request deadline.
fn transfer_allowance(bytes: u64) -> Duration {
    Duration::from_secs(bytes / (1 << 20) + 1)
}

/// The bucket of one stream.
///
/// The bucket is an aid to opening, not part of the log: a host whose
/// bucket does not answer at open still opens (by a full replay, with the
/// bucket named in the report's rejected snapshots) and looks for the
/// bucket again when it next lists or stores a snapshot. A bucket that
/// answers with the wrong configuration is refused at open.
pub struct Images {
    io: Arc<Io>,
    /// `None` until the bucket has answered once.
    bucket: Mutex<Option<ObjectStore>>,
    name: String,
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images")
            .field("bucket", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why the bucket could not be had.
enum Missing {
    /// No answer within the deadline (no leader yet, servers down).
    Unreachable(String),
    /// It answered, with a configuration ticketlog does not use.
    Refused(OpenError),
}

impl Images {
    /// Opens the stream's bucket, creating it if needed, and refuses one
    /// whose stream is not file storage on [`STREAM_REPLICAS`] replicas.
    /// A bucket that does not answer within the deadline is looked for
    /// again later (see the type's documentation).
    pub fn open(io: Arc<Io>) -> Result<Images, OpenError> {
        let name = bucket_for(&io.stream);
        let images = Images {
            io,
            bucket: Mutex::new(None),
            name,
        };
        match images.connect() {
            Ok(bucket) => *images.lock() = Some(bucket),
            Err(Missing::Refused(error)) => return Err(error),
            Err(Missing::Unreachable(_)) => {}
        }
        Ok(images)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ObjectStore>> {
        // The guarded value is a handle, whole at every point a panic could
        // leave it: a poisoned lock still holds a usable one.
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket, connecting to it first if it has not answered yet.
    fn bucket(&self) -> Result<ObjectStore, StorageError> {
        if let Some(bucket) = self.lock().as_ref() {
            return Ok(bucket.clone());
        }
        match self.connect() {
            Ok(bucket) => {
                *self.lock() = Some(bucket.clone());
                Ok(bucket)
            }
            Err(Missing::Unreachable(cause)) => Err(self.unavailable("open", cause)),
            Err(Missing::Refused(error)) => Err(self.unavailable("open", error)),
        }
    }

    /// Looks the bucket up (or creates it) and checks its configuration,
    /// within the log's deadline.
    fn connect(&self) -> Result<ObjectStore, Missing> {
        let name = &self.name;
        let deadline = self.io.deadline;
        let context = self.io.context.clone();
        self.io.runtime.block_on(async {
            let started = std::time::Instant::now();
            // Another host may be creating it at the same moment: look again.
            let bucket = loop {
                let attempt = match context.get_object_store(name).await {
                    Ok(bucket) => Ok(bucket),
                    Err(_) => context
                        .create_object_store(object_store::Config {
                            bucket: name.clone(),
                            description: Some(format!(
                                "ticketlog snapshots of stream {}",
                                self.io.stream
                            )),
                            storage: StorageType::File,
                            num_replicas: STREAM_REPLICAS,
                            ..object_store::Config::default()
                        })
                        .await
                        .map_err(|e| e.to_string()),
                };
                match attempt {
                    Ok(bucket) => break bucket,
                    Err(cause) if started.elapsed() >= deadline => {
                        return Err(Missing::Unreachable(cause));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let stream = tokio::time::timeout(deadline, context.get_stream(format!("OBJ_{name}")))
                .await
                .map_err(|_| Missing::Unreachable(format!("no answer within {deadline:?}")))?
                .map_err(|e| Missing::Unreachable(e.to_string()))?;
            let config = &stream.cached_info().config;
            let check = [
                (
                    "snapshot bucket storage",
                    format!("{:?}", StorageType::File),
                    format!("{:?}", config.storage),
                ),
                (
                    "snapshot bucket num_replicas",
                    STREAM_REPLICAS.to_string(),
                    config.num_replicas.to_string(),
                ),
            ];
            for (field, expected, found) in check {
                if expected != found {
                    return Err(Missing::Refused(OpenError::LogConfigMismatch {
                        stream: name.clone(),
                        field,
                        expected,
                        found,
                    }));
                }
            }
            Ok(bucket)
        })
    }

    fn place(&self, lsn: u64) -> PathBuf {
        PathBuf::from(format!("nats-object:{}/{}", self.name, object_name(lsn)))
    }

    fn unavailable(&self, what: &str, cause: impl std::fmt::Display) -> StorageError {
        StorageError::Unavailable {
            appended: 0,
            waited_ms: 0,
            cause: format!("{what} in bucket {}: {cause}", self.name),
        }
    }

    /// What an object's metadata records: its mark, or a mark with no
    /// position (which the log refuses) when the metadata is missing or
    /// disagrees with the name.
    fn stored(&self, lsn: u64, info: &ObjectInfo) -> StoredImage {
        let field = |key: &str| info.metadata.get(key).and_then(|v| v.parse::<u64>().ok());
        let position = match (field(LSN_KEY), field(SEQ_KEY)) {
            (Some(recorded), Some(seq)) if recorded == lsn => seq,
            _ => 0,
        };
        StoredImage {
            mark: ImageMark { lsn, position },
            bytes: info.size as u64,
            place: self.place(lsn),
        }
    }
}

impl ImageStore for Images {
    fn location(&self) -> PathBuf {
        PathBuf::from(format!("nats-object:{}", self.name))
    }

    fn list(&self) -> Result<Vec<StoredImage>, StorageError> {
        let deadline = self.io.deadline;
        let bucket = self.bucket()?;
        let infos = self.io.runtime.block_on(async {
            tokio::time::timeout(deadline, async {
                let mut list = bucket.list().await.map_err(|e| e.to_string())?;
                let mut infos = Vec::new();
                while let Some(info) = list.next().await {
                    let info = info.map_err(|e| e.to_string())?;
                    if !info.deleted {
                        infos.push(info);
                    }
                }
                Ok::<_, String>(infos)
            })
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {deadline:?}")))
        });
        let infos = infos.map_err(|cause| self.unavailable("list snapshots", cause))?;
        let mut found: Vec<StoredImage> = infos
            .iter()
            .filter_map(|info| Some(self.stored(parse_object_name(&info.name)?, info)))
            .collect();
        found.sort_by_key(|image| image.mark.lsn);
        Ok(found)
    }

    fn fetch(&self, lsn: u64) -> Result<Vec<u8>, Damage> {
        let deadline = self.io.deadline;
        let name = object_name(lsn);
        let bucket = self
            .bucket()
            .map_err(|e| Damage::Unreadable(e.to_string()))?;
        self.io.runtime.block_on(async {
            let unreadable = |cause: String| Damage::Unreadable(cause);
            let mut object = tokio::time::timeout(deadline, bucket.get(&name))
                .await
                .map_err(|_| unreadable(format!("no answer within {deadline:?}")))?
                .map_err(|e| unreadable(e.to_string()))?;
            let size = object.info().size as u64;
            // The declared size bounds what is read; the object store checks
            // its SHA-256 digest once the last chunk is in.
            let mut bytes = Vec::new();
            let read = tokio::time::timeout(
                deadline.saturating_add(transfer_allowance(size)),
                (&mut object).take(size + 1).read_to_end(&mut bytes),
            )
            .await
            .map_err(|_| unreadable(format!("not read whole within {deadline:?}")))?;
            read.map_err(|e| unreadable(e.to_string()))?;
            if bytes.len() as u64 != size {
                return Err(unreadable(format!(
                    "{} bytes read of the {size} the object store records",
                    bytes.len()
                )));
            }
            Ok(bytes)
        })
    }

    fn put(&self, mark: ImageMark, bytes: &[u8]) -> Result<StoredImage, StorageError> {
        let name = object_name(mark.lsn);
        let deadline = self.io.deadline;
        let metadata = HashMap::from([
            (LSN_KEY.to_string(), mark.lsn.to_string()),
            (SEQ_KEY.to_string(), mark.position.to_string()),
        ]);
        let bucket = self.bucket()?;
        let info = self.io.runtime.block_on(async {
            // Another host may have stored this LSN's image already: the
            // same state, so the same bytes.
            if let Ok(Ok(info)) = tokio::time::timeout(deadline, bucket.info(&name)).await
                && !info.deleted
                && info.metadata == metadata
                && info.size == bytes.len()
            {
                return Ok(info);
            }
            let mut reader = bytes;
            tokio::time::timeout(
                deadline.saturating_add(transfer_allowance(bytes.len() as u64)),
                bucket.put(
                    ObjectMetadata {
                        name: name.clone(),
                        description: Some(format!(
                            "ticketlog snapshot through LSN {} (stream sequence {})",
                            mark.lsn, mark.position
                        )),
                        metadata: metadata.clone(),
                        ..ObjectMetadata::default()
                    },
                    &mut reader,
                ),
            )
            .await
            .map_err(|_| format!("not stored within {deadline:?}"))?
            .map_err(|e| e.to_string())
        });
        let info = info.map_err(|cause| self.unavailable("store a snapshot", cause))?;
        Ok(self.stored(mark.lsn, &info))
    }

    fn remove(&self, lsn: u64) -> Result<(), StorageError> {
        let deadline = self.io.deadline;
        let name = object_name(lsn);
        let bucket = self.bucket()?;
        let removed = self.io.runtime.block_on(async {
            match tokio::time::timeout(deadline, bucket.delete(&name)).await {
                Err(_) => Err(format!("no answer within {deadline:?}")),
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    // Gone already (another host's retention got there first).
                    match tokio::time::timeout(deadline, bucket.info(&name)).await {
                        Ok(Ok(info)) if !info.deleted => Err(error.to_string()),
                        Ok(Ok(_)) | Ok(Err(_)) => Ok(()),
                        Err(_) => Err(error.to_string()),
                    }
                }
            }
        });
        removed.map_err(|cause| self.unavailable("remove a snapshot", cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        assert_eq!(object_name(42), "snapshot-00000000000000000042");
        assert_eq!(parse_object_name(&object_name(42)), Some(42));
        assert_eq!(parse_object_name("snapshot-42"), None);
        assert_eq!(parse_object_name("other-00000000000000000042"), None);
        assert_eq!(bucket_for("T"), "ticketlog-T-snapshots");
    }
}
