//! LLM answers as ensemble members (spec `focal.md` §1.2, §6.2): question sets with gold
//! answers, per-model answer sets (K sampled completions per question), the answer each
//! completion gives, pools for the focal analysis and LLM-TOPLA-Weighted's candidate-space
//! features; LLM-TOPLA-Summary's fusion prompts and text metrics.

mod extract;
mod generate;
pub mod metrics;
mod records;
mod space;
pub mod summary;

pub use extract::{LETTERS, Rules, bleu2, gsm8k_gold, gsm8k_number, mmlu_choice};
pub use generate::generate_questions;
pub use records::{
    AnswerRecord, AnswerSet, Answers, GENERATED_SOURCE, Gold, MAX_SAMPLES, Question, QuestionSet,
    RecordError, Task, answers_of, parse_answer_set, parse_questions,
};
pub use space::{
    NO_ANSWER, ToplaOptions, ToplaRows, UNREACHABLE, answer_pool, answer_pool_classes,
    candidate_space, canonical_splits, topla_rows,
};
