//! Positions in a local directory, for single-node runs without etcd.
//!
//! ```text
//! {dir}/               mode 0700
//! {dir}/lock           flock(2)-ed for the store's lifetime; holds the owner's pid
//! {dir}/position.json  the StoredPosition, mode 0600
//! {dir}/position.json.tmp  only while a write is in flight (or after a crash)
//! {dir}/history.jsonl  one HistoryEntry per forced change, appended
//! ```
//!
//! # Invariants
//!
//! * **Atomic replacement.** A write goes to `position.json.tmp`, which is
//!   fsynced, renamed over `position.json`, and then the directory is
//!   fsynced so the rename itself is durable. A crash at any point leaves
//!   either the old or the new record in `position.json`; a leftover temp
//!   file is never read and is replaced by the next write. (Losing the newest
//!   record only means replaying a little more — safe, because Load is
//!   idempotent.)
//! * **One process per directory.** [`LocalPositionStore::open`] takes an
//!   exclusive, non-blocking `flock` on `lock` and keeps it until the store
//!   is dropped. The kernel releases it when the process dies, even by
//!   SIGKILL, so there is no stale-lock cleanup — which is why this is a
//!   flock and not a pid file. A second process (or a second `open` in the
//!   same process) fails with [`CoordError::Locked`]. flock is only reliable
//!   on local file systems (do not put the directory on NFS), and only while
//!   nobody deletes `lock` by hand.
//! * **Monotonic.** Within the process, writes are serialised by a mutex so
//!   the read-check-write of the monotonicity rule is atomic; other processes
//!   are kept out by the lock.
//! * **Private.** The directory is created with mode 0700 and files with
//!   0600: positions name the source's binlog and writer ids name hosts.
//!   An existing directory is checked when the store opens: one owned by
//!   another user, or writable by group or others — or whose parent (the
//!   configured `coordination.local.dir`) is writable by group or others
//!   without the sticky bit — is **refused** ([`CoordError::InsecureStateDir`]),
//!   because whoever can write there can rewrite the position sluice resumes
//!   from (skipping or replaying changes). A directory that others can only
//!   read or enter gets a warning. Modes are never changed behind the
//!   operator's back; the message says what to run.
//!
//! This store has no leader key, so it accepts only [`Fence::None`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sluice_core::Position;

use crate::error::CoordError;
use crate::record::{
    check_advance, check_writer, forced_record, Fence, HistoryEntry, StoredPosition,
};
use crate::store::PositionStore;

const LOCK_FILE: &str = "lock";
const POSITION_FILE: &str = "position.json";
const TEMP_FILE: &str = "position.json.tmp";
const HISTORY_FILE: &str = "history.jsonl";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// The record in `{dir}/position.json` as last written, read without the
/// lock — for a reader beside the running node (`sluice verify`): every
/// write replaces the file by a rename, so a read sees the old or the new
/// record whole. `None` when nothing was written yet.
pub fn peek(dir: &Path) -> Result<Option<StoredPosition>, CoordError> {
    let path = dir.join(POSITION_FILE);
    match fs::read(&path) {
        Ok(bytes) => StoredPosition::from_json(&bytes, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoordError::io("reading", path)(e)),
    }
}

/// A pipeline's position in `{dir}/position.json`; see the module docs.
#[derive(Debug, Clone)]
pub struct LocalPositionStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Holds the flock; closing it (on drop) releases the lock.
    _lock: File,
    /// Serialises read-check-write sequences within this process.
    write_lock: Mutex<()>,
}

impl LocalPositionStore {
    /// Creates `dir` (mode 0700) if needed and locks it for this store's
    /// lifetime. Fails with [`CoordError::Locked`] if another store holds it.
    /// Blocking, but brief (mkdir, open, a non-blocking flock): meant for
    /// startup.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, CoordError> {
        let dir = dir.as_ref().to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(CoordError::io("creating state directory", &dir))?;
        let mode = check_private(&dir)?;
        if mode & 0o077 != 0 {
            // Created by someone else; changing an operator's directory mode
            // behind their back would be a surprise, so only say so.
            tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777),
                "state directory is accessible to other users; 0700 is recommended");
        }
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&lock_path)
            .map_err(CoordError::io("opening lock file", &lock_path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(CoordError::Locked {
                    dir,
                    lock: lock_path,
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            return Err(CoordError::io("locking", lock_path)(error));
        }
        // Diagnostics only: the pid tells the next process who holds it.
        lock.set_len(0)
            .and_then(|()| lock.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(CoordError::io("writing lock file", &lock_path))?;
        Ok(LocalPositionStore {
            inner: Arc::new(Inner {
                dir,
                _lock: lock,
                write_lock: Mutex::new(()),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of the position file.
    pub fn position_path(&self) -> PathBuf {
        self.inner.dir.join(POSITION_FILE)
    }

    /// The forced position changes, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, CoordError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.history()).await
    }
}

impl Inner {
    fn position_path(&self) -> PathBuf {
        self.dir.join(POSITION_FILE)
    }

    fn read(&self) -> Result<Option<StoredPosition>, CoordError> {
        peek(&self.dir)
    }

    /// temp + fsync + rename + fsync(dir); see the module docs.
    fn replace(&self, record: &StoredPosition) -> Result<(), CoordError> {
        let temp = self.dir.join(TEMP_FILE);
        // A leftover from a crash may have any mode or content: start over
        // so the new file is created with FILE_MODE.
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(CoordError::io("removing stale temp file", &temp)(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .map_err(CoordError::io("creating", &temp))?;
        file.write_all(&record.to_json())
            .and_then(|()| file.sync_all())
            .map_err(CoordError::io("writing", &temp))?;
        drop(file);
        let target = self.position_path();
        fs::rename(&temp, &target).map_err(CoordError::io("renaming temp file to", &target))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), CoordError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(CoordError::io("syncing state directory", &self.dir))
    }

    fn store(&self, record: &StoredPosition, fence: &Fence) -> Result<(), CoordError> {
        check_writer(&record.written_by)?;
        if let Fence::Leader { .. } = fence {
            return Err(CoordError::FenceUnsupported {
                location: self.position_path().display().to_string(),
            });
        }
        fence.check_record(record)?;
        let _serialised = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.read()?;
        check_advance(
            &self.position_path().display().to_string(),
            current.as_ref(),
            record,
        )?;
        self.replace(record)
    }

    fn force(&self, position: Position, changed_by: &str) -> Result<StoredPosition, CoordError> {
        let _serialised = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A corrupt file is exactly what an operator may need to force over.
        let current = match self.read() {
            Ok(current) => current,
            Err(CoordError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        let record = forced_record(current.as_ref(), position, changed_by)?;
        // Audit first: a crash between the two leaves an entry for a change
        // that did not happen, which is visible; the reverse would hide one.
        self.append_history(&HistoryEntry {
            replaced: current,
            record: record.clone(),
        })?;
        self.replace(&record)?;
        tracing::warn!(dir = %self.dir.display(), position = %record.position,
            batch_id = record.batch_id, changed_by, "position forced");
        Ok(record)
    }

    fn append_history(&self, entry: &HistoryEntry) -> Result<(), CoordError> {
        let path = self.dir.join(HISTORY_FILE);
        let mut line = serde_json::to_vec(entry).expect("HistoryEntry serialises");
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(CoordError::io("opening", &path))?;
        file.write_all(&line)
            .and_then(|()| file.sync_all())
            .map_err(CoordError::io("appending to", &path))?;
        self.sync_dir()
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, CoordError> {
        let path = self.dir.join(HISTORY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CoordError::io("reading", path)(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|source| CoordError::Corrupt {
                    location: format!("{}:{}", path.display(), i + 1),
                    source,
                })
            })
            .collect()
    }
}

/// Refuses a state directory that other users can change (see "Private" in
/// the module docs); returns its mode.
fn check_private(dir: &Path) -> Result<u32, CoordError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).map_err(CoordError::io("reading state directory", dir))?;
    let mode = meta.mode() & 0o7777;
    let insecure = |reason: String| CoordError::InsecureStateDir {
        dir: dir.to_path_buf(),
        reason,
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(insecure(format!(
            "owned by uid {}, not by this process's user (uid {me}); use a directory of your own",
            meta.uid()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "writable by group or others (mode {:o}); run `chmod 700 {}`",
            mode & 0o777,
            dir.display()
        )));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        let parent_mode = fs::metadata(parent)
            .map_err(CoordError::io("reading state directory", parent))?
            .mode();
        // The sticky bit (as on /tmp) stops others renaming our directory.
        if parent_mode & 0o022 != 0 && parent_mode & 0o1000 == 0 {
            return Err(insecure(format!(
                "its parent {} is writable by group or others (mode {:o}), who could replace it; \
                 run `chmod go-w {}`",
                parent.display(),
                parent_mode & 0o777,
                parent.display()
            )));
        }
    }
    Ok(mode)
}

/// Runs file I/O (fsync can take milliseconds) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CoordError> + Send + 'static,
) -> Result<T, CoordError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(CoordError::Io {
            what: "running file I/O",
            path: PathBuf::new(),
            source: io::Error::new(io::ErrorKind::Interrupted, "runtime shutting down"),
        }),
    }
}

impl PositionStore for LocalPositionStore {
    async fn load(&self) -> Result<Option<StoredPosition>, CoordError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.read()).await
    }

    async fn store(&self, record: &StoredPosition, fence: &Fence) -> Result<(), CoordError> {
        let (inner, record, fence) = (Arc::clone(&self.inner), record.clone(), fence.clone());
        blocking(move || inner.store(&record, &fence)).await
    }

    async fn force_store(
        &self,
        position: Position,
        changed_by: &str,
    ) -> Result<StoredPosition, CoordError> {
        let (inner, changed_by) = (Arc::clone(&self.inner), changed_by.to_owned());
        blocking(move || inner.force(position, &changed_by)).await
    }

    fn location(&self) -> String {
        self.inner.position_path().display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use sluice_core::{Classify, ErrorClass};

    use super::*;

    fn record(batch_id: u64, offset: u64) -> StoredPosition {
        StoredPosition::new(
            Position::new("mysql-bin.000001", offset),
            batch_id,
            "node-a",
            &Fence::None,
        )
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn round_trip_monotonic_and_permissions() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("state/shop");
        let s = LocalPositionStore::open(&dir).expect("open");
        assert_eq!(s.load().await.expect("load"), None);
        s.store(&record(1, 100), &Fence::None).await.expect("store");
        let second = record(2, 200);
        s.store(&second, &Fence::None).await.expect("store");
        assert_eq!(s.load().await.expect("load"), Some(second));
        let err = s
            .store(&record(1, 300), &Fence::None)
            .await
            .expect_err("backwards");
        assert!(matches!(err, CoordError::Backwards { .. }), "{err}");
        let err = s
            .store(&record(2, 201), &Fence::None)
            .await
            .expect_err("conflict");
        assert!(matches!(err, CoordError::BatchConflict { .. }), "{err}");
        assert_eq!(s.load().await.expect("load").map(|r| r.batch_id), Some(2));

        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(POSITION_FILE)), 0o600);
        assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
        assert!(!dir.join(TEMP_FILE).exists());
    }

    #[tokio::test]
    async fn directories_others_can_change_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("state/shop");
        drop(LocalPositionStore::open(&dir).expect("open"));
        assert_eq!(mode(&root.path().join("state")), 0o700);

        // Group-writable state directory: refused, naming the fix.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).expect("chmod");
        let err = LocalPositionStore::open(&dir).expect_err("group-writable");
        assert!(matches!(err, CoordError::InsecureStateDir { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
        assert!(err.to_string().contains("chmod 700"), "{err}");

        // Readable by others: allowed (with a warning).
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        drop(LocalPositionStore::open(&dir).expect("readable by others is allowed"));

        // A world-writable parent without the sticky bit: refused; with it
        // (like /tmp): allowed.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        let parent = root.path().join("state");
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = LocalPositionStore::open(&dir).expect_err("world-writable parent");
        assert!(err.to_string().contains("its parent"), "{err}");
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).expect("chmod");
        drop(LocalPositionStore::open(&dir).expect("sticky parent is fine"));
    }

    #[tokio::test]
    async fn leader_fences_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = LocalPositionStore::open(root.path()).expect("open");
        let fence = Fence::Leader {
            key: "/x".into(),
            create_revision: 1,
        };
        let r = StoredPosition::new(Position::new("f.1", 4), 1, "n", &fence);
        let err = s.store(&r, &fence).await.expect_err("unsupported");
        assert!(matches!(err, CoordError::FenceUnsupported { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
    }

    #[tokio::test]
    async fn leftover_temp_file_from_a_crash_is_ignored_and_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = record(1, 100);
        {
            let s = LocalPositionStore::open(root.path()).expect("open");
            s.store(&first, &Fence::None).await.expect("store");
        }
        // A crash mid-write: a half-written, world-readable temp file.
        let temp = root.path().join(TEMP_FILE);
        fs::write(&temp, b"{\"position\":{\"file\":\"mysql-bin.0000").expect("write");
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o644)).expect("chmod");

        let s = LocalPositionStore::open(root.path()).expect("reopen");
        assert_eq!(s.load().await.expect("load"), Some(first));
        let second = record(2, 200);
        s.store(&second, &Fence::None).await.expect("store");
        assert_eq!(s.load().await.expect("load"), Some(second));
        assert!(!temp.exists());
        assert_eq!(mode(&root.path().join(POSITION_FILE)), 0o600);
    }

    #[tokio::test]
    async fn corrupt_position_file_is_definite() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = LocalPositionStore::open(root.path()).expect("open");
        fs::write(s.position_path(), b"garbage").expect("write");
        let err = s.load().await.expect_err("corrupt");
        assert!(matches!(err, CoordError::Corrupt { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
        assert!(err.to_string().contains(POSITION_FILE), "{err}");
        // An operator can force over it.
        let forced = s
            .force_store(Position::new("mysql-bin.000009", 4), "alice")
            .await
            .expect("force");
        assert_eq!(forced.batch_id, 0);
        assert_eq!(s.load().await.expect("load"), Some(forced));
    }

    #[tokio::test]
    async fn lock_excludes_a_second_store_until_dropped() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = LocalPositionStore::open(root.path()).expect("open");
        let err = LocalPositionStore::open(root.path()).expect_err("locked");
        let CoordError::Locked { holder, .. } = &err else {
            panic!("expected Locked, got {err}");
        };
        assert_eq!(holder, &format!(" (pid {})", std::process::id()));
        assert_eq!(err.class(), ErrorClass::Definite);
        drop(s);
        LocalPositionStore::open(root.path()).expect("lock released on drop");
    }

    #[tokio::test]
    async fn force_store_supersedes_and_is_audited() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = LocalPositionStore::open(root.path()).expect("open");
        s.store(&record(5, 500), &Fence::None).await.expect("store");
        let replaced = s.load().await.expect("load");
        let forced = s
            .force_store(Position::new("mysql-bin.000001", 4), "bob via cli")
            .await
            .expect("force");
        assert_eq!(
            (forced.batch_id, forced.written_by.as_str()),
            (6, "bob via cli")
        );
        assert_eq!(s.load().await.expect("load"), Some(forced.clone()));
        let history = s.history().await.expect("history");
        assert_eq!(
            history,
            vec![HistoryEntry {
                replaced,
                record: forced
            }]
        );
        assert_eq!(mode(&root.path().join(HISTORY_FILE)), 0o600);
    }
}
