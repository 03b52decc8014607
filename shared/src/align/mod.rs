//! The data side of LLM alignment methods such as `H3Fusion` (helpful, harmless and honest
//! experts fused as a mixture of experts) and later `Booster` and `Lisa`.
//!
//! - [`records`]: the record schemas of the public exports of `Alpaca`, `BeaverTails` and
//!   `TruthfulQA`, a tolerant parser for JSON arrays and JSONL, and the conversion of every
//!   record to the common [`Example`].
//! - [`synthetic`]: seeded SYNTHETIC stand-ins with the same schemas whose behaviours a tiny
//!   transformer can learn, and the behaviour of an unaligned base model.
//! - [`judge`]: rule-based judges that score outputs on the synthetic tasks, and the
//!   `BeaverTails`-style harm marker judge.
//! - [`prompt`]: the `Alpaca` prompt template of the reference code and its post-processing.
//! - [`tasks`]: the benign fine-tuning tasks of `Booster` and `Lisa` (`SST-2`, `AG News`,
//!   `GSM8K`): record schemas, the reference instructions, conversion to [`Example`], scoring of
//!   predictions, and seeded SYNTHETIC stand-ins.
//! - [`metrics`]: the harmful score HS and HS+ (coherence rule) over a [`HarmJudge`], the
//!   finetune accuracy FA, the `GSM8K` answer extraction, and the choice of HS prompts.
//! - [`attack`]: the `RepNoise` refusal records and their synthetic stand-in, the reference
//!   index windows, and the poisoned user data of the harmful fine-tuning attack.
//!
//! Everything here is pure: no I/O, no clock, no OS randomness.

use serde::{Deserialize, Serialize};

pub mod attack;
pub mod judge;
pub mod metrics;
pub mod prompt;
pub mod records;
pub mod synthetic;
pub mod tasks;

pub use attack::{
    HarmfulRow, MixCounts, MixError, MixSet, PoisonCount, RefusalRecord, open_window, poisoned_mix,
    poisoned_mix_with, synthetic_refusals,
};
pub use judge::{HarmJudge, MarkerJudge, SyntheticJudge, TaskScores};
pub use metrics::{
    HarmScores, HsPromptFilter, agnews_correct, extract_answer_number, find_numbers, gsm8k_correct,
    harmful_scores, hs_prompts, is_coherent, percent, sst2_correct,
};
pub use prompt::PromptFormat;
pub use records::{
    AlpacaRecord, BEAVERTAILS_CATEGORIES, BeaverTailsRecord, DataError, Record, TruthfulQaRecord,
    parse_checked, parse_records, safe_only, truthfulqa_split,
};
pub use synthetic::SYNTHETIC_LABEL;
pub use tasks::{
    AGNEWS_INSTRUCTION, AGNEWS_LABELS, AgNewsRecord, BenignTask, GSM8K_ANSWER_PROMPT, Gsm8kRecord,
    SST2_INSTRUCTION, SST2_LABELS, Sst2Record, TaskRecord, gsm8k_output, synthetic_agnews,
    synthetic_gsm8k, synthetic_sst2,
};

/// The three `H3Fusion` tasks; the discriminant is the gate label and the expert index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Follow the instruction (`Alpaca`).
    Helpful = 0,
    /// Refuse harmful requests (`BeaverTails`).
    Harmless = 1,
    /// Answer truthfully rather than imitate a common falsehood (`TruthfulQA`).
    Honest = 2,
}

impl Task {
    /// The tasks in index order.
    pub const ALL: [Task; 3] = [Task::Helpful, Task::Harmless, Task::Honest];

    /// The gate label and expert index: 0, 1 or 2.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The task at `index`, if any.
    pub fn from_index(index: usize) -> Option<Task> {
        Task::ALL.get(index).copied()
    }

    /// The lowercase name, as in the JSON form: `helpful`, `harmless` or `honest`.
    pub fn name(self) -> &'static str {
        match self {
            Task::Helpful => "helpful",
            Task::Harmless => "harmless",
            Task::Honest => "honest",
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One supervised example in the common form every trainer uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The instruction (the prompt or the question).
    pub instruction: String,
    /// Optional context; empty when the prompt has none.
    pub input: String,
    /// The target response.
    pub output: String,
    /// The task the example teaches.
    pub task: Task,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_indices_names_and_json() {
        for (i, task) in Task::ALL.iter().enumerate() {
            assert_eq!(task.index(), i);
            assert_eq!(Task::from_index(i), Some(*task));
        }
        assert_eq!(Task::from_index(3), None);
        assert_eq!(Task::Harmless.name(), "harmless");
        assert_eq!(serde_json::to_string(&Task::Honest).unwrap(), "\"honest\"");
        let back: Task = serde_json::from_str("\"helpful\"").unwrap();
        assert_eq!(back, Task::Helpful);
    }
}
