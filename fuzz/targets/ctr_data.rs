//! CTR data: the hand-written MovieLens atomic-file reader (`ctr::movielens`, three TSV files,
//! the input cut at NUL bytes into `.inter`, `.item` and `.user`), and a CTR table (CSV) fitted
//! and encoded with the standard exposure schema, as `fuselab ctr train` reads a user's file.

use fuselab_shared::ctr::encode::{Preprocessor, csv_table};
use fuselab_shared::ctr::movielens::{MovielensFiles, MovielensOptions, build};
use fuselab_shared::ctr::schema::Schema;

/// See the module documentation.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.split('\0').collect();
    if let [inter, item, user] = parts[..] {
        let files = MovielensFiles { inter, item, user };
        if let Ok(dataset) = build(&files, &MovielensOptions::default()) {
            let rows = dataset.train.len() + dataset.valid.len() + dataset.test.len();
            let ratings = inter.lines().count();
            assert!(rows <= ratings, "{rows} exposures from {ratings} ratings");
        }
    }
    let schema = Schema::exposures(&["age"], true, 8);
    if let Ok(table) = csv_table(text)
        && let Ok(pre) = Preprocessor::fit(&schema, &table)
        && let Ok(encoded) = pre.encode(&table)
    {
        assert_eq!(encoded.rows, table.rows.len());
        for sequence in encoded.sequences.values() {
            assert_eq!(sequence.ids.len(), encoded.rows * sequence.max_len);
        }
    }
}
