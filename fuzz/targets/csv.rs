//! CSV: the prediction table (`label,<model>,...`), which must survive a write→read round trip,
//! and the pool's CSV pair (a labels file and a predictions file). The input is the table; for
//! the pair it is cut at its first NUL byte into the labels file and the predictions file.

use fuselab_shared::PredictionTable;
use fuselab_shared::ensemble::{InputFile, Pool, PoolFiles, PoolInput};

use super::analyse;

/// See the module documentation.
///
/// # Panics
/// When a table read from CSV does not read back equal from its own CSV.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(table) = PredictionTable::from_csv(text)
    {
        let again = PredictionTable::from_csv(&table.to_csv());
        assert_eq!(
            again.as_ref(),
            Ok(&table),
            "the table's CSV reads back differently"
        );
        if Pool::from_table(&table).is_ok() {
            analyse(PoolInput::from(&table));
        }
    }

    let Some(cut) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let (labels, predictions) = (&data[..cut], &data[cut + 1..]);
    // Named so that `detect` has to tell them apart by their columns.
    let named = [
        InputFile {
            name: "a.csv",
            bytes: labels,
        },
        InputFile {
            name: "b.csv",
            bytes: predictions,
        },
    ];
    let _ = PoolFiles::detect(&named).and_then(|files| files.parse());
    let pair = PoolFiles::CsvPair {
        labels: InputFile {
            name: "labels.csv",
            bytes: labels,
        },
        predictions: InputFile {
            name: "predictions.csv",
            bytes: predictions,
        },
    };
    if let Ok(input) = pair.parse() {
        analyse(input);
    }
}
