//! The dataset files of `[data]`: JSON, JSONL, and Hugging Face's Parquet exports. Parquet rows
//! are turned into JSON lines and go through the same checked parser as JSONL, so a bad row's
//! error names the file, the 1-based row and the field whatever the format.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use fuselab_shared::align::{Record, parse_checked};
use parquet::file::reader::FileReader as _;
use parquet::file::serialized_reader::SerializedFileReader;
use serde_json::Value;
use thiserror::Error;

/// Why a `.parquet` file could not be read. Rows that decode but do not fit the record schema are
/// reported by the record parser ([`fuselab_shared::align::DataError`]).
#[derive(Debug, Error)]
pub enum ParquetError {
    /// The file does not start with Parquet's magic number.
    #[error(
        "{file}: not a Parquet file (it does not start with `PAR1`), yet its name ends in .parquet"
    )]
    NotParquet {
        /// The file's name.
        file: String,
    },
    /// The file is Parquet but cannot be decoded (corrupt, or a codec this build lacks).
    #[error("{file}: cannot read the Parquet file: {what}")]
    Unreadable {
        /// The file's name.
        file: String,
        /// The `parquet` crate's message.
        what: String,
    },
    /// One row cannot be decoded.
    #[error("{file}: row {row}: cannot read the Parquet row: {what}")]
    Row {
        /// The file's name.
        file: String,
        /// 1-based row, counted over all row groups.
        row: usize,
        /// The `parquet` crate's message.
        what: String,
    },
}

/// Reads `path` as records: Parquet when the name ends in `.parquet`, otherwise a JSON array or
/// JSONL.
///
/// # Errors
/// An unreadable file, a file that is not Parquet ([`ParquetError`]), or a bad record
/// ([`fuselab_shared::align::DataError`], naming the file, the 1-based row and the field).
pub fn read_records<T: Record>(path: &Path) -> anyhow::Result<Vec<T>> {
    let name = path.display().to_string();
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let text = if is_parquet {
        parquet_jsonl(path)?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?
    };
    Ok(parse_checked(&text, &name)?)
}

/// A Parquet file's rows as JSON lines, one per row in file order (so line N is row N). Lists
/// become arrays and groups objects; null values are left out, so a missing value reads as a
/// missing field (and a field with a default gets it).
///
/// # Errors
/// The file cannot be opened, is not Parquet, or cannot be decoded.
pub fn parquet_jsonl(path: &Path) -> anyhow::Result<String> {
    let name = path.display().to_string();
    let mut file = File::open(path).with_context(|| format!("cannot read {name}"))?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"PAR1" => {}
        Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            return Err(e).with_context(|| format!("cannot read {name}"));
        }
        _ => return Err(ParquetError::NotParquet { file: name }.into()),
    }
    let unreadable = |e: parquet::errors::ParquetError| ParquetError::Unreadable {
        file: name.clone(),
        what: e.to_string(),
    };
    let reader = SerializedFileReader::new(file).map_err(unreadable)?;
    let rows = reader.get_row_iter(None).map_err(unreadable)?;
    let mut text = String::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| ParquetError::Row {
            file: name.clone(),
            row: i + 1,
            what: e.to_string(),
        })?;
        let mut value = row.to_json_value();
        drop_nulls(&mut value);
        text.push_str(&serde_json::to_string(&value)?);
        text.push('\n');
    }
    Ok(text)
}

/// Removes null members of objects, at every depth (elements of lists stay).
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|_, v| !v.is_null());
            members.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
