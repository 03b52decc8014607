//! The alignment runs' TOML configurations (`fuselab align … --config FILE`, the server's
//! `/api/align/runs`): [`parse_config`] (the schema, then the range checks) for each of the
//! five configuration types (the three alignment runs', LLM-TOPLA-Summary's and a CTR run's), the
//! server's [`check_config`] for an attack, a summary run and a CTR benchmark (`out` dropped, data paths checked
//! relative) and the worker's [`resolve_config`] (its `out` and data folder put in with
//! `toml_edit`). What the worker resolves must parse and check again as the run reads it, or
//! the server would queue a run that fails at its start (a finding here).

use std::path::Path;

use fuselab::align::attack::AttackConfig;
use fuselab::align::h3fusion::H3FusionConfig;
use fuselab::align::job::{check_config, resolve_config};
use fuselab::align::parse_config;
use fuselab::align::run::SftConfig;
use fuselab::ctr::RunConfig;
use fuselab::llm::summary::SummaryConfig;
use fuselab_shared::api::AlignAction;

/// See the module documentation.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_config::<SftConfig>(text, "fuzz.toml");
    let _ = parse_config::<H3FusionConfig>(text, "fuzz.toml");
    let _ = parse_config::<AttackConfig>(text, "fuzz.toml");
    let _ = parse_config::<SummaryConfig>(text, "fuzz.toml");
    let _ = parse_config::<RunConfig>(text, "fuzz.toml");
    checked_then_resolved::<AttackConfig>(AlignAction::Attack, text);
    checked_then_resolved::<SummaryConfig>(AlignAction::ToplaSummary, text);
    checked_then_resolved::<RunConfig>(AlignAction::CtrBenchmark, text);
}

fn checked_then_resolved<T: fuselab::align::Checked>(action: AlignAction, text: &str) {
    if let Ok((stored, _)) = check_config(action, text) {
        let resolved = resolve_config(
            &stored,
            Path::new("/srv/fuselab/align-work/j/out"),
            Path::new("/srv/fuselab/align-data"),
        )
        .unwrap_or_else(|e| panic!("a checked configuration does not resolve: {e}\n{stored}"));
        if let Err(error) = parse_config::<T>(&resolved, "run.toml") {
            panic!("the worker resolved a configuration the run refuses: {error}\n{resolved}");
        }
    }
}
