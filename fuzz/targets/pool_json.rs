//! The pool as JSON (`{"labels": [...], "models": [{"name", "predictions", "probabilities"}],
//! "classes"}`), as the CLI, the browser and the server's analysis read it, then validated and
//! analysed.

use fuselab_shared::ensemble::{InputFile, PoolFiles};

use super::analyse;

/// See the module documentation.
pub fn run(data: &[u8]) {
    let files = [InputFile {
        name: "pool.json",
        bytes: data,
    }];
    if let Ok(input) = PoolFiles::detect(&files).and_then(|files| files.parse()) {
        analyse(input);
    }
}
