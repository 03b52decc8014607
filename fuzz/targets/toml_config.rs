//! The alignment runs' TOML configurations (`fuselab align … --config FILE`, the server's
//! `/api/align/runs`): [`parse_config`] (the schema, then the range checks) for each of the
//! three configuration types, and the server's [`prepare_config`], which rewrites spans of the
//! user's text (`out` blanked, every data path moved inside the data directory). What the
//! server prepares must parse and check again as the run reads it, or the server would queue a
//! run that fails at its start (a finding here).

use std::path::Path;

use fuselab::align::attack::AttackConfig;
use fuselab::align::h3fusion::H3FusionConfig;
use fuselab::align::parse_config;
use fuselab::align::run::SftConfig;
use fuselab::server::prepare_config;

/// See the module documentation.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_config::<SftConfig>(text, "fuzz.toml");
    let _ = parse_config::<H3FusionConfig>(text, "fuzz.toml");
    let _ = parse_config::<AttackConfig>(text, "fuzz.toml");
    if let Ok(prepared) = prepare_config(text, Path::new("/srv/fuselab"))
        && let Err(error) = parse_config::<AttackConfig>(&prepared, "run.toml")
    {
        panic!("the server prepared a configuration the run refuses: {error}\n{prepared}");
    }
}
