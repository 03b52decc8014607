//! Reading a run's TOML configuration: the schema (serde, unknown keys refused) and then the
//! ranges the types cannot express ([`Checked`]), so that `fuselab align`, the server's runs and
//! the workers refuse the same configurations with the same message before training starts.

use std::path::Path;

use anyhow::Context as _;
use fuselab_ml::llm::range::{self, RangeError};
use serde::de::DeserializeOwned;

/// The most examples, rows, prompts or poisoned samples a configuration may ask for: ten million
/// rows is more than any of the real data sets (`BeaverTails` 330k, AG News 120k) and already
/// gigabytes of synthetic text, so larger values are typing mistakes or attacks on the server.
pub const MAX_COUNT: usize = 10_000_000;

/// A configuration that does not fit its schema or its ranges: bad input, so the command exits
/// with 2.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub struct ConfigError {
    /// The configuration file.
    pub file: String,
    /// What is wrong: the TOML parser's message (naming the key and line) or the range check's.
    pub what: String,
}

/// A configuration whose values are checked after parsing.
pub trait Checked: DeserializeOwned {
    /// What the types cannot check: counts, sizes and rates in range, finite numbers, known
    /// names.
    ///
    /// # Errors
    /// The first problem, in words for the user, naming the key.
    fn check(&self) -> Result<(), String>;
}

/// Parses and checks a configuration given as text; `file` names it in messages.
///
/// # Errors
/// TOML that does not fit the schema, or a value out of range ([`ConfigError`]).
pub fn parse_config<T: Checked>(text: &str, file: &str) -> Result<T, ConfigError> {
    let fail = |what: String| ConfigError {
        file: file.to_owned(),
        what,
    };
    let config: T = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
    config.check().map_err(fail)?;
    Ok(config)
}

/// Reads, parses and checks a configuration file.
///
/// # Errors
/// An unreadable file, or a configuration that does not fit ([`ConfigError`]).
pub fn read_config<T: Checked>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    Ok(parse_config(&text, &path.display().to_string())?)
}

/// A row or example count, at most [`MAX_COUNT`].
///
/// # Errors
/// `value` above [`MAX_COUNT`].
pub fn rows(key: &str, value: usize) -> Result<(), RangeError> {
    range::count(key, value, 0..=MAX_COUNT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::attack::AttackConfig;
    use crate::align::h3fusion::H3FusionConfig;

    #[test]
    fn every_example_configuration_passes_its_checks() {
        for (name, text) in [
            (
                "attack-hf.toml",
                include_str!("../../../examples/attack-hf.toml"),
            ),
            (
                "attack-small.toml",
                include_str!("../../../examples/attack-small.toml"),
            ),
            (
                "attack-smollm2.toml",
                include_str!("../../../examples/attack-smollm2.toml"),
            ),
            (
                "attack-synthetic.toml",
                include_str!("../../../examples/attack-synthetic.toml"),
            ),
        ] {
            parse_config::<AttackConfig>(text, name).unwrap();
        }
        let name = "h3fusion-synthetic.toml";
        let text = include_str!("../../../examples/h3fusion-synthetic.toml");
        parse_config::<H3FusionConfig>(text, name).unwrap();
        for (name, text) in [
            (
                "summary-gsm8k.toml",
                include_str!("../../../examples/llm-study/summary-gsm8k.toml"),
            ),
            (
                "summary-mmlu.toml",
                include_str!("../../../examples/llm-study/summary-mmlu.toml"),
            ),
            (
                "summary-server.toml",
                &format!(
                    "out = \"x\"\n{}",
                    include_str!("../../../examples/llm-study/summary-server.toml")
                ),
            ),
        ] {
            parse_config::<crate::llm::summary::SummaryConfig>(text, name).unwrap();
        }
    }

    #[test]
    fn each_table_reports_its_own_key() {
        let example = include_str!("../../../examples/h3fusion-synthetic.toml");
        let text = example.replacen("top_k = 2", "top_k = 4", 1);
        assert_ne!(text, example);
        let error = parse_config::<H3FusionConfig>(&text, "h3.toml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "h3.toml: stage3.top_k = 4: expected a whole number from 1 to 3"
        );
        let example = include_str!("../../../examples/attack-small.toml");
        let text = example.replacen("align_steps = 2", "align_steps = 0", 1);
        assert_ne!(text, example);
        let error = parse_config::<AttackConfig>(&text, "a.toml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "a.toml: lisa.align_steps = 0: expected a whole number from 1 to 10000000"
        );
    }
}
