//! The `Alpaca` prompt template of the reference code, and the post-processing of generated
//! text.

use serde::{Deserialize, Serialize};

use super::Example;

/// The marker `H3Fusion` appends to every training response, and cuts generations at.
pub const END_MARKER: &str = "###END";

const INSTRUCTION_HEADER: &str = "### Instruction";

/// How prompts and targets are laid out around the `Alpaca` template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptFormat {
    /// Appended after `### Response:`: `""` (`H3Fusion`, `Lisa`) or `"\n"` (`Booster`,
    /// evaluation).
    pub response_suffix: String,
    /// Appended to the response in training targets: `"###END"` for `H3Fusion`, `""` when an
    /// end-of-sequence token is used.
    pub target_suffix: String,
}

impl PromptFormat {
    /// `H3Fusion`'s layout: nothing after `### Response:`, targets end with `###END`.
    pub fn h3fusion() -> Self {
        PromptFormat {
            response_suffix: String::new(),
            target_suffix: END_MARKER.to_owned(),
        }
    }

    /// `Booster`'s layout: a newline after `### Response:`, targets end with the EOS token.
    pub fn booster() -> Self {
        PromptFormat {
            response_suffix: "\n".to_owned(),
            target_suffix: String::new(),
        }
    }

    /// The prompt for an instruction; the template with an input section is used iff `input`
    /// is non-empty (the reference tests `input != ""`).
    pub fn prompt(&self, instruction: &str, input: &str) -> String {
        let body = if input.is_empty() {
            format!(
                "Below is an instruction that describes a task. Write a response that \
                 appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n\
                 ### Response:"
            )
        } else {
            format!(
                "Below is an instruction that describes a task, paired with an input that \
                 provides further context. Write a response that appropriately completes the \
                 request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n\
                 ### Response:"
            )
        };
        body + &self.response_suffix
    }

    /// The prompt of an example.
    pub fn example_prompt(&self, example: &Example) -> String {
        self.prompt(&example.instruction, &example.input)
    }

    /// The training target for a response: the response and [`PromptFormat::target_suffix`].
    pub fn target(&self, output: &str) -> String {
        format!("{output}{}", self.target_suffix)
    }

    /// The response in generated text: cut at the first `###END`, `### Instruction` or
    /// non-empty [`PromptFormat::target_suffix`], whichever comes first, and trimmed.
    pub fn strip_response(&self, generated: &str) -> String {
        let mut end = generated.len();
        for marker in [END_MARKER, INSTRUCTION_HEADER, self.target_suffix.as_str()] {
            if marker.is_empty() {
                continue;
            }
            if let Some(at) = generated.find(marker) {
                end = end.min(at);
            }
        }
        generated[..end].trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_the_reference_text() {
        let f = PromptFormat::h3fusion();
        assert_eq!(
            f.prompt("Say hi.", ""),
            "Below is an instruction that describes a task. Write a response that appropriately \
             completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:"
        );
        assert_eq!(
            f.prompt("Repeat the input.", "cat"),
            "Below is an instruction that describes a task, paired with an input that provides \
             further context. Write a response that appropriately completes the request.\n\n\
             ### Instruction:\nRepeat the input.\n\n### Input:\ncat\n\n### Response:"
        );
        assert_eq!(f.target("cat"), "cat###END");
        let b = PromptFormat::booster();
        assert!(b.prompt("Say hi.", "").ends_with("### Response:\n"));
        assert_eq!(b.target("cat"), "cat");
    }

    #[test]
    fn strip_response_cuts_at_the_first_marker() {
        let f = PromptFormat::h3fusion();
        assert_eq!(f.strip_response("  cat cat ###END junk"), "cat cat");
        assert_eq!(f.strip_response("\ncat\n\n### Instruction:\nmore"), "cat");
        assert_eq!(f.strip_response("a ### Instruction b ###END"), "a");
        assert_eq!(f.strip_response(" plain "), "plain");
        let custom = PromptFormat {
            response_suffix: String::new(),
            target_suffix: "</s>".into(),
        };
        assert_eq!(custom.strip_response("dog</s>dog"), "dog");
    }
}
