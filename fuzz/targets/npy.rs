//! `.npy` files: each one alone, and a pool made of them (`labels.npy` and one `<model>.npy` per
//! model). The input is cut where each file's magic begins, so a seed is simply its files one
//! after another; a single file serves as the labels and as two models.

use fuselab_shared::ensemble::{InputFile, PoolFiles};
use fuselab_shared::npy::parse_npy;

use super::analyse;

/// The first bytes of every `.npy` file.
const MAGIC: &[u8] = b"\x93NUMPY";

/// See the module documentation.
pub fn run(data: &[u8]) {
    let mut starts: Vec<usize> = data
        .windows(MAGIC.len())
        .enumerate()
        .filter(|(at, window)| *at > 0 && *window == MAGIC)
        .map(|(at, _)| at)
        .collect();
    starts.insert(0, 0);
    let files: Vec<&[u8]> = starts
        .iter()
        .zip(starts.iter().skip(1).chain([&data.len()]))
        .map(|(&from, &to)| &data[from..to])
        .collect();
    for file in &files {
        let _ = parse_npy(file);
    }
    let files = if files.len() == 1 {
        vec![files[0]; 3]
    } else {
        files
    };
    let names: Vec<String> = (0..files.len())
        .map(|index| {
            if index == 0 {
                "labels.npy".to_owned()
            } else {
                format!("m{index}.npy")
            }
        })
        .collect();
    let inputs: Vec<InputFile> = names
        .iter()
        .zip(&files)
        .map(|(name, bytes)| InputFile { name, bytes })
        .collect();
    if let Ok(input) = PoolFiles::Npy(inputs).parse() {
        analyse(input);
    }
}
