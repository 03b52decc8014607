//! The `mask.train` job: a user's photos in, their P3-Mask key out, on any worker.
//!
//! The server seals the photos (and the key's passphrase, if any) into the artifact store under
//! the job's folder and queues the job with the folder and the seal key in its configuration.
//! A worker opens them, finds the training faces, trains with a sealed checkpoint after every
//! epoch (a new attempt resumes there), seals the key into the folder and deletes the photos.
//! Progress goes to the job's row as [`MaskJobStatus`] snapshots.
//!
//! ```text
//! masks/<folder>/in/photo-<i>     sealed photo bytes, as uploaded
//! masks/<folder>/in/passphrase    sealed passphrase (only for an encrypted key)
//! masks/<folder>/state/checkpoint sealed MaskState JSON, after every epoch
//! masks/<folder>/out/key          sealed key file, until it is downloaded
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use fuselab_ml::{
    Compute,
    face::FaceStack,
    mask::{EpochReport, MaskState, StepReport, TrainingFace},
};
use fuselab_shared::api::MaskJobStatus;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{TrainHooks, TrainOptions, key_bytes, train_mask, training_face};
use crate::artifacts::{ArtifactError, ArtifactStore, SealKey};
use crate::face::{PhotoError, load_stack};
use crate::jobs::{Handler, Job, JobContext, Outcome};

/// The job kind.
pub const KIND: &str = "mask.train";

/// Largest photo a job reads back (the server takes at most its request body).
const MAX_PHOTO_BYTES: u64 = 64 * 1024 * 1024;
/// Largest key, checkpoint or passphrase a job reads back.
const MAX_SMALL_BYTES: u64 = 4 * 1024 * 1024;

/// A mask job as queued: JSON in its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskJobConfig {
    /// The training settings.
    pub options: TrainOptions,
    /// Its artifacts' folder, `masks/<32 hex digits>`.
    pub folder: String,
    /// The photos' file names, in upload order.
    pub photos: Vec<String>,
    /// Whether the key is encrypted (the passphrase waits in the folder).
    pub encrypted: bool,
    /// Whether the server keeps the key after its first download.
    pub keep: bool,
    /// The seal key of its artifacts (hex), under [`crate::jobs::SECRET_FIELD`] so that
    /// `fuselab jobs` masks it.
    pub seal: String,
}

/// What a job trains from.
struct Inputs {
    faces: Vec<TrainingFace>,
    /// SHA-256 of each photo's file, hex.
    hashes: Vec<String>,
    passphrase: Option<Zeroizing<String>>,
}

impl MaskJobConfig {
    /// Where photo `index` waits.
    pub fn photo(&self, index: usize) -> String {
        format!("{}/in/photo-{index}", self.folder)
    }

    /// Where the passphrase waits.
    pub fn passphrase(&self) -> String {
        format!("{}/in/passphrase", self.folder)
    }

    /// Where the finished key waits for its download.
    pub fn key(&self) -> String {
        format!("{}/out/key", self.folder)
    }

    fn inputs(&self) -> String {
        format!("{}/in", self.folder)
    }

    fn state(&self) -> String {
        format!("{}/state", self.folder)
    }

    fn checkpoint(&self) -> String {
        format!("{}/state/checkpoint", self.folder)
    }
}

/// A finished job's result: JSON in its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskJobResult {
    /// The key's SHA-256, its identity.
    pub sha256: String,
    /// Mean DSSIM on the training faces.
    pub dssim: f64,
    /// Training time of the last attempt.
    pub seconds: f64,
}

/// Runs `mask.train` jobs with this machine's face models.
#[derive(Debug)]
pub struct MaskHandler {
    /// Where `fuselab models fetch` put the face models.
    pub data_dir: PathBuf,
    /// Where the jobs' photos and keys are.
    pub artifacts: ArtifactStore,
    /// Where burn trains.
    pub compute: Compute,
    /// A permit held while training, shared with the server's other training (so one trains
    /// at a time on a server's own worker); `None` on worker machines.
    pub training: Option<Arc<Semaphore>>,
}

/// The handlers of mask jobs, for a worker.
pub fn handlers(
    data_dir: &std::path::Path,
    artifacts: &ArtifactStore,
    compute: Compute,
    training: Option<Arc<Semaphore>>,
) -> crate::jobs::Handlers {
    let mut handlers = crate::jobs::Handlers::new();
    handlers.insert(
        KIND,
        Arc::new(MaskHandler {
            data_dir: data_dir.to_path_buf(),
            artifacts: artifacts.clone(),
            compute,
            training,
        }) as Arc<dyn Handler>,
    );
    handlers
}

/// Why an attempt stopped short: a message for the user, and whether another attempt could do
/// better.
struct Failure {
    error: String,
    retry: bool,
}

impl Handler for MaskHandler {
    fn run(&self, job: &Job, context: &mut JobContext) -> Outcome {
        match self.attempt(job, context) {
            Ok(outcome) => outcome,
            Err(failure) => Outcome::Failed {
                error: failure.error,
                retry: failure.retry,
            },
        }
    }
}

impl MaskHandler {
    fn attempt(&self, job: &Job, context: &mut JobContext) -> Result<Outcome, Failure> {
        let internal = |what: &str, error: &dyn std::fmt::Display, retry: bool| {
            internal(&job.id, what, error, retry)
        };
        let config: MaskJobConfig = serde_json::from_value(job.config.clone())
            .map_err(|e| internal("reading the job's configuration", &e, false))?;
        let seal = SealKey::from_hex(&config.seal)
            .map_err(|e| internal("reading the job's configuration", &e, false))?;
        let runtime = Handle::current();
        if context.should_stop() {
            return Ok(self.cancelled(&runtime, &config));
        }
        let _permit = match &self.training {
            Some(training) => Some(
                runtime
                    .block_on(Arc::clone(training).acquire_owned())
                    .map_err(|e| internal("waiting for the training slot", &e, true))?,
            ),
            None => None,
        };
        let _ = context.progress(&status_json(&MaskJobStatus::Preparing));
        let device = fuselab_ml::open(self.compute)
            .map_err(|e| internal("opening the compute device", &e, true))?;
        let stack = load_stack(&self.data_dir, device)
            .map_err(|e| internal("loading the face models", &format!("{e:#}"), true))?;
        let Inputs {
            faces,
            hashes,
            passphrase,
        } = self.read_inputs(&runtime, &job.id, &config, &seal, &stack)?;
        let resumed = self.resumed(&runtime, job, &config, &seal);
        let started = Instant::now();
        let mut hooks = JobHooks {
            context,
            runtime: &runtime,
            artifacts: &self.artifacts,
            seal: &seal,
            config: &config,
            last: None,
            lost: false,
        };
        let trained = train_mask(&stack, &config.options, &faces, resumed, &mut hooks)
            .map_err(|e| internal("training", &format!("{e:#}"), false))?;
        let Some(handed) = trained else {
            return Ok(self.cancelled(&runtime, &config));
        };
        let key = key_bytes(
            &config.options.config,
            &config.options.models,
            &hashes,
            handed.delta,
            passphrase.as_deref().map(String::as_str),
        )
        .map_err(|e| internal("writing the key", &format!("{e:#}"), false))?;
        let sha256 = fuselab_shared::mask::key::read_header(&key)
            .map_err(|e| internal("writing the key", &e, false))?
            .sha256;
        let sealed = seal
            .seal(&config.key(), &key)
            .map_err(|e| internal("sealing the key", &e, true))?;
        runtime
            .block_on(self.artifacts.put(&config.key(), sealed))
            .map_err(|e| internal("storing the key", &e, true))?;
        runtime.block_on(self.forget_inputs(&config));
        let result = MaskJobResult {
            sha256,
            dssim: handed.dssim,
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(Outcome::Done(
            serde_json::to_value(result).unwrap_or_default(),
        ))
    }

    /// The training faces of the job's photos, their hashes, and the key's passphrase if it
    /// has one.
    fn read_inputs(
        &self,
        runtime: &Handle,
        job: &str,
        config: &MaskJobConfig,
        seal: &SealKey,
        stack: &FaceStack,
    ) -> Result<Inputs, Failure> {
        let stored = |e: ArtifactError| {
            let retry = matches!(e, ArtifactError::Storage { .. });
            internal(job, "reading the job's photos", &e, retry)
        };
        let mut faces = Vec::new();
        let mut hashes = Vec::new();
        let mut problems = Vec::new();
        for (index, name) in config.photos.iter().enumerate() {
            let path = config.photo(index);
            let sealed = runtime
                .block_on(self.artifacts.get(&path, MAX_PHOTO_BYTES))
                .map_err(stored)?;
            let bytes = seal.open(&path, &sealed).map_err(stored)?;
            match training_face(&stack.mtcnn, &stack.device, &bytes, name) {
                Ok((face, _)) => {
                    faces.push(face);
                    hashes.push(super::hex(&Sha256::digest(&bytes)));
                }
                Err(PhotoError { path, what }) => problems.push(format!("{path}: {what}")),
            }
        }
        if !problems.is_empty() {
            runtime.block_on(self.forget_inputs(config));
            return Err(Failure {
                error: format!(
                    "every photo must show your face; replace these: {}",
                    problems.join("; ")
                ),
                retry: false,
            });
        }
        let passphrase = if config.encrypted {
            let path = config.passphrase();
            let sealed = runtime
                .block_on(self.artifacts.get(&path, MAX_SMALL_BYTES))
                .map_err(stored)?;
            let plain = seal.open(&path, &sealed).map_err(stored)?;
            Some(Zeroizing::new(String::from_utf8(plain.to_vec()).map_err(
                |e| internal(job, "reading the passphrase", &e, false),
            )?))
        } else {
            None
        };
        Ok(Inputs {
            faces,
            hashes,
            passphrase,
        })
    }

    /// The checkpoint of an earlier attempt, if it opens; else training starts afresh.
    fn resumed(
        &self,
        runtime: &Handle,
        job: &Job,
        config: &MaskJobConfig,
        seal: &SealKey,
    ) -> Option<MaskState> {
        job.checkpoint.as_ref()?;
        let path = config.checkpoint();
        let state = runtime
            .block_on(self.artifacts.get(&path, MAX_SMALL_BYTES))
            .and_then(|sealed| seal.open(&path, &sealed))
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_slice::<MaskState>(&json).map_err(|e| e.to_string()));
        match state {
            Ok(state) => {
                tracing::info!(job = %job.id, epoch = state.epoch, "mask job resumes from its checkpoint");
                Some(state)
            }
            Err(error) => {
                tracing::warn!(job = %job.id, %error, "mask job: the checkpoint does not open; starting afresh");
                None
            }
        }
    }

    /// Deletes the photos, the passphrase and the checkpoint (the key stays for its download).
    async fn forget_inputs(&self, config: &MaskJobConfig) {
        for prefix in [config.inputs(), config.state()] {
            if let Err(error) = self.artifacts.delete_all(&prefix).await {
                tracing::error!(%error, folder = %prefix, "mask job: deleting what the job no longer needs");
            }
        }
    }

    fn cancelled(&self, runtime: &Handle, config: &MaskJobConfig) -> Outcome {
        if let Err(error) = runtime.block_on(self.artifacts.delete_all(&config.folder)) {
            tracing::error!(%error, folder = %config.folder, "mask job: deleting a cancelled job's artifacts");
        }
        Outcome::Cancelled
    }
}

/// Progress into the job's row, a sealed checkpoint after every epoch, and the cancel flag.
struct JobHooks<'a> {
    context: &'a mut JobContext,
    runtime: &'a Handle,
    artifacts: &'a ArtifactStore,
    seal: &'a SealKey,
    config: &'a MaskJobConfig,
    /// The latest step's snapshot, written unthrottled at the epoch's end.
    last: Option<serde_json::Value>,
    /// The lease was lost: another worker has the job now.
    lost: bool,
}

impl TrainHooks for JobHooks<'_> {
    fn step(&mut self, report: &StepReport) {
        let status = MaskJobStatus::Training {
            epoch: report.epoch,
            epochs: self.config.options.config.epochs,
            step: report.step,
            steps: report.steps,
            dssim: report.dssim,
            angles: self
                .config
                .options
                .models
                .iter()
                .cloned()
                .zip(report.angles.iter().copied())
                .collect(),
            lambda: report.lambda,
        };
        let snapshot = status_json(&status);
        if self.context.progress(&snapshot).is_err() {
            self.lost = true;
        }
        self.last = Some(snapshot);
    }

    fn epoch(&mut self, _: &EpochReport, _: f64, state: &MaskState) -> anyhow::Result<()> {
        if let Some(last) = self.last.take()
            && self.context.progress_now(&last).is_err()
        {
            self.lost = true;
        }
        let path = self.config.checkpoint();
        let json = Zeroizing::new(serde_json::to_vec(state)?);
        let sealed = self.seal.seal(&path, &json)?;
        self.runtime.block_on(self.artifacts.put(&path, sealed))?;
        if self
            .context
            .checkpoint(&serde_json::json!({ "epoch": state.epoch }))
            .is_err()
        {
            self.lost = true;
        }
        Ok(())
    }

    fn stop(&self) -> bool {
        self.lost || self.context.should_stop()
    }
}

/// A failure the user sees as "`what` failed" while the log gets the details.
fn internal(job: &str, what: &str, error: &dyn std::fmt::Display, retry: bool) -> Failure {
    tracing::error!(%job, %error, "mask job: {what}");
    Failure {
        error: format!("{what} failed; the details are in the worker's log"),
        retry,
    }
}

fn status_json(status: &MaskJobStatus) -> serde_json::Value {
    serde_json::to_value(status).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_key_sits_where_fuselab_jobs_masks_it() {
        let config = MaskJobConfig {
            options: TrainOptions {
                config: fuselab_ml::mask::MaskConfig::default(),
                models: vec!["dlib".to_owned()],
            },
            folder: "masks/00".to_owned(),
            photos: vec!["me.jpg".to_owned()],
            encrypted: false,
            keep: false,
            seal: "ab".repeat(32),
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json[crate::jobs::SECRET_FIELD], "ab".repeat(32));
        assert_eq!(config.photo(0), "masks/00/in/photo-0");
        assert_eq!(config.key(), "masks/00/out/key");
    }
}
