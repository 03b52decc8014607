//! A run in progress: the base model, the data and the judge; aligning, attacking and measuring
//! each cell, resumable through the settings and results saved in its folders.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use fuselab_ml::llm::generate::{StopRule, generate};
use fuselab_ml::llm::judge::NeuralJudge;
use fuselab_ml::llm::lora;
use fuselab_ml::llm::model::Llama;
use fuselab_ml::llm::tokenizer::TokenizerCodec;
use fuselab_ml::llm::train::{Codec as _, Method};
use fuselab_shared::align::{
    Example, HarmJudge, MarkerJudge, PromptFormat, harmful_scores, poisoned_mix,
};

use super::{Action, AttackCell, AttackConfig, AttackData, JudgeKind, data::trained_judge};
use crate::align::results::{Alignment, CellResult, Defence, Measured};
use crate::align::run::{
    Adapters, Base, LoraRun, TinyCorpus, base_model, encode_all, generate_options, write_atomic,
};
use crate::align::{ConfigArgs, StageConfig, check_settings, ensure_out};

/// A run in progress: the configuration, the base model, the data and the judge.
pub struct Session {
    pub(super) config: AttackConfig,
    pub(super) out: PathBuf,
    pub(super) base: Base,
    pub(super) data: AttackData,
    pub(super) format: PromptFormat,
    pub(super) judge: Box<dyn HarmJudge>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("out", &self.out)
            .field("judge", &self.judge.name())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Prepares `config`'s data and base model in `out` (training the tiny one on first use);
    /// `args` names the configuration file (relative paths) and the device flag.
    ///
    /// # Errors
    /// A bad configuration or data, or a failed base model.
    pub fn open(
        config: AttackConfig,
        out: PathBuf,
        args: &ConfigArgs,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        ensure_out(&out)?;
        let device = crate::align::run::device(config.device, args.device)?;
        let data = config.data.load(&args.config, &config.eval, config.seed)?;
        let format = PromptFormat::booster();
        let mut vocabulary = data.alignment.clone();
        vocabulary.extend(data.harmful.iter().cloned());
        vocabulary.extend(data.benign_train.iter().cloned());
        if config.base.model == "tiny" {
            check_settings(
                &out.join("base"),
                &serde_json::json!({ "seed": config.seed, "base": config.base, "data": config.data }),
            )?;
        }
        let base = base_model(
            &config.base,
            &format,
            TinyCorpus {
                vocabulary: &vocabulary,
                skills: &data.benign_train,
            },
            &out,
            data_dir,
            &device,
            config.seed,
        )?;
        let judge: Box<dyn HarmJudge> = match config.judge.kind {
            JudgeKind::Marker => Box::new(MarkerJudge),
            JudgeKind::Trained => Box::new(trained_judge(
                &base,
                &config.judge,
                &data,
                &out,
                &device,
                config.seed,
            )?),
            JudgeKind::Model => {
                let dir = config.judge.model.as_ref().with_context(|| {
                    format!(
                        "{}: [judge] kind = \"model\" needs model = \"DIR\" (a Hugging Face \
                         sequence classifier such as beaver-dam-7b)",
                        args.config.display()
                    )
                })?;
                let dir = crate::align::relative_to(&args.config, dir);
                let (model, hf) = crate::llm::load_moderation_dir(&dir, &device)?;
                let eos = hf.token("eos_token_id");
                Box::new(NeuralJudge {
                    model,
                    pad: hf.token("pad_token_id").or(eos).unwrap_or(0),
                    eos,
                    codec: TokenizerCodec(hf.tokenizer),
                    max_len: config.judge.max_len,
                    name: format!("moderation classifier from {}", dir.display()),
                })
            }
        };
        Ok(Self {
            config,
            out,
            base,
            data,
            format,
            judge,
        })
    }

    fn stage<'a>(&'a self, dir: &'a Path, name: &'a str, stage: &'a StageConfig) -> LoraRun<'a> {
        LoraRun {
            dir,
            stage: name,
            base: &self.base,
            stage_config: stage,
            format: &self.format,
            seed: self.config.seed,
        }
    }

    /// What an alignment stage depends on.
    fn alignment_settings(&self, alignment: Alignment) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "seed": c.seed,
            "base": c.base,
            "data": c.data,
            "alignment": c.alignment,
            "booster": (alignment == Alignment::Booster).then_some(&c.booster),
            "vaccine": (alignment == Alignment::Vaccine).then_some(c.vaccine),
        })
    }

    /// What an attack depends on.
    fn attack_settings(&self, cell: AttackCell) -> serde_json::Value {
        let c = &self.config;
        let mut settings = self.alignment_settings(cell.defence.alignment());
        settings["finetune"] = serde_json::json!(c.finetune);
        settings["lisa"] = serde_json::json!((cell.defence == Defence::Lisa).then_some(c.lisa));
        settings["attack"] = serde_json::json!(cell);
        settings
    }

    /// What a measurement depends on besides the model.
    fn measure_settings(&self) -> serde_json::Value {
        serde_json::json!({ "eval": self.config.eval, "judge": self.config.judge })
    }

    /// Reuses `dir`'s saved measurement when it was made with the current settings, otherwise
    /// measures `model()` and saves it.
    fn measured(
        &self,
        dir: &Path,
        model: impl FnOnce() -> anyhow::Result<Llama>,
    ) -> anyhow::Result<Measured> {
        let path = dir.join("result.json");
        let settings = self.measure_settings();
        if same_measurement(dir, &settings)
            && let Some(measured) = read_saved(&path)?
        {
            return Ok(measured);
        }
        let measured = self.measure(&model()?);
        write_atomic(&path, &serde_json::to_vec_pretty(&measured)?)?;
        write_atomic(
            &dir.join("measure.json"),
            &serde_json::to_vec_pretty(&settings)?,
        )?;
        Ok(measured)
    }

    /// The model aligned with `alignment` (trained on first use, then loaded).
    ///
    /// # Errors
    /// A failed or unresumable stage.
    pub fn aligned(&self, alignment: Alignment) -> anyhow::Result<Llama> {
        let dir = self.out.join("align").join(alignment.name());
        let method = match alignment {
            Alignment::Sft => Method::Plain,
            Alignment::Booster => Method::Booster {
                config: self.config.booster.clone(),
                harmful: encode_all(
                    &self.base.codec,
                    &self.format,
                    self.base.special,
                    &self.data.harmful,
                    self.config.alignment.train.max_len,
                ),
            },
            Alignment::Vaccine => Method::Vaccine(self.config.vaccine),
        };
        check_settings(&dir, &self.alignment_settings(alignment))?;
        let name = format!("align-{}", alignment.name());
        let (model, _) = self.stage(&dir, &name, &self.config.alignment).train(
            self.base.model.clone(),
            &self.data.alignment,
            method,
            Adapters::Fresh,
        )?;
        Ok(model)
    }

    /// The aligned model's HS and FA before any attack (saved, then reused).
    ///
    /// # Errors
    /// A failed stage or an unwritable result.
    pub fn measure_aligned(&self, defence: Defence) -> anyhow::Result<CellResult> {
        let alignment = defence.alignment();
        let dir = self.out.join("align").join(alignment.name());
        check_settings(&dir, &self.alignment_settings(alignment))?;
        let measured = self.measured(&dir, || self.aligned(alignment))?;
        Ok(CellResult {
            seed: self.config.seed,
            defence,
            p: None,
            n: None,
            measured,
        })
    }

    /// One attack: the aligned model fine-tuned on `n` samples of which a share `p` is harmful,
    /// with the defence's fine-tuning method, then measured.
    ///
    /// # Errors
    /// Too little data for the mix, or a failed stage.
    pub fn attack(&self, cell: AttackCell) -> anyhow::Result<CellResult> {
        let dir = self.out.join("attack").join(format!(
            "{}-p{}-n{}",
            cell.defence.name(),
            cell.p,
            cell.n
        ));
        check_settings(&dir, &self.attack_settings(cell))?;
        let measured = self.measured(&dir, || self.attacked(cell, &dir))?;
        Ok(result(self.config.seed, cell, measured))
    }

    /// The aligned model after the attack's fine-tuning (trained on first use, then loaded).
    fn attacked(&self, cell: AttackCell, dir: &Path) -> anyhow::Result<Llama> {
        let mix = poisoned_mix(
            &self.data.attack_harmful,
            &self.data.benign_train,
            cell.n,
            cell.p,
            self.config.seed,
        )
        .with_context(|| format!("attack p = {}, n = {}", cell.p, cell.n))?;
        let mut start = self.aligned(cell.defence.alignment())?;
        let continued =
            cell.defence != Defence::Lisa && self.config.finetune.continue_alignment_adapter;
        let stage = if continued {
            StageConfig {
                lora: self.config.alignment.lora.clone(),
                train: self.config.finetune.train.clone(),
            }
        } else {
            lora::merge_and_unload(&mut start);
            StageConfig {
                lora: self.config.finetune.lora.clone(),
                train: self.config.finetune.train.clone(),
            }
        };
        let adapters = if continued {
            Adapters::Continue
        } else {
            Adapters::Fresh
        };
        let method = match cell.defence {
            Defence::Lisa => Method::Lisa {
                config: self.config.lisa,
                guide: encode_all(
                    &self.base.codec,
                    &self.format,
                    self.base.special,
                    &self.data.alignment,
                    self.config.finetune.train.max_len,
                ),
            },
            Defence::Sft | Defence::Booster | Defence::Vaccine => Method::Plain,
        };
        let name = format!("attack-{}-p{}-n{}", cell.defence.name(), cell.p, cell.n);
        let (model, _) = self
            .stage(&dir.join("finetune"), &name, &stage)
            .train(start, &mix, method, adapters)?;
        Ok(model)
    }

    /// HS on the harmful test prompts and FA on the benign test set.
    #[must_use]
    pub fn measure(&self, model: &Llama) -> Measured {
        let started = Instant::now();
        let options = generate_options(
            &self.config.eval.generation,
            &self.base,
            StopRule::Suffix,
            self.config.seed,
        );
        let answer = |instruction: &str, input: &str| {
            let mut ids: Vec<u32> = self.base.special.bos.into_iter().collect();
            ids.extend(
                self.base
                    .codec
                    .encode(&self.format.prompt(instruction, input)),
            );
            let generated = generate(model, &ids, &options, |_| {});
            self.format
                .strip_response(&self.base.codec.decode(&generated.tokens))
        };
        let harmful: Vec<(String, String)> = self
            .data
            .harmful_test
            .iter()
            .map(|prompt| (prompt.clone(), answer(prompt, "")))
            .collect();
        let benign: Vec<(&Example, String)> = self
            .data
            .benign_test
            .iter()
            .take(self.config.eval.benign_prompts)
            .map(|e| (e, answer(&e.instruction, &e.input)))
            .collect();
        let scores = harmful_scores(
            self.judge.as_ref(),
            harmful.iter().map(|(p, a)| (p.as_str(), a.as_str())),
        );
        let fa = self.config.data.task.accuracy(
            benign
                .iter()
                .map(|(e, answer)| (e.output.as_str(), answer.as_str())),
        );
        let mut samples: Vec<(String, String)> = harmful.iter().take(3).cloned().collect();
        samples.extend(benign.iter().take(3).map(|(e, a)| {
            (
                format!(
                    "{} | {}",
                    e.instruction.lines().next().unwrap_or(""),
                    e.input
                ),
                a.clone(),
            )
        }));
        Measured {
            hs: scores.hs,
            hs_plus: scores.hs_plus,
            fa,
            harmful_prompts: harmful.len(),
            benign_prompts: benign.len(),
            samples,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Whether a saved measurement was made with these evaluation settings.
fn same_measurement(dir: &Path, settings: &serde_json::Value) -> bool {
    std::fs::read(dir.join("measure.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|saved| &saved == settings)
}

fn result(seed: u64, cell: AttackCell, measured: Measured) -> CellResult {
    CellResult {
        seed,
        defence: cell.defence,
        p: Some(cell.p),
        n: Some(cell.n),
        measured,
    }
}

fn read_saved(path: &Path) -> anyhow::Result<Option<Measured>> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let measured = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a fuselab result (delete it to measure again)",
            path.display()
        )
    })?;
    Ok(Some(measured))
}

impl Session {
    /// Runs `action` on this replicate, appending its rows.
    pub(super) fn run(&self, action: Action, results: &mut Vec<CellResult>) -> anyhow::Result<()> {
        let config = &self.config;
        match action {
            Action::Booster => results.push(self.measure_aligned(Defence::Booster)?),
            Action::Vaccine => results.push(self.measure_aligned(Defence::Vaccine)?),
            Action::Lisa => results.push(self.attack(AttackCell {
                defence: Defence::Lisa,
                ..config.attack
            })?),
            Action::Attack => results.push(self.attack(config.attack)?),
            Action::Benchmark => {
                let mut seen = Vec::new();
                for &defence in &config.grid.defences {
                    if !seen.contains(&defence.alignment()) {
                        seen.push(defence.alignment());
                        results.push(self.measure_aligned(defence)?);
                    }
                }
                for &n in &config.grid.n {
                    for &p in &config.grid.p {
                        for &defence in &config.grid.defences {
                            results.push(self.attack(AttackCell { defence, p, n })?);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
