//! A run folder kept in the artifact store: the worker trains in a local folder and saves what
//! changed after every checkpoint, so that a new attempt, on this machine or another, restores
//! the folder and resumes where the last checkpoint left it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use crate::artifacts::ArtifactStore;

/// Largest file of a run folder (a checkpoint of a 7B model's adapters and moments is far
/// below it; the bound keeps a damaged store from exhausting memory).
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024 * 1024;
/// Deepest folder a run writes (stages nest a few levels).
const MAX_DEPTH: usize = 16;

/// A local run folder and its copy under an artifact prefix.
#[derive(Debug)]
pub struct RunFolder {
    artifacts: ArtifactStore,
    prefix: String,
    local: PathBuf,
    /// What each file was (size, modification time) when last saved or restored.
    saved: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl RunFolder {
    /// `local` kept under `prefix`.
    pub fn new(artifacts: ArtifactStore, prefix: String, local: PathBuf) -> Self {
        Self {
            artifacts,
            prefix,
            local,
            saved: HashMap::new(),
        }
    }

    /// Copies every file saved under the prefix into the local folder; returns how many.
    ///
    /// # Errors
    /// The storage's, an object whose name is not a relative path, or the local disk's.
    pub async fn restore(&mut self) -> anyhow::Result<usize> {
        let objects = self.artifacts.list(&self.prefix).await?;
        for (path, _) in &objects {
            let relative = path
                .strip_prefix(&self.prefix)
                .and_then(|p| p.strip_prefix('/'))
                .filter(|p| {
                    Path::new(p)
                        .components()
                        .all(|c| matches!(c, Component::Normal(_)))
                })
                .with_context(|| format!("artifact `{path}` is not a file of a run folder"))?;
            let bytes = self.artifacts.get(path, MAX_FILE_BYTES).await?;
            let local = self.local.join(relative);
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&local, bytes)
                .with_context(|| format!("cannot write {}", local.display()))?;
            let meta = std::fs::metadata(&local)?;
            self.saved
                .insert(PathBuf::from(relative), (meta.len(), meta.modified().ok()));
        }
        Ok(objects.len())
    }

    /// Saves every local file that changed since it was last saved; returns how many.
    ///
    /// # Errors
    /// The local disk's, or the storage's.
    pub async fn save(&mut self) -> anyhow::Result<usize> {
        let mut files = Vec::new();
        walk(&self.local, &self.local, 0, &mut files)?;
        let mut saved = 0;
        for (relative, meta) in files {
            let stamp = (meta.len(), meta.modified().ok());
            if self.saved.get(&relative) == Some(&stamp) {
                continue;
            }
            let local = self.local.join(&relative);
            let bytes = std::fs::read(&local)
                .with_context(|| format!("cannot read {}", local.display()))?;
            let key = format!("{}/{}", self.prefix, object_name(&relative));
            self.artifacts.put(&key, bytes).await?;
            self.saved.insert(relative, stamp);
            saved += 1;
        }
        Ok(saved)
    }
}

/// `relative` with `/` between its parts, whatever the platform's separator.
fn object_name(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file under `dir` (relative to `root`), with its metadata; a file written while this
/// runs (the `.partial` file of an atomic write) is left for the next save.
fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    files: &mut Vec<(PathBuf, std::fs::Metadata)>,
) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        anyhow::bail!("{} nests deeper than {MAX_DEPTH} folders", dir.display());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &path, depth + 1, files)?;
        } else if meta.is_file()
            && let Ok(relative) = path.strip_prefix(root)
            && !entry.file_name().to_string_lossy().ends_with(".partial")
        {
            files.push((relative.to_path_buf(), meta));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_saves_what_changed_and_restores_elsewhere() {
        let root = std::env::temp_dir().join(format!("fuselab-run-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = ArtifactStore::local(&root.join("store")).unwrap();
        let here = root.join("here");
        std::fs::create_dir_all(here.join("base")).unwrap();
        std::fs::write(here.join("metrics.jsonl"), "{}\n").unwrap();
        std::fs::write(here.join("base/state.json"), "1").unwrap();
        let mut folder = RunFolder::new(store.clone(), "align/j".to_owned(), here.clone());
        assert_eq!(folder.save().await.unwrap(), 2);
        assert_eq!(folder.save().await.unwrap(), 0, "nothing changed");
        std::fs::write(here.join("base/state.json"), "22").unwrap();
        assert_eq!(folder.save().await.unwrap(), 1);

        let there = root.join("there");
        let mut copy = RunFolder::new(store, "align/j".to_owned(), there.clone());
        assert_eq!(copy.restore().await.unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(there.join("base/state.json")).unwrap(),
            "22"
        );
        assert_eq!(
            copy.save().await.unwrap(),
            0,
            "restored files are saved already"
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
