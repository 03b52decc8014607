//! The study's data: the question set, the team's answer sets, the held-out test questions,
//! the reference's train / val cut, and the fusion examples as token ids.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use fuselab_ml::llm::model::IGNORE;
use fuselab_ml::llm::train::{Codec, Encoded, SpecialIds};
use fuselab_shared::ensemble::Split;
use fuselab_shared::topla::summary::{
    BOA, FusionQuestions, fusion_prompt, parse_fusion_questions, question_text, target_text,
};
use fuselab_shared::topla::{AnswerSet, canonical_splits, parse_answer_set};

use super::config::SummaryConfig;

/// The questions, the team's outputs and where each question goes.
#[derive(Debug, Clone)]
pub struct StudyData {
    /// Questions and gold answers.
    pub questions: FusionQuestions,
    /// The question file, for messages and reports.
    pub questions_file: PathBuf,
    /// The team's answer sets, in the team's order.
    pub members: Vec<AnswerSet>,
    /// The answer folder.
    pub answers_dir: PathBuf,
    /// Question indices the fusion model trains on (the first 70 % of the non-test questions).
    pub train: Vec<usize>,
    /// Question indices it is selected on (the last 30 %).
    pub val: Vec<usize>,
    /// Held-out question indices (the seeded test split of `llm topla weighted`).
    pub test: Vec<usize>,
}

/// Reads the question set and the team's answer sets and splits the questions.
///
/// # Errors
/// Unreadable or invalid files (named with the line and field), an unknown or missing member,
/// a question a member did not answer, too few questions.
pub fn load(
    config: &SummaryConfig,
    questions_file: &Path,
    answers_dir: &Path,
) -> anyhow::Result<StudyData> {
    let file = questions_file.display().to_string();
    let contents = std::fs::read_to_string(questions_file)
        .with_context(|| format!("cannot read the questions {file}"))?;
    let questions = parse_fusion_questions(&file, &contents, config.task)?;
    let files = super::super::topla::answer_files(answers_dir)?;
    let stem = |p: &PathBuf| {
        p.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    };
    let all_members: Vec<String> = files.iter().map(stem).collect();
    let team: Vec<String> = if config.members.is_empty() {
        all_members.clone()
    } else {
        config.members.clone()
    };
    if team.len() < 2 {
        bail!(
            "{}: found {} answer set(s) (*.jsonl); a team needs at least 2",
            answers_dir.display(),
            team.len()
        );
    }
    let mut members = Vec::with_capacity(team.len());
    for name in &team {
        let Some(path) = files.iter().find(|p| &stem(p) == name) else {
            bail!(
                "members: no answer set `{name}.jsonl` in {} (it has {})",
                answers_dir.display(),
                all_members.join(", ")
            );
        };
        let answer_file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {answer_file}"))?;
        let set = parse_answer_set(&answer_file, name, &text)?;
        if let Some(q) = questions
            .questions
            .iter()
            .find(|q| !set.records.contains_key(&q.id))
        {
            bail!(
                "{answer_file}: no answers for question `{}` of {file} (every member must answer every question)",
                q.id
            );
        }
        members.push(set);
    }
    let n = questions.questions.len();
    let splits = canonical_splits(n, config.split_seed, 60, 20);
    let test: Vec<usize> = (0..n).filter(|&i| splits[i] == Split::Test).collect();
    let rest: Vec<usize> = (0..n).filter(|&i| splits[i] != Split::Test).collect();
    // The reference trains on the first 70 % of its training outputs and selects on the rest.
    let cut = rest.len() * 7 / 10;
    let (train, val) = (rest[..cut].to_vec(), rest[cut..].to_vec());
    if train.is_empty() || val.is_empty() || test.is_empty() {
        bail!(
            "{file}: {n} questions leave {} to train on, {} to select on and {} to test; give at least 10",
            train.len(),
            val.len(),
            test.len()
        );
    }
    Ok(StudyData {
        questions,
        questions_file: questions_file.to_path_buf(),
        members,
        answers_dir: answers_dir.to_path_buf(),
        train,
        val,
        test,
    })
}

impl StudyData {
    /// Member `m`'s outputs for question `q`, the first `limit` of them (0: all).
    pub fn outputs(&self, m: usize, q: usize, limit: usize) -> &[String] {
        let id = &self.questions.questions[q].id;
        let samples = &self.members[m].records[id].samples;
        let n = if limit == 0 {
            samples.len()
        } else {
            limit.min(samples.len())
        };
        &samples[..n]
    }

    /// Question `q`'s fusion prompt (ending with `[BOA]`) and its target text.
    pub fn prompt_and_target(&self, q: usize, limit: usize) -> (String, String) {
        let outputs: Vec<Vec<String>> = (0..self.members.len())
            .map(|m| self.outputs(m, q, limit).to_vec())
            .collect();
        let question = question_text(&self.questions.questions[q]);
        (
            fusion_prompt(&question, &outputs),
            target_text(&self.questions.gold[q]),
        )
    }
}

/// One question as token ids.
#[derive(Debug, Clone)]
pub struct FusionExample {
    /// The question's index in the set.
    pub question: usize,
    /// `bos? + prompt`, ending with `[BOA]`.
    pub prompt: Vec<u32>,
    /// The target's ids and the end-of-sequence id.
    pub target: Vec<u32>,
    /// Whether the members' part was cut to fit `max_len`.
    pub truncated: bool,
}

impl FusionExample {
    /// As a training example: the prompt's positions carry no loss.
    pub fn encoded(&self) -> Encoded {
        let ids: Vec<u32> = self.prompt.iter().chain(&self.target).copied().collect();
        let labels = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                if i < self.prompt.len() {
                    IGNORE
                } else {
                    i64::from(id)
                }
            })
            .collect();
        Encoded {
            ids,
            labels,
            task: 0,
        }
    }
}

/// Encodes question `q`: when prompt and target exceed `max_len`, the members' part is cut
/// from its end (the question and `[BOA]` stay; the reference truncates its input the same
/// way, though at 16,000 tokens).
pub fn encode_question(
    data: &StudyData,
    codec: &dyn Codec,
    special: SpecialIds,
    boa: u32,
    q: usize,
    limit: usize,
    max_len: usize,
) -> FusionExample {
    let (prompt, target) = data.prompt_and_target(q, limit);
    let body = prompt.strip_suffix(BOA).unwrap_or(&prompt);
    let mut target_ids = codec.encode(&target);
    target_ids.extend(special.eos);
    let mut ids: Vec<u32> = special.bos.into_iter().collect();
    ids.extend(codec.encode(body));
    let room = max_len.saturating_sub(target_ids.len() + 1).max(1);
    let truncated = ids.len() > room;
    ids.truncate(room);
    ids.push(boa);
    target_ids.truncate(max_len.saturating_sub(ids.len()).max(1));
    FusionExample {
        question: q,
        prompt: ids,
        target: target_ids,
        truncated,
    }
}
