//! `fuselab llm topla summary --config FILE`: LLM-TOPLA-Summary (spec `focal.md` §6.3) on a
//! decoder-only model. The model reads `[BOQ]` question `[EOQ]` and every member's outputs
//! between `[BOC j]` … `[EOC j]`, then writes the fused answer after `[BOA]`. The markers are
//! added to the tokenizer as special tokens and to the model as trainable rows; `LoRA`
//! adapters train with the loss on the answer only; each epoch is scored on val by
//! generation, training stops early on that score, and the best epoch's weights are restored.
//! The test questions are those `llm topla weighted` holds out, so the report sets the fused
//! model beside the members, the votes, LLM-TOPLA-Weighted and the oracle.

mod config;
mod data;
mod fit;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use burn::tensor::Device;
use fuselab_ml::llm::fusion::{add_markers, teacher_forced};
use fuselab_ml::llm::generate::{GenerateOptions, Sampling, StopRule, generate};
use fuselab_ml::llm::lora;
use fuselab_ml::llm::model::{Llama, LlamaConfig};
use fuselab_ml::llm::tokenizer::{TokenizerCodec, train_bpe};
use fuselab_ml::llm::train::{
    Codec as _, Objective, SpecialIds, Trainer, all_parameters, lora_and_added_tokens,
};
use fuselab_shared::ensemble::{Pool, SplitChoice};
use fuselab_shared::topla::Rules;
use fuselab_shared::topla::summary::{
    AnswerScores, markers, mean_scores, question_text, score_answer,
};
use tokenizers::Tokenizer;

pub use config::{SummaryCompat, SummaryConfig};
pub use report::{SUMMARY_SCHEMA, SummaryReport};

use self::data::{FusionExample, StudyData, encode_question};
use self::fit::{FitOptions, fit};
use self::report::{ExampleRow, ResultRow, RowKind, TrainingSummary};
use super::topla::{Training, WeightedError, load_from, pool_of, weighted_report};
use crate::align::ConfigArgs;
use crate::align::run::write_atomic;

/// The fusion model ready to train.
struct FusionModel {
    model: Llama,
    codec: TokenizerCodec,
    special: SpecialIds,
    eos: Vec<u32>,
    boa: u32,
    description: String,
    trainable: fn(&str) -> bool,
}

/// Runs `fuselab llm topla summary` and prints the results table.
///
/// # Errors
/// A bad configuration or data file, or a failed run.
pub fn command(
    args: &ConfigArgs,
    compat: Option<SummaryCompat>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let report = run(args, compat, data_dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::markdown(&report));
    }
    Ok(())
}

/// Runs the study of `args.config` and writes `report.json` and `report.html` into its `out`.
///
/// # Errors
/// A bad configuration or data file, or a failed run.
pub fn run(
    args: &ConfigArgs,
    compat: Option<SummaryCompat>,
    data_dir: &Path,
) -> anyhow::Result<SummaryReport> {
    let started = Instant::now();
    let (config, out, study) = setup(args, compat)?;
    let reference = config.compat == Some(SummaryCompat::LlmTopla);
    let device = crate::align::run::device(config.device, args.device)?;
    let fusion = fusion_model(&config, &study, &out, data_dir, &device)?;
    let limit = config.outputs_per_member;
    let [train, val, test] = encode_parts(&study, &fusion, limit, config.model.train.max_len);
    let truncated = [&train, &val, &test]
        .iter()
        .flat_map(|part| part.iter())
        .filter(|e| e.truncated)
        .count();
    if truncated > 0 {
        tracing::warn!(truncated, "prompts cut to fit model.train.max_len");
    }
    let parameters = fusion.model.parameter_count();
    let trainer = Trainer::new(
        fusion.model.clone(),
        Objective::Lm,
        config.model.train.clone(),
        train.iter().map(FusionExample::encoded).collect(),
        fusion.trainable,
        fusion.special.pad,
    )?;
    let trainable_parameters = trainer
        .trainable_weights()
        .values()
        .map(|t| t.dims().iter().product::<usize>())
        .sum();
    let per_epoch = train
        .len()
        .div_ceil(config.model.train.batch_size)
        .div_ceil(config.model.train.optim.gradient_accumulation);
    // Every row reads closed answers by fuselab's rules, so the rows compare.
    let rules = Rules::Fuselab;
    let evaluator = Evaluator {
        study: &study,
        fusion: &fusion,
        rules,
        max_new_tokens: config.eval.max_new_tokens,
    };
    let mut evaluate = |model: &Llama| -> anyhow::Result<f64> {
        let answers = evaluator.generate_all(model, &val)?;
        Ok(evaluator.mean(&val, &answers).selection())
    };
    let fitted = fit(
        &out.join("fusion"),
        trainer,
        FitOptions {
            steps_per_epoch: per_epoch,
            patience: config.patience,
            keep_last: reference,
        },
        &mut evaluate,
    )?;
    let generated = evaluator.generate_all(&fitted.model, &test)?;
    let forced = reference.then(|| evaluator.teacher_forced_all(&fitted.model, &test));
    let (rows, focal_diversity) = baselines(&config, &study, rules)?;
    let rows = with_fused(rows, &evaluator, &test, &generated, forced.as_deref());
    let examples = example_rows(
        &study,
        &test,
        config.eval.examples,
        &generated,
        forced.as_deref(),
    );
    let report = SummaryReport {
        schema: SUMMARY_SCHEMA.to_owned(),
        task: config.task,
        selection_metric: config.task.selection_metric().to_owned(),
        model: fusion.description.clone(),
        compat: reference,
        provenance: provenance(&study),
        members: study.members.iter().map(|m| m.name.clone()).collect(),
        outputs_per_member: limit,
        questions: [study.train.len(), study.val.len(), study.test.len()],
        rows,
        focal_diversity,
        history: fitted.history,
        best_epoch: fitted.best_epoch,
        kept_epoch: fitted.kept_epoch,
        stopped_early: fitted.stopped_early,
        training: TrainingSummary {
            trainable_parameters,
            parameters,
            steps_per_epoch: per_epoch,
            tokens_per_second: fitted.tokens_per_second,
            seconds: started.elapsed().as_secs_f64(),
            truncated_prompts: truncated,
        },
        examples,
    };
    report::write(&out, &report)?;
    tracing::info!(out = %out.display(), seconds = format!("{:.0}", started.elapsed().as_secs_f64()), "report written");
    Ok(report)
}

/// The configuration (`compat` from the flag overriding the file's), the run folder and the
/// data.
fn setup(
    args: &ConfigArgs,
    compat: Option<SummaryCompat>,
) -> anyhow::Result<(SummaryConfig, PathBuf, StudyData)> {
    let mut config: SummaryConfig = crate::align::read_config(&args.config)?;
    if compat.is_some() {
        config.compat = compat;
    }
    config.model.train.pad_in_loss = config.compat == Some(SummaryCompat::LlmTopla);
    let resolve = |p: &Path| crate::align::relative_to(&args.config, p);
    let out = resolve(&config.out);
    crate::align::ensure_out(&out)?;
    let study = data::load(
        &config,
        &resolve(&config.questions),
        &resolve(&config.answers),
    )?;
    Ok((config, out, study))
}

/// The train, val and test questions as token ids.
fn encode_parts(
    study: &StudyData,
    fusion: &FusionModel,
    limit: usize,
    max_len: usize,
) -> [Vec<FusionExample>; 3] {
    [&study.train, &study.val, &study.test].map(|part| {
        part.iter()
            .map(|&q| {
                encode_question(
                    study,
                    &fusion.codec,
                    fusion.special,
                    fusion.boa,
                    q,
                    limit,
                    max_len,
                )
            })
            .collect()
    })
}

/// The baseline rows with the fused model's inserted before the oracle (the last row).
fn with_fused(
    mut rows: Vec<ResultRow>,
    evaluator: &Evaluator<'_>,
    test: &[FusionExample],
    generated: &[String],
    forced: Option<&[String]>,
) -> Vec<ResultRow> {
    let oracle = rows.pop();
    rows.push(ResultRow {
        name: "TOPLA-Summary (generated)".to_owned(),
        kind: RowKind::SummaryGenerated,
        scores: evaluator.mean(test, generated),
    });
    if let Some(forced) = forced {
        rows.push(ResultRow {
            name: "TOPLA-Summary (teacher-forced, as the reference scores)".to_owned(),
            kind: RowKind::SummaryTeacherForced,
            scores: evaluator.mean(test, forced),
        });
    }
    rows.extend(oracle);
    rows
}

/// The first `count` test questions with the fused and the members' answers.
fn example_rows(
    study: &StudyData,
    test: &[FusionExample],
    count: usize,
    generated: &[String],
    forced: Option<&[String]>,
) -> Vec<ExampleRow> {
    test.iter()
        .take(count)
        .enumerate()
        .map(|(i, e)| {
            let q = &study.questions.questions[e.question];
            ExampleRow {
                id: q.id.clone(),
                question: question_text(q),
                gold: study.prompt_and_target(e.question, 1).1,
                fused: generated[i].clone(),
                teacher_forced: forced.map(|f| f[i].clone()),
                members: study
                    .members
                    .iter()
                    .enumerate()
                    .map(|(m, set)| (set.name.clone(), study.outputs(m, e.question, 1)[0].clone()))
                    .collect(),
            }
        })
        .collect()
}

fn provenance(study: &StudyData) -> String {
    let generated = study
        .questions
        .questions
        .iter()
        .all(|q| q.source.as_deref() == Some(fuselab_shared::topla::GENERATED_SOURCE));
    if generated {
        "the questions are generated from templates with computed answers; the answers are the models' own outputs".to_owned()
    } else {
        "the answers are the members' outputs on the given questions".to_owned()
    }
}

/// Loads the model (or builds `tiny`), adds the markers and attaches the adapters.
fn fusion_model(
    config: &SummaryConfig,
    study: &StudyData,
    out: &Path,
    data_dir: &Path,
    device: &Device,
) -> anyhow::Result<FusionModel> {
    let marker_names = markers(study.members.len());
    let seed = config.seed;
    let (mut model, mut tokenizer, special, eos, description, trainable) =
        if config.model.name == "tiny" {
            let tokenizer = tiny_tokenizer(config, study, out)?;
            let id = |t: &str| {
                tokenizer
                    .token_to_id(t)
                    .with_context(|| format!("the tiny tokenizer has no `{t}`"))
            };
            let special = SpecialIds {
                bos: Some(id("<bos>")?),
                eos: Some(id("<eos>")?),
                pad: id("[PAD]")?,
            };
            let llama = LlamaConfig {
                max_position_embeddings: config.model.train.max_len.max(256),
                ..LlamaConfig::tiny(tokenizer.get_vocab_size(true))
            };
            let model = llama.init(device, seed)?;
            let description = format!(
                "tiny Llama (d {}, {} layers, vocab {}) trained here from scratch, every weight",
                llama.hidden_size, llama.num_hidden_layers, llama.vocab_size
            );
            let eos = special.eos.into_iter().collect();
            (
                model,
                tokenizer,
                special,
                eos,
                description,
                all_parameters as fn(&str) -> bool,
            )
        } else {
            let loaded = super::load(&config.model.name, data_dir, device)?;
            let pad = loaded.eos.first().copied().unwrap_or(0);
            let special = SpecialIds {
                bos: loaded.bos,
                eos: loaded.eos.first().copied(),
                pad,
            };
            let description = format!(
                "{} with LoRA r {} on {} and the {} marker tokens trained",
                loaded.source,
                config.model.lora.rank,
                config.model.lora.targets.join(", "),
                marker_names.len()
            );
            (
                loaded.model,
                loaded.tokenizer,
                special,
                loaded.eos,
                description,
                lora_and_added_tokens as fn(&str) -> bool,
            )
        };
    // A model trained from scratch gets markers as random as its other tokens; a trained one
    // gets them near the mean, so they do not dominate its first outputs.
    let spread = if config.model.name == "tiny" {
        1.0
    } else {
        0.01
    };
    let ids = add_markers(&mut tokenizer, &mut model, &marker_names, seed, spread)?;
    if config.model.name != "tiny" {
        lora::attach(&mut model, &config.model.lora, seed, &|_| true)?;
    }
    Ok(FusionModel {
        model,
        codec: TokenizerCodec(tokenizer),
        special,
        eos,
        boa: ids[2],
        description,
        trainable,
    })
}

/// The tiny model's byte-level BPE, trained on the run's prompts and targets and kept in `out`
/// so a resumed run reads the same one.
fn tiny_tokenizer(
    config: &SummaryConfig,
    study: &StudyData,
    out: &Path,
) -> anyhow::Result<Tokenizer> {
    let path = out.join("tokenizer.json");
    if path.is_file() {
        return Tokenizer::from_file(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()));
    }
    let texts: Vec<String> = (0..study.questions.questions.len())
        .map(|q| {
            let (prompt, target) = study.prompt_and_target(q, config.outputs_per_member);
            format!("{prompt} {target}")
        })
        .collect();
    let tokenizer = train_bpe(&texts, 400, &["<bos>", "<eos>", "[PAD]"])?;
    let json = tokenizer
        .to_string(false)
        .map_err(|e| anyhow::anyhow!("cannot serialise the tokenizer: {e}"))?;
    write_atomic(&path, json.as_bytes())?;
    Ok(tokenizer)
}

/// Scores answers of the fusion model.
struct Evaluator<'a> {
    study: &'a StudyData,
    fusion: &'a FusionModel,
    rules: Rules,
    max_new_tokens: usize,
}

impl Evaluator<'_> {
    /// Greedy answers to `examples`, each stopped at the end-of-sequence token.
    fn generate_all(
        &self,
        model: &Llama,
        examples: &[FusionExample],
    ) -> anyhow::Result<Vec<String>> {
        // Generation runs on a copy with the markers folded in and the adapters merged.
        let mut merged = model.with_tokens_folded();
        lora::merge(&mut merged);
        let options = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling {
                temperature: 0.0,
                top_k: 0,
                top_p: 1.0,
                seed: 0,
            },
            eos: self.fusion.eos.clone(),
            stop: Vec::new(),
            stop_rule: StopRule::Suffix,
        };
        examples
            .iter()
            .map(|e| {
                crate::align::observe::check()?;
                let generation = generate(&merged, &e.prompt, &options, |_| {});
                Ok(self.fusion.codec.decode(&generation.tokens))
            })
            .collect()
    }

    /// The reference's "predictions": the teacher-forced argmax of each target position.
    fn teacher_forced_all(&self, model: &Llama, examples: &[FusionExample]) -> Vec<String> {
        examples
            .iter()
            .map(|e| {
                let ids = teacher_forced(model, &e.prompt, &e.target);
                self.fusion.codec.decode(&ids)
            })
            .collect()
    }

    fn mean(&self, examples: &[FusionExample], answers: &[String]) -> AnswerScores {
        let scores: Vec<AnswerScores> = examples
            .iter()
            .zip(answers)
            .map(|(e, answer)| {
                score_answer(
                    &self.study.questions.questions[e.question],
                    &self.study.questions.gold[e.question],
                    answer,
                    self.rules,
                )
            })
            .collect();
        mean_scores(&scores)
    }
}

/// The rows beside the fused model on the test questions, the oracle last, and the team's
/// focal diversity. Closed tasks: each member's majority answer, the plurality and majority
/// votes and LLM-TOPLA-Weighted from learn-to-combine's code; text tasks: each member's first
/// output, and the oracle as the best member per question.
fn baselines(
    config: &SummaryConfig,
    study: &StudyData,
    rules: Rules,
) -> anyhow::Result<(Vec<ResultRow>, Option<f64>)> {
    let team: Vec<String> = study.members.iter().map(|m| m.name.clone()).collect();
    let Some(task) = config.task.closed() else {
        return Ok((text_baselines(study, rules), None));
    };
    let loaded = load_from(
        &study.answers_dir,
        &study.questions_file,
        task,
        false,
        config.split_seed,
    )?;
    let training = Training {
        epochs: 300,
        batch: 64,
        lr: 1e-3,
        seed: config.seed,
    };
    let report = weighted_report(&loaded, &team, 30, training, &mut |_, _| {
        crate::align::observe::check().is_ok()
    })
    .map_err(|e| match e {
        WeightedError::UnknownMember(name) | WeightedError::Twice(name) => {
            anyhow::anyhow!("members: `{name}` cannot form a team")
        }
        WeightedError::Other(e) => e,
    })?;
    let combined = &report.teams[0];
    let accuracy = |a: f64| AnswerScores {
        correct: Some(a),
        open: None,
        rouge: None,
    };
    let mut rows: Vec<ResultRow> = combined
        .baselines
        .iter()
        .filter(|b| b.member || b.name == "plurality")
        .map(|b| ResultRow {
            name: if b.member {
                b.name.clone()
            } else {
                "majority vote (plurality)".to_owned()
            },
            kind: if b.member {
                RowKind::Member
            } else {
                RowKind::Vote
            },
            scores: accuracy(b.scores.accuracy),
        })
        .collect();
    rows.push(ResultRow {
        name: "TOPLA-Weighted".to_owned(),
        kind: RowKind::Weighted,
        scores: accuracy(combined.combined.accuracy),
    });
    let (test, _) = pool_of(&loaded).select(SplitChoice::Test)?;
    let test = Pool::new(test)?;
    let members: Vec<usize> = team
        .iter()
        .filter_map(|name| test.names().iter().position(|n| n == name))
        .collect();
    let any_right = (0..test.samples())
        .filter(|&s| {
            members
                .iter()
                .any(|&m| test.correct(m).is_some_and(|c| c.contains(s)))
        })
        .count();
    rows.push(ResultRow {
        name: "oracle (any member right)".to_owned(),
        kind: RowKind::Oracle,
        scores: accuracy(any_right as f64 / test.samples().max(1) as f64),
    });
    Ok((rows, combined.focal_diversity))
}

fn text_baselines(study: &StudyData, rules: Rules) -> Vec<ResultRow> {
    let score = |q: usize, answer: &str| {
        score_answer(
            &study.questions.questions[q],
            &study.questions.gold[q],
            answer,
            rules,
        )
    };
    let per_member: Vec<Vec<AnswerScores>> = (0..study.members.len())
        .map(|m| {
            study
                .test
                .iter()
                .map(|&q| score(q, &study.outputs(m, q, 1)[0]))
                .collect()
        })
        .collect();
    let mut rows: Vec<ResultRow> = study
        .members
        .iter()
        .zip(&per_member)
        .map(|(set, scores)| ResultRow {
            name: set.name.clone(),
            kind: RowKind::Member,
            scores: mean_scores(scores),
        })
        .collect();
    // The vote: the output most members gave (whitespace and case folded), first on ties.
    let votes: Vec<AnswerScores> = study
        .test
        .iter()
        .map(|&q| {
            let outputs: Vec<&String> = (0..study.members.len())
                .map(|m| &study.outputs(m, q, 1)[0])
                .collect();
            let key = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            let mut best = outputs[0];
            let mut best_count = 0;
            for candidate in &outputs {
                let count = outputs.iter().filter(|o| key(o) == key(candidate)).count();
                if count > best_count {
                    best = candidate;
                    best_count = count;
                }
            }
            score(q, best)
        })
        .collect();
    rows.push(ResultRow {
        name: "majority vote (most common answer)".to_owned(),
        kind: RowKind::Vote,
        scores: mean_scores(&votes),
    });
    let oracle: Vec<AnswerScores> = (0..study.test.len())
        .map(|i| {
            per_member
                .iter()
                .map(|scores| scores[i])
                .max_by(|a, b| a.selection().total_cmp(&b.selection()))
                .unwrap_or(AnswerScores {
                    correct: None,
                    open: None,
                    rouge: None,
                })
        })
        .collect();
    rows.push(ResultRow {
        name: "oracle (best member per question)".to_owned(),
        kind: RowKind::Oracle,
        scores: mean_scores(&oracle),
    });
    rows
}
