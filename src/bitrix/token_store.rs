//! The durable token file. Bitrix24 rotates the refresh token on every refresh and the old one
//! stops working, so losing the newest one locks the user out until the app is authorized again.
//! Saves are atomic (temp file in the same directory, fsync, rename, fsync of the directory) and
//! private (mode 0600): a crash at any moment leaves the old or the new complete file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::secret::Secret;

mod lock;

pub use lock::{LockError, RefreshLock};

/// One OAuth token pair and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Unix time the access token expires, when known.
    pub expires_at: Option<i64>,
}

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokens {
    pub tokens: Tokens,
    /// A fingerprint of the refresh token the file was first seeded from (from the environment),
    /// so a newer pair pasted into the environment after re-authorizing is recognised.
    pub seed: String,
    /// How many refreshes this pair is from the seed: of two pairs from one seed, the one with
    /// the higher number is the newer. `None` in a record an older version wrote.
    pub serial: Option<u64>,
    /// Unix time of the save.
    pub saved_at: i64,
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    access_token: String,
    refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(default)]
    seed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serial: Option<u64>,
    #[serde(default)]
    saved_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the token file {path} is not a valid token file ({detail}); fix it or delete it and \
         set BITRIX24_REFRESH_TOKEN"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot write the token file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "the token file {path} is {kind}, not a regular file; point BITRIX24_TOKEN_FILE at a \
         regular file (or a path where one can be created)"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
}

/// The token file at one path.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
}

/// A temp file this old cannot belong to a save still under way.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(60);

/// Distinguishes temp files of concurrent saves within one process.
static SAVE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TokenStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored tokens, or `None` when there is no file yet. Anything but a regular file (a
    /// FIFO would block the read for ever, a device could be endless) is refused before it is
    /// opened.
    pub fn load(&self) -> Result<Option<StoredTokens>, StoreError> {
        match fs::metadata(&self.path) {
            Ok(meta) if !meta.is_file() => {
                return Err(StoreError::NotRegular {
                    path: self.path.clone(),
                    kind: file_kind(&meta),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        decode(text.as_bytes())
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                path: self.path.clone(),
                detail,
            })
    }

    /// Removes temp files a killed process left beside the token file. Only ones older than
    /// [`STALE_TEMP`] go: a younger one may belong to a save under way in another process.
    /// Returns how many were removed.
    pub fn remove_stale_temps(&self) -> usize {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return 0;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
            .filter(|entry| {
                let age = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                age.is_some_and(|age| age >= STALE_TEMP)
            })
            .filter(|entry| fs::remove_file(entry.path()).is_ok())
            .count()
    }

    /// Makes an existing token file private (0600) if others may read it. Returns the mode it
    /// had when it was changed.
    pub fn make_private(&self) -> Result<Option<u32>, StoreError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let write_error = |source| StoreError::Write {
                path: self.path.clone(),
                source,
            };
            let meta = match fs::metadata(&self.path) {
                Ok(meta) if meta.is_file() => meta,
                _ => return Ok(None),
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                return Ok(None);
            }
            fs::set_permissions(&self.path, fs::Permissions::from_mode(0o600))
                .map_err(write_error)?;
            Ok(Some(mode))
        }
        #[cfg(not(unix))]
        {
            Ok(None)
        }
    }

    /// The file a save replaces: the configured path, or — when it is a symbolic link — the
    /// link's target, so the link itself survives (a dotfiles setup keeps working).
    fn target(&self) -> io::Result<PathBuf> {
        let mut path = self.path.clone();
        // A bounded walk: a cycle of links is an error, not a hang.
        for _ in 0..40 {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let link = fs::read_link(&path)?;
                    path = match path.parent() {
                        Some(dir) if link.is_relative() => dir.join(link),
                        _ => link,
                    };
                }
                _ => return Ok(path),
            }
        }
        Err(io::Error::other("too many levels of symbolic links"))
    }

    /// Replaces the file atomically with `stored`.
    pub fn save(&self, stored: &StoredTokens) -> Result<(), StoreError> {
        let write_error = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let target = self.target().map_err(write_error)?;
        let json = encode(stored);
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".into());
        create_private_dir(&dir).map_err(write_error)?;
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            SAVE_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = write_private(&tmp, &json)
            .and_then(|()| fs::rename(&tmp, &target))
            .and_then(|()| sync_dir(&dir));
        if result.is_err() {
            // Best effort: a leftover temp file is harmless but untidy.
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_error)
    }
}

/// The stored form of a token pair (the token file's content; sealed, the shared store's
/// record).
pub fn encode(stored: &StoredTokens) -> Vec<u8> {
    let file = FileFormat {
        access_token: stored.tokens.access_token.expose().to_owned(),
        refresh_token: stored.tokens.refresh_token.expose().to_owned(),
        expires: stored.tokens.expires_at,
        seed: stored.seed.clone(),
        serial: stored.serial,
        saved_at: stored.saved_at,
    };
    // Strings and integers only: serialising this cannot fail.
    serde_json::to_vec_pretty(&file).unwrap_or_default()
}

/// Reads what [`encode`] wrote. The error says where it failed, never what it read.
pub fn decode(bytes: &[u8]) -> Result<StoredTokens, String> {
    // serde's message may quote a fragment of the input; say only where it failed.
    let file: FileFormat = serde_json::from_slice(bytes)
        .map_err(|e| format!("not JSON of the expected shape at line {}", e.line()))?;
    if file.access_token.is_empty() && file.refresh_token.is_empty() {
        return Err("it holds no tokens".into());
    }
    Ok(StoredTokens {
        tokens: Tokens {
            access_token: Secret::new(file.access_token),
            refresh_token: Secret::new(file.refresh_token),
            expires_at: file.expires,
        },
        seed: file.seed,
        serial: file.serial,
        saved_at: file.saved_at,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The token file's directory, created (mode 0700) when it does not exist yet.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A file type in words, for the refusal message.
fn file_kind(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Makes the rename itself durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A stable fingerprint of a refresh token (64-bit FNV-1a), to recognise it without storing it twice.
pub fn fingerprint(token: &Secret) -> String {
    let hash = token
        .expose()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: u32) -> StoredTokens {
        StoredTokens {
            tokens: Tokens {
                access_token: Secret::new(format!("access-{n}")),
                refresh_token: Secret::new(format!("refresh-{n}")),
                expires_at: Some(1_700_000_000 + i64::from(n)),
            },
            seed: "seed".into(),
            serial: Some(u64::from(n)),
            saved_at: 1_700_000_000,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("b24-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_file_loads_as_none() {
        let store = TokenStore::new(temp_dir("missing").join("tokens.json"));
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn saves_round_trip_and_replace_the_previous_file() {
        let dir = temp_dir("roundtrip");
        let store = TokenStore::new(dir.join("tokens.json"));
        store.save(&stored(1)).unwrap();
        store.save(&stored(2)).unwrap();
        assert_eq!(store.load().unwrap(), Some(stored(2)));
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files remain");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let store = TokenStore::new(temp_dir("mode").join("tokens.json"));
        store.save(&stored(1)).unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_directory_is_created() {
        let dir = temp_dir("nested").join("config").join("bitrix24-mcp");
        let store = TokenStore::new(dir.join("tokens.json"));
        store.save(&stored(3)).unwrap();
        assert_eq!(store.load().unwrap(), Some(stored(3)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let dir = temp_dir("stale");
        let store = TokenStore::new(dir.join("tokens.json"));
        let stale = dir.join(".tokens.json.tmp-1-0");
        let fresh = dir.join(".tokens.json.tmp-2-0");
        let other = dir.join(".other.json.tmp-1-0");
        for path in [&stale, &fresh, &other] {
            fs::write(path, "{").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for path in [&stale, &other] {
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert_eq!(store.remove_stale_temps(), 1);
        assert!(!stale.exists() && fresh.exists() && other.exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_that_quotes_nothing() {
        let store = TokenStore::new(temp_dir("corrupt").join("tokens.json"));
        fs::write(store.path(), r#"{"access_token": "leaky-secret", "refresh"#).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("not a valid token file"), "{err}");
        assert!(!err.contains("leaky-secret"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_directory_is_refused_without_opening_it() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("tokens.json");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = TokenStore::new(&fifo).load().unwrap_err().to_string();
        assert!(
            err.contains("a named pipe (FIFO), not a regular file"),
            "{err}"
        );
        let err = TokenStore::new(&dir).load().unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_token_file_is_written_through_and_stays_a_link() {
        let dir = temp_dir("symlink");
        std::fs::create_dir_all(dir.join("real")).unwrap();
        let target = dir.join("real").join("tokens.json");
        let link = dir.join("tokens.json");
        std::os::unix::fs::symlink("real/tokens.json", &link).unwrap();
        let store = TokenStore::new(&link);
        store.save(&stored(1)).unwrap();
        store.save(&stored(2)).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(TokenStore::new(&target).load().unwrap(), Some(stored(2)));
        assert_eq!(store.load().unwrap(), Some(stored(2)));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_readable_by_others_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let store = TokenStore::new(temp_dir("loose").join("tokens.json"));
        assert_eq!(store.make_private().unwrap(), None, "no file yet");
        store.save(&stored(1)).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(store.make_private().unwrap(), Some(0o644));
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.make_private().unwrap(), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_lock_is_exclusive_bounded_and_dies_with_its_holder() {
        let store = TokenStore::new(temp_dir("lock").join("tokens.json"));
        // Another process holds the lock: a shell takes it with flock(1) on an fd of its own,
        // then becomes `sleep`, which keeps that fd (and so the lock) until it dies.
        let mut holder = std::process::Command::new("sh")
            .args(["-c", "exec 9>>\"$0\"; flock 9 && exec sleep 600"])
            .arg(store.lock_path())
            .spawn()
            .unwrap();
        // Wait until the holder has it (the lock file exists and is held).
        let probe = TokenStore::new(store.path());
        loop {
            match probe.lock(std::time::Duration::ZERO, || {}).await {
                Err(LockError::Busy { .. }) => break,
                Ok(lock) => drop(lock),
                Err(err) => panic!("{err}"),
            }
            tokio::task::yield_now().await;
        }
        let waited = std::sync::atomic::AtomicBool::new(false);
        let busy = store
            .lock(std::time::Duration::from_millis(100), || {
                waited.store(true, std::sync::atomic::Ordering::SeqCst)
            })
            .await
            .unwrap_err();
        assert!(busy.to_string().contains("another process"), "{busy}");
        assert!(
            waited.load(std::sync::atomic::Ordering::SeqCst),
            "the wait is reported"
        );
        // SIGKILL: the lock dies with the process.
        holder.kill().unwrap();
        holder.wait().unwrap();
        let lock = store.lock(std::time::Duration::from_secs(10), || {}).await;
        assert!(lock.is_ok(), "{lock:?}");
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        let a = fingerprint(&Secret::new("refresh-a"));
        assert_eq!(a, fingerprint(&Secret::new("refresh-a")));
        assert_ne!(a, fingerprint(&Secret::new("refresh-b")));
        assert!(!a.contains("refresh"));
    }
}
