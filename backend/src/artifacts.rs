//! Artifacts: what jobs pass on and leave behind (photos and keys in transit, checkpoints),
//! through the `object_store` crate: a local folder by default (`<data-dir>/artifacts`),
//! S3-compatible storage with `--artifacts s3://bucket/prefix` in builds with the `s3`
//! feature (credentials from the usual `AWS_*` variables).
//!
//! Secrets are sealed before they are stored ([`SealKey`]: XChaCha20-Poly1305 with the object's
//! path as associated data, so sealed objects cannot be swapped). The job that owns them keeps
//! the key in the job database: neither the storage nor the database alone reveals them.

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::{
    KeyInit as _, XChaCha20Poly1305, XNonce,
    aead::{Aead as _, Payload},
};
use futures_util::TryStreamExt as _;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use zeroize::Zeroizing;

/// What went wrong with an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// `--artifacts` names nothing this build can open.
    #[error("--artifacts `{url}`: {reason}")]
    Url {
        /// The location as given.
        url: String,
        /// What was expected.
        reason: String,
    },
    /// The storage failed.
    #[error("artifact `{path}`: {source}")]
    Storage {
        /// The object.
        path: String,
        /// The storage's error.
        #[source]
        source: object_store::Error,
    },
    /// An object is not there (deleted, or never written).
    #[error("artifact `{path}` does not exist")]
    Missing {
        /// The object.
        path: String,
    },
    /// An object is larger than its reader allows.
    #[error("artifact `{path}` holds {size} bytes, more than the {limit} expected")]
    TooLarge {
        /// The object.
        path: String,
        /// Its size.
        size: u64,
        /// The most its reader takes.
        limit: u64,
    },
    /// A sealed object that does not open with its job's key (altered, or another job's).
    #[error("artifact `{path}` does not open with its job's key")]
    Sealed {
        /// The object.
        path: String,
    },
    /// A job's key in the database is not 64 hex digits.
    #[error("a job's artifact key is malformed: expected 64 hex digits")]
    BadKey,
    /// No randomness for a key or nonce.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
}

/// Where artifacts live; cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// For logs and `Debug`: the location without credentials.
    location: String,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl ArtifactStore {
    /// A local folder, created (mode 0700) when missing.
    ///
    /// # Errors
    /// A folder that cannot be created.
    pub fn local(dir: &Path) -> Result<Self, ArtifactError> {
        let url_error = |reason: String| ArtifactError::Url {
            url: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| url_error(format!("cannot create it: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| url_error(format!("cannot make it private: {e}")))?;
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| url_error(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            location: dir.display().to_string(),
        })
    }

    /// `url`: a folder (`/srv/fuselab/artifacts` or `file:///srv/…`), or `s3://bucket/prefix`
    /// in builds with the `s3` feature.
    ///
    /// # Errors
    /// [`ArtifactError::Url`]: a scheme this build cannot open, a folder that cannot be made.
    pub fn open(url: &str) -> Result<Self, ArtifactError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Self::local(Path::new(path));
        }
        if url.starts_with('/') {
            return Self::local(Path::new(url));
        }
        if url.starts_with("s3://") {
            return Self::s3(url);
        }
        Err(ArtifactError::Url {
            url: url.to_owned(),
            reason: "expected an absolute folder path, file:///path or s3://bucket/prefix"
                .to_owned(),
        })
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str) -> Result<Self, ArtifactError> {
        let rest = url.trim_start_matches("s3://");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(format!("s3://{bucket}"))
            .build()
            .map_err(|e| ArtifactError::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            store: Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
            location: url.to_owned(),
        })
    }

    #[cfg(not(feature = "s3"))]
    #[allow(clippy::unnecessary_wraps)]
    fn s3(url: &str) -> Result<Self, ArtifactError> {
        Err(ArtifactError::Url {
            url: url.to_owned(),
            reason: "this build has no S3 support: build fuselab with `--features s3`".to_owned(),
        })
    }

    /// Where it is, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Writes `bytes` at `path` (replacing what was there, atomically on local folders).
    ///
    /// # Errors
    /// The storage's.
    pub async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), ArtifactError> {
        self.store
            .put(&ObjectPath::from(path), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| storage(path, source))
    }

    /// The bytes at `path`, if there are at most `limit` of them.
    ///
    /// # Errors
    /// [`ArtifactError::Missing`], [`ArtifactError::TooLarge`], the storage's.
    pub async fn get(&self, path: &str, limit: u64) -> Result<Vec<u8>, ArtifactError> {
        let result =
            self.store
                .get(&ObjectPath::from(path))
                .await
                .map_err(|source| match source {
                    object_store::Error::NotFound { .. } => ArtifactError::Missing {
                        path: path.to_owned(),
                    },
                    source => storage(path, source),
                })?;
        if result.meta.size > limit {
            return Err(ArtifactError::TooLarge {
                path: path.to_owned(),
                size: result.meta.size,
                limit,
            });
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|source| storage(path, source))?;
        Ok(bytes.to_vec())
    }

    /// Deletes every object under `prefix`; returns how many.
    ///
    /// # Errors
    /// The storage's.
    pub async fn delete_all(&self, prefix: &str) -> Result<usize, ArtifactError> {
        let prefix_path = ObjectPath::from(prefix);
        let paths: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix_path))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|source| storage(prefix, source))?;
        for path in &paths {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(storage(path.as_ref(), source)),
            }
        }
        Ok(paths.len())
    }

    /// Every object under `prefix`, with its size, in path order.
    ///
    /// # Errors
    /// The storage's.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, ArtifactError> {
        let prefix_path = ObjectPath::from(prefix);
        let mut objects: Vec<(String, u64)> = self
            .store
            .list(Some(&prefix_path))
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .try_collect()
            .await
            .map_err(|source| storage(prefix, source))?;
        objects.sort();
        Ok(objects)
    }

    /// The folders right under `prefix` with the time their newest object changed (Unix
    /// milliseconds), for sweeping what no job owns any more.
    ///
    /// # Errors
    /// The storage's.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<(String, i64)>, ArtifactError> {
        let prefix_path = ObjectPath::from(prefix);
        let mut newest: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        let mut objects = self.store.list(Some(&prefix_path));
        while let Some(meta) = objects
            .try_next()
            .await
            .map_err(|source| storage(prefix, source))?
        {
            let Some(folder) = meta
                .location
                .prefix_match(&prefix_path)
                .and_then(|mut parts| parts.next())
            else {
                continue;
            };
            let at = meta.last_modified.timestamp_millis();
            let entry = newest
                .entry(format!("{prefix}/{}", folder.as_ref()))
                .or_insert(at);
            *entry = (*entry).max(at);
        }
        Ok(newest.into_iter().collect())
    }
}

fn storage(path: &str, source: object_store::Error) -> ArtifactError {
    ArtifactError::Storage {
        path: path.to_owned(),
        source,
    }
}

/// A job's key for the secrets it stores (32 random bytes, wiped when dropped).
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<secret>)")
    }
}

/// XChaCha20-Poly1305's nonce.
const NONCE: usize = 24;

impl SealKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// No randomness.
    pub fn random() -> Result<Self, ArtifactError> {
        let mut key = Zeroizing::new([0_u8; 32]);
        getrandom::fill(key.as_mut())?;
        Ok(Self(key))
    }

    /// The key as stored in a job's configuration.
    pub fn to_hex(&self) -> String {
        crate::mask::hex(self.0.as_ref())
    }

    /// A key from [`SealKey::to_hex`]'s text.
    ///
    /// # Errors
    /// [`ArtifactError::BadKey`].
    pub fn from_hex(text: &str) -> Result<Self, ArtifactError> {
        let digits = text.as_bytes();
        if digits.len() != 64 {
            return Err(ArtifactError::BadKey);
        }
        let mut key = Zeroizing::new([0_u8; 32]);
        for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| ArtifactError::BadKey)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| ArtifactError::BadKey)?;
        }
        Ok(Self(key))
    }

    /// `plain` sealed for the object at `path`: a random nonce, then the ciphertext and tag.
    ///
    /// # Errors
    /// No randomness.
    pub fn seal(&self, path: &str, plain: &[u8]) -> Result<Vec<u8>, ArtifactError> {
        let mut nonce = [0_u8; NONCE];
        getrandom::fill(&mut nonce)?;
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: path.as_bytes(),
                },
            )
            .map_err(|_| ArtifactError::Sealed {
                path: path.to_owned(),
            })?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// What [`SealKey::seal`] sealed for `path`.
    ///
    /// # Errors
    /// [`ArtifactError::Sealed`]: altered, cut short, or sealed for another path or key.
    pub fn open(&self, path: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArtifactError> {
        let refused = || ArtifactError::Sealed {
            path: path.to_owned(),
        };
        if sealed.len() < NONCE {
            return Err(refused());
        }
        let (nonce, body) = sealed.split_at(NONCE);
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: path.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_objects_open_only_with_their_key_and_path() {
        let key = SealKey::random().unwrap();
        let sealed = key.seal("masks/a/photo-0", b"a face").unwrap();
        assert_eq!(
            key.open("masks/a/photo-0", &sealed).unwrap().as_slice(),
            b"a face"
        );
        assert!(key.open("masks/b/photo-0", &sealed).is_err());
        assert!(
            SealKey::random()
                .unwrap()
                .open("masks/a/photo-0", &sealed)
                .is_err()
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(key.open("masks/a/photo-0", &altered).is_err());
        assert!(key.open("masks/a/photo-0", &sealed[..10]).is_err());
        let again = SealKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(
            again.open("masks/a/photo-0", &sealed).unwrap().as_slice(),
            b"a face"
        );
        assert!(SealKey::from_hex("zz").is_err());
        assert!(SealKey::from_hex(&"g".repeat(64)).is_err());
    }

    #[tokio::test]
    async fn a_local_store_puts_gets_bounds_lists_and_deletes() {
        let dir = std::env::temp_dir().join(format!("fuselab-artifacts-{}", std::process::id()));
        let store = ArtifactStore::open(&format!("file://{}", dir.display())).unwrap();
        store
            .put("masks/one/photo-0", b"abc".to_vec())
            .await
            .unwrap();
        store
            .put("masks/one/photo-1", b"de".to_vec())
            .await
            .unwrap();
        store.put("masks/two/key", b"k".to_vec()).await.unwrap();
        assert_eq!(store.get("masks/one/photo-0", 3).await.unwrap(), b"abc");
        assert!(matches!(
            store.get("masks/one/photo-0", 2).await,
            Err(ArtifactError::TooLarge { size: 3, .. })
        ));
        assert!(matches!(
            store.get("masks/none", 9).await,
            Err(ArtifactError::Missing { .. })
        ));
        let folders: Vec<String> = store
            .folders("masks")
            .await
            .unwrap()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(folders, ["masks/one", "masks/two"]);
        assert_eq!(
            store.list("masks/one").await.unwrap(),
            [
                ("masks/one/photo-0".to_owned(), 3),
                ("masks/one/photo-1".to_owned(), 2)
            ]
        );
        assert_eq!(store.delete_all("masks/one").await.unwrap(), 2);
        assert_eq!(store.delete_all("masks/one").await.unwrap(), 0);
        assert!(store.get("masks/two/key", 9).await.is_ok());
        assert!(matches!(
            ArtifactStore::open("ftp://x"),
            Err(ArtifactError::Url { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
