//! The data files of a CTR run: CSV (a header line, then rows) or Parquet (by extension), read
//! into the table `fuselab_shared::ctr::encode` encodes; every error names the file.

use std::path::Path;

use anyhow::{Context as _, bail};
use fuselab_shared::ctr::encode::{Encoded, Preprocessor, RawTable, csv_table};
use fuselab_shared::ctr::schema::{FeatureKind, Schema};
use fuselab_shared::table::Row;

/// Largest data file read (bounds memory: the table is held as text cells).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// The table of a CSV or Parquet file.
///
/// # Errors
/// The file is missing, too large, or not CSV/Parquet with a header.
pub fn read_table(path: &Path, schema: &Schema) -> anyhow::Result<RawTable> {
    let name = path.display().to_string();
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {name}"))?
        .len();
    if size > MAX_FILE_BYTES {
        bail!("{name}: {size} bytes, larger than the {MAX_FILE_BYTES} this reader accepts");
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        let jsonl = crate::align::data::parquet_jsonl(path)?;
        return parquet_table(&jsonl, schema).with_context(|| name.clone());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {name} as UTF-8 text"))?;
    csv_table(&text).with_context(|| name)
}

/// Parquet rows (as JSON objects) as a table: columns from the first row, lists joined with
/// the sequence feature's splitter, numbers and booleans as text.
fn parquet_table(jsonl: &str, schema: &Schema) -> anyhow::Result<RawTable> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        let record: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).with_context(|| format!("row {}", i + 1))?;
        if columns.is_empty() {
            columns = record.keys().cloned().collect();
        }
        let cells = columns
            .iter()
            .map(|c| {
                let splitter = match schema.feature(c).map(|f| &f.kind) {
                    Some(FeatureKind::Sequence { splitter, .. }) => splitter.as_str(),
                    _ => "^",
                };
                cell(record.get(c).unwrap_or(&serde_json::Value::Null), splitter)
            })
            .collect();
        // Rows are counted from 1 after a virtual header, as in a CSV file.
        rows.push(Row { line: i + 2, cells });
    }
    Ok(RawTable { columns, rows })
}

fn cell(value: &serde_json::Value, splitter: &str) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(b) => u8::from(*b).to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| cell(v, splitter))
            .collect::<Vec<_>>()
            .join(splitter),
        other => other.to_string(),
    }
}

/// Encodes `table` (from `path`), naming the file in errors.
///
/// # Errors
/// A cell that does not fit the schema.
pub fn encode(pre: &Preprocessor, table: &RawTable, path: &Path) -> anyhow::Result<Encoded> {
    pre.encode(table)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
