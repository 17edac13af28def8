//! Appending to the audit log: one writer at a time (an exclusive file
//! lock), each record one `write` of a whole line, `sync` (fdatasync) when
//! the caller is about to act on what it recorded, and signed checkpoints.
//!
//! Opening a log re-reads it to rebuild the Merkle tree head and the hash
//! chain. A log that ends in a partial line (a crash mid-write) is never
//! silently repaired: the partial bytes are moved to `LOG.torn-OFFSET`
//! beside it, and a `torn-tail` record says where they went and what they
//! hashed to. Nothing here judges the log's integrity: that is `verify`'s.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

use super::merkle::{Hash, Tree, leaf_hash};
use super::note::{KeyError, Signer};
use super::record::{Event, Record, VERSION, rfc3339};

/// Sign a checkpoint at least this often during long runs...
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);
/// ...or after this many records, whichever comes first.
const CHECKPOINT_RECORDS: u64 = 10_000;

/// Why the log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot encode an audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Told of every record as it is appended (`observe::Observer`: metrics,
/// traces, lineage, notifications are all derived from the records). It
/// is called while the log is held, right after the record is written:
/// it must only update memory or hand work to another task, never wait,
/// and never write to the log.
pub trait Tap: Send + Sync {
    /// Record `record` was appended; `line` is its bytes as written
    /// (without the newline).
    fn recorded(&self, record: &Record, line: &[u8]);
}

/// An open audit log.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    tree: Tree,
    prev: Hash,
    origin: String,
    signer: Signer,
    last_checkpoint: Instant,
    records_since_checkpoint: u64,
    /// Records appended since the last sync.
    unsynced: bool,
    /// Whether the log as found held records no checkpoint covers (a
    /// writer was killed): [`AuditLog::seal`] signs them.
    left_unsigned: bool,
    /// The note of the last checkpoint record, if the log ends in one.
    last_note: Option<String>,
    /// Who is told of each record appended.
    tap: Option<std::sync::Arc<dyn Tap>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("size", &self.tree.size())
            .finish_non_exhaustive()
    }
}

/// The lines of the log `bytes` that may be records of run `run` (each
/// with its newline), found by the `"run":"ID"` every such record's line
/// holds, without decoding the others: what a reader of one run's
/// records needs from a log of many runs. A line of another run can be
/// among them (the text could appear inside another record); callers
/// still check each record's `run`. A last line without its newline (a
/// torn tail) is left out.
#[must_use]
pub fn lines_of_run(bytes: &[u8], run: &str) -> Vec<u8> {
    let needle = format!("\"run\":{}", serde_json::Value::String(run.to_owned()));
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = bytes.get(from..).and_then(|rest| finder.find(rest)) {
        let at = from + found;
        let start = bytes
            .get(..at)
            .and_then(|before| memchr::memrchr(b'\n', before))
            .map_or(0, |nl| nl + 1);
        let Some(end) = bytes
            .get(at..)
            .and_then(|after| memchr::memchr(b'\n', after))
            .map(|nl| at + nl + 1)
        else {
            break;
        };
        out.extend_from_slice(bytes.get(start..end).unwrap_or_default());
        from = end;
    }
    out
}

/// Hex of a hash.
#[must_use]
pub fn hex(hash: &[u8]) -> String {
    let mut s = String::with_capacity(hash.len() * 2);
    crate::digest::push_hex(&mut s, hash);
    s
}

/// A new log id: 16 random hex digits.
fn new_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (nanos as u64).to_be_bytes();
    }
    hex(&bytes)
}

/// Whether no process is writing the log at `path` now: it is held by an
/// open [`AuditLog`] (an exclusive lock) only while a writer runs. While the
/// returned file is held, no writer can start. `None` when a writer holds
/// it (or the log cannot be opened).
#[must_use]
pub fn idle(path: &Path) -> Option<File> {
    let file = OpenOptions::new().read(true).open(path).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

impl AuditLog {
    /// Open (or create) the log at `path`, signing checkpoints with `signer`.
    /// Waits while another process holds the log.
    ///
    /// # Errors
    ///
    /// I/O errors on the log or its folder.
    pub fn open(path: &Path, signer: Signer) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::warn!(
                    "another cairn process is writing the audit log `{}`; waiting for it",
                    path.display()
                );
                file.lock().map_err(io)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;

        let mut tree = Tree::new();
        let mut prev = [0u8; 32];
        let mut origin = None;
        let mut complete = 0usize;
        let mut last_line: &[u8] = &[];
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            let Some(line) = line.strip_suffix(b"\n") else {
                break;
            };
            complete += line.len() + 1;
            last_line = line;
            if origin.is_none()
                && let Ok((
                    Record {
                        event: Event::LogOpened { origin: o, .. },
                        ..
                    },
                    _,
                )) = Record::decode(line)
            {
                origin = Some(o);
            }
            tree.push(leaf_hash(line));
            prev = Sha256::digest(line).into();
        }
        // Does the log end in a checkpoint (all of it signed)?
        let last_note = match Record::decode(last_line) {
            Ok((
                Record {
                    event: Event::Checkpoint { note, .. },
                    ..
                },
                _,
            )) => Some(note),
            _ => None,
        };
        let left_unsigned = complete > 0 && last_note.is_none();
        let torn = bytes.get(complete..).unwrap_or_default().to_vec();
        drop(bytes);

        let mut log = Self {
            path: path.to_owned(),
            file,
            tree,
            prev,
            origin: String::new(),
            signer,
            last_checkpoint: Instant::now(),
            records_since_checkpoint: 0,
            // What an earlier process wrote may not be on disk yet.
            unsynced: true,
            left_unsigned,
            last_note,
            tap: None,
        };
        if !torn.is_empty() {
            let saved = PathBuf::from(format!("{}.torn-{complete}", path.display()));
            std::fs::write(&saved, &torn).map_err(io)?;
            File::open(&saved).and_then(|f| f.sync_all()).map_err(io)?;
            log.file.set_len(complete as u64).map_err(io)?;
            log.file.seek(SeekFrom::End(0)).map_err(io)?;
            log.file.sync_all().map_err(io)?;
            log.append(
                "",
                Event::TornTail {
                    offset: complete as u64,
                    bytes: torn.len() as u64,
                    sha256: format!("sha256:{}", hex(&Sha256::digest(&torn))),
                    saved_as: saved
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                },
            )?;
            log.sync()?;
            log.left_unsigned = true;
        }
        match origin {
            Some(origin) => log.origin = origin,
            None if log.tree.size() == 0 => {
                let id = new_id();
                log.origin = format!("cairn.local/audit/{id}");
                let origin = log.origin.clone();
                log.append("", Event::LogOpened { log: id, origin })?;
                log.sync()?;
            }
            // A log whose first record is unreadable: checkpoints still get
            // an origin, and `verify` reports the first record.
            None => log.origin = format!("cairn.local/audit/{}", new_id()),
        }
        Ok(log)
    }

    /// The checkpoint origin (`cairn.local/audit/<id>`).
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Append one record of run `run` (not yet durable: see [`Self::sync`]).
    /// Returns its sequence number.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn append(&mut self, run: &str, event: Event) -> Result<u64, AuditError> {
        let seq = self.tree.size();
        let record = Record {
            v: VERSION,
            seq,
            time: rfc3339(SystemTime::now()),
            run: run.to_owned(),
            prev: hex(&self.prev),
            event,
        };
        let mut line = record.encode()?;
        let hash = leaf_hash(&line);
        let prev: Hash = Sha256::digest(&line).into();
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.tree.push(hash);
        self.prev = prev;
        self.records_since_checkpoint += 1;
        self.unsynced = true;
        self.last_note = None;
        if let Some(tap) = &self.tap {
            tap.recorded(&record, line.strip_suffix(b"\n").unwrap_or(&line));
        }
        Ok(seq)
    }

    /// Tell `tap` of every record appended from now on.
    pub fn tap(&mut self, tap: std::sync::Arc<dyn Tap>) {
        self.tap = Some(tap);
    }

    /// Make every appended record durable (fdatasync); nothing to do when
    /// nothing was appended since the last sync, so callers sync whenever
    /// they are about to act and records written in between share one.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if !self.unsynced {
            return Ok(());
        }
        self.file.sync_data().map_err(|source| AuditError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = false;
        Ok(())
    }

    /// Sign a checkpoint of every record so far, append it and sync.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn checkpoint(&mut self, run: &str) -> Result<u64, AuditError> {
        let size = self.tree.size();
        let root = self.tree.root();
        let note = self.signer.sign_checkpoint(&self.origin, size, &root);
        let seq = self.append(
            run,
            Event::Checkpoint {
                size,
                root: B64.encode(root),
                note: note.clone(),
            },
        )?;
        self.sync()?;
        self.publish(&note)?;
        self.last_checkpoint = Instant::now();
        self.records_since_checkpoint = 0;
        self.left_unsigned = false;
        self.last_note = Some(note);
        Ok(seq)
    }

    /// Finish what a killed writer left: sign a checkpoint over records no
    /// checkpoint covers yet, or, when the log ends in a checkpoint that
    /// `STATE/audit/checkpoint` does not hold, write it there. Returns
    /// whether a checkpoint was signed.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn seal(&mut self) -> Result<bool, AuditError> {
        if self.left_unsigned {
            self.checkpoint("")?;
            return Ok(true);
        }
        if let Some(note) = self.last_note.clone() {
            let latest = self.path.with_file_name("checkpoint");
            if std::fs::read_to_string(&latest).ok() != Some(note.clone()) {
                self.publish(&note)?;
            }
        }
        Ok(false)
    }

    /// Write the latest checkpoint on its own, to publish or hand to
    /// auditors (`STATE/audit/checkpoint`): written aside, then renamed.
    fn publish(&self, note: &str) -> Result<(), AuditError> {
        let latest = self.path.with_file_name("checkpoint");
        let aside = self.path.with_file_name(".checkpoint.tmp");
        std::fs::write(&aside, note.as_bytes())
            .and_then(|()| File::open(&aside)?.sync_all())
            .and_then(|()| std::fs::rename(&aside, &latest))
            .map_err(|source| AuditError::Io {
                path: latest,
                source,
            })
    }

    /// Sign a checkpoint if records follow the last one: for a writer
    /// that stops, or a service that has been idle a while.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn close(&mut self) -> Result<(), AuditError> {
        if self.records_since_checkpoint > 0 || self.left_unsigned {
            self.checkpoint("")?;
        } else {
            self.seal()?;
        }
        Ok(())
    }

    /// The key checkpoints are signed with (the service signs a bundle's
    /// provenance with it too).
    #[must_use]
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Sign a checkpoint now if any record follows the last one, so that
    /// everything so far is covered (a bundle asked for over the API).
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn checkpoint_unsigned(&mut self) -> Result<(), AuditError> {
        if self.records_since_checkpoint > 0 {
            self.checkpoint("")?;
        }
        Ok(())
    }

    /// Sign a checkpoint if records follow the last one and it is older
    /// than the checkpoint interval (a service between requests).
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn checkpoint_if_stale(&mut self) -> Result<(), AuditError> {
        if self.records_since_checkpoint > 0 && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint("")?;
        }
        Ok(())
    }

    /// Sign a checkpoint if the last one is old or many records back.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub fn checkpoint_if_due(&mut self, run: &str) -> Result<(), AuditError> {
        if self.records_since_checkpoint >= CHECKPOINT_RECORDS
            || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
        {
            self.checkpoint(run)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_seed("test", &[3; 32])
    }

    #[test]
    fn a_runs_lines_are_found_without_the_others() {
        let log = concat!(
            "{\"v\":1,\"seq\":0,\"run\":\"a\",\"kind\":\"x\"}\n",
            "{\"v\":1,\"seq\":1,\"run\":\"ab\",\"kind\":\"x\"}\n",
            "{\"v\":1,\"seq\":2,\"run\":\"a\",\"kind\":\"y\"}\n",
            "{\"v\":1,\"seq\":3,\"run\":\"a\",\"kind\":\"torn"
        );
        let found = String::from_utf8(lines_of_run(log.as_bytes(), "a")).unwrap();
        assert_eq!(
            found,
            "{\"v\":1,\"seq\":0,\"run\":\"a\",\"kind\":\"x\"}\n{\"v\":1,\"seq\":2,\"run\":\"a\",\"kind\":\"y\"}\n"
        );
        assert!(lines_of_run(log.as_bytes(), "zzz").is_empty());
    }

    #[test]
    fn a_second_writer_waits_and_continues_the_same_tree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let mut first = AuditLog::open(&path, signer()).unwrap();
        first
            .append(
                "r",
                Event::TaskSkipped {
                    task: "a".into(),
                    reason: "x".into(),
                },
            )
            .unwrap();
        let waiting = {
            let path = path.clone();
            std::thread::spawn(move || AuditLog::open(&path, signer()).unwrap().size())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiting.is_finished(), "the second writer did not wait");
        first.checkpoint("r").unwrap();
        let size = first.size();
        drop(first);
        assert_eq!(waiting.join().unwrap(), size);
        let report = crate::audit::verify::verify(
            &std::fs::read(&path).unwrap(),
            &signer().verifier(),
            &crate::audit::verify::Artifacts::default(),
        );
        assert!(report.ok(), "{:?}", report.problems);
    }
}
