//! `.npz` archives: the reader alone, and the pool read from the archive (`labels`,
//! `predictions` and/or `probabilities`), validated and analysed.

use fuselab_shared::ensemble::{InputFile, PoolFiles};
use fuselab_shared::npy::parse_npz;

use super::analyse;

/// See the module documentation.
pub fn run(data: &[u8]) {
    let _ = parse_npz(data);
    let file = InputFile {
        name: "pool.npz",
        bytes: data,
    };
    if let Ok(input) = PoolFiles::Npz(file).parse() {
        analyse(input);
    }
}
