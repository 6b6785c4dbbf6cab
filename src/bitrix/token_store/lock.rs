//! The refresh lock beside the token file (`<token file>.lock`): an advisory lock (`flock`) that
//! makes one process on the file refresh while the others wait, and ends with its holder however
//! that process ends. Anything but a regular file at its path is refused, never followed.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;

use super::{TokenStore, create_private_dir, file_kind};

/// The exclusive lock on the file beside the token file, held for one refresh. Several processes
/// on one app share the token file; the lock makes one of them refresh while the others wait and
/// then adopt what it saved. It is an advisory lock (`flock`): it ends with the process that holds
/// it, however that process ends. Dropping this releases it.
#[derive(Debug)]
pub struct RefreshLock {
    _file: File,
}

/// Why the lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the token file's lock {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "another process has been refreshing the OAuth tokens (it holds {path}) for over {} s",
        .waited.as_secs()
    )]
    Busy {
        path: PathBuf,
        waited: std::time::Duration,
    },
    /// Something this server did not make is at the lock's path. A link is not followed (it
    /// would create or lock a file elsewhere); retrying cannot help.
    #[error(
        "the token file's lock {path} is {kind}, not a regular file; remove or rename it (the \
         server creates the lock itself), or point BITRIX24_TOKEN_FILE elsewhere"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
}

/// How often a waiting process tries the lock again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(25);

impl TokenStore {
    /// The lock file: the token file's path with `.lock` added.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Refuses a lock path that holds anything but a regular file (or nothing): a directory, a
    /// symbolic link (never followed), a FIFO, a device.
    pub fn check_lock_path(&self) -> Result<(), LockError> {
        let path = self.lock_path();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(LockError::NotRegular {
                path,
                kind: "a symbolic link",
            }),
            Ok(meta) if !meta.is_file() => Err(LockError::NotRegular {
                path,
                kind: file_kind(&meta),
            }),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LockError::Open { path, source }),
        }
    }

    /// Takes the refresh lock, waiting at most `max_wait`; `waiting` is called once if another
    /// process holds it, so the wait can be reported.
    pub async fn lock(
        &self,
        max_wait: std::time::Duration,
        waiting: impl Fn(),
    ) -> Result<RefreshLock, LockError> {
        let path = self.lock_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        }
        self.check_lock_path()?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|source| LockError::Open {
            path: path.clone(),
            source,
        })?;
        let started = tokio::time::Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RefreshLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(LockError::Open { path, source });
                }
            }
            if started.elapsed() >= max_wait {
                return Err(LockError::Busy {
                    path,
                    waited: max_wait,
                });
            }
            if !told {
                waiting();
                told = true;
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }
}
