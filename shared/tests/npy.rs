//! The NumPy reader on files written by NumPy itself (`tests/npy/make_fixtures.py`).

use fuselab_shared::npy::{NpyArray, NpyData, parse_npy, parse_npz};

const LABELS: [i64; 6] = [0, 1, 2, 1, 0, 2];
const PREDICTIONS: [i64; 12] = [0, 1, 1, 1, 0, 2, 2, 1, 2, 0, 0, 2];

fn probabilities() -> NpyArray {
    NpyArray {
        shape: vec![2, 6, 3],
        data: NpyData::Float((0..36).map(|i| f64::from(i) / 64.0).collect()),
    }
}

#[test]
fn reads_single_arrays() {
    let labels = parse_npy(include_bytes!("npy/labels.npy")).unwrap();
    assert_eq!(labels.shape, vec![6]);
    assert_eq!(labels.data, NpyData::Int(LABELS.to_vec()));

    let predictions = parse_npy(include_bytes!("npy/predictions_be.npy")).unwrap();
    assert_eq!(predictions.shape, vec![2, 6]);
    assert_eq!(predictions.data, NpyData::Int(PREDICTIONS.to_vec()));

    let fortran = parse_npy(include_bytes!("npy/probabilities_fortran.npy")).unwrap();
    assert_eq!(fortran, probabilities());
}

#[test]
fn reads_stored_and_deflated_archives() {
    for bytes in [
        &include_bytes!("npy/pool.npz")[..],
        &include_bytes!("npy/pool_compressed.npz")[..],
    ] {
        let arrays = parse_npz(bytes).unwrap();
        let names: Vec<&str> = arrays.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["labels", "predictions", "probabilities"]);
        assert_eq!(arrays[0].1.data, NpyData::Int(LABELS.to_vec()));
        assert_eq!(arrays[1].1.shape, vec![2, 6]);
        assert_eq!(arrays[1].1.data, NpyData::Int(PREDICTIONS.to_vec()));
        assert_eq!(arrays[2].1, probabilities());
    }
}

#[test]
fn a_corrupted_archive_is_refused() {
    let mut bytes = include_bytes!("npy/pool_compressed.npz").to_vec();
    // Flip a byte inside the first member's compressed data.
    bytes[60] ^= 0xff;
    let error = parse_npz(&bytes).unwrap_err().to_string();
    assert!(
        error.starts_with("malformed .npz archive: `labels.npy`"),
        "{error}"
    );
}
