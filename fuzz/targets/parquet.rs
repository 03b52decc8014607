//! Parquet datasets (the `[data]` files of the alignment runs and the benchmark's task exports):
//! [`parquet_rows_jsonl`], the reader `read_records` uses for `.parquet` files (the footer, the
//! schema, the pages of every column, snappy and zstd, the rows turned into JSON lines), over
//! the bytes in memory, then the JSON lines through the checked parser of every record type the
//! runs read (Alpaca, `BeaverTails`, `TruthfulQA`, refusals, and the three benign tasks).

use fuselab::align::data::parquet_rows_jsonl;
use fuselab_shared::align::tasks::BenignTask;
use fuselab_shared::align::{
    AlpacaRecord, BeaverTailsRecord, RefusalRecord, TruthfulQaRecord, parse_checked,
};

const NAME: &str = "fuzz.parquet";

/// See the module documentation.
pub fn run(data: &[u8]) {
    let bytes = axum::body::Bytes::copy_from_slice(data);
    let Ok(jsonl) = parquet_rows_jsonl(bytes, NAME) else {
        return;
    };
    let _ = parse_checked::<AlpacaRecord>(&jsonl, NAME);
    let _ = parse_checked::<BeaverTailsRecord>(&jsonl, NAME);
    let _ = parse_checked::<TruthfulQaRecord>(&jsonl, NAME);
    let _ = parse_checked::<RefusalRecord>(&jsonl, NAME);
    for task in BenignTask::ALL {
        let _ = task.parse_examples(&jsonl, NAME);
    }
}
