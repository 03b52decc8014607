//! The dataset files of `[data]`: JSON, JSONL, and Hugging Face's Parquet exports. Parquet rows
//! are turned into JSON lines and go through the same checked parser as JSONL, so a bad row's
//! error names the file, the 1-based row and the field whatever the format.

use std::fs::File;
use std::path::Path;

use anyhow::Context as _;
use fuselab_shared::align::{Record, parse_checked};
use parquet::basic::{ConvertedType, Repetition};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, FileReader as _};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::schema::types::Type as SchemaType;
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
    let file = File::open(path).with_context(|| format!("cannot read {name}"))?;
    Ok(parquet_rows_jsonl(file, &name)?)
}

/// [`parquet_jsonl`] over anything the `parquet` crate reads from: an open file, or the bytes of
/// one (`bytes::Bytes`, as the fuzzer hands them over); `name` names it in errors.
///
/// # Errors
/// [`ParquetError`]: not Parquet, or a file or row that cannot be decoded.
pub fn parquet_rows_jsonl<R: ChunkReader + 'static>(
    reader: R,
    name: &str,
) -> Result<String, ParquetError> {
    let magic = (reader.len() >= 4)
        .then(|| reader.get_bytes(0, 4))
        .transpose()
        .map_err(|e| ParquetError::Unreadable {
            file: name.to_owned(),
            what: e.to_string(),
        })?;
    if magic.as_deref() != Some(b"PAR1".as_slice()) {
        return Err(ParquetError::NotParquet {
            file: name.to_owned(),
        });
    }
    let unreadable = |e: parquet::errors::ParquetError| ParquetError::Unreadable {
        file: name.to_owned(),
        what: e.to_string(),
    };
    let length = reader.len();
    let reader = contained(name, || SerializedFileReader::new(reader))?.map_err(unreadable)?;
    check_column_chunks(reader.metadata(), length)
        .and_then(|()| check_schema(reader.metadata().file_metadata().schema(), None))
        .map_err(|what| ParquetError::Unreadable {
            file: name.to_owned(),
            what,
        })?;
    let mut rows = contained(name, || reader.get_row_iter(None))?.map_err(unreadable)?;
    let mut text = String::new();
    for i in 0.. {
        let bad_row = |what: String| ParquetError::Row {
            file: name.to_owned(),
            row: i + 1,
            what,
        };
        let Some(row) = contained(name, || rows.next())? else {
            break;
        };
        let mut value = row.map_err(|e| bad_row(e.to_string()))?.to_json_value();
        drop_nulls(&mut value);
        text.push_str(&serde_json::to_string(&value).map_err(|e| bad_row(e.to_string()))?);
        text.push('\n');
    }
    Ok(text)
}

/// Runs one call into the `parquet` crate, turning a panic into an error. Its page decoders
/// (60.1) assert on some corrupt pages instead of returning an error: a dictionary page whose
/// byte-array lengths run past its end panicked in `bit_util::read_num_bytes` (found by
/// `fuzz/targets/parquet.rs`). Nothing of ours runs inside, and the reader is dropped after a
/// panic, so no broken state is used again.
fn contained<T>(name: &str, call: impl FnOnce() -> T) -> Result<T, ParquetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        ParquetError::Unreadable {
            file: name.to_owned(),
            what: format!("the Parquet reader failed on corrupt data ({message})"),
        }
    })
}

/// Checks that every column chunk lies inside the file. The `parquet` crate (60.1) panics on a
/// chunk whose offset or size is negative when its rows are read (found by
/// `fuzz/targets/parquet.rs`), so the footer's claims are checked here first.
fn check_column_chunks(metadata: &ParquetMetaData, length: u64) -> Result<(), String> {
    for (group, row_group) in metadata.row_groups().iter().enumerate() {
        for column in row_group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let size = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(start, size)| start.checked_add(size));
            if end.is_none_or(|end| end > length) {
                return Err(format!(
                    "row group {group}, column `{}`: its data is declared at bytes {start}..+{size}, outside the {length}-byte file",
                    column.column_path().string()
                ));
            }
        }
    }
    Ok(())
}

/// Checks the schema against what the `parquet` crate's (60.1) record reader asserts while it
/// builds its readers (it panics on a `LIST` group whose child is not repeated, found by
/// `fuzz/targets/parquet.rs`): every column has a repetition; a `LIST` group has one repeated
/// child, not an empty group; a `MAP` group has one repeated group child of one or two fields.
/// `path` is the field's dotted name (`None` for the schema's root).
fn check_schema(field: &SchemaType, path: Option<&str>) -> Result<(), String> {
    let info = field.get_basic_info();
    let name = path.unwrap_or("the schema");
    if path.is_some() && !info.has_repetition() {
        return Err(format!("column `{name}` declares no repetition"));
    }
    if field.is_primitive() {
        return Ok(());
    }
    let fields = field.get_fields();
    let repeated = |child: &SchemaType| {
        child.get_basic_info().has_repetition()
            && child.get_basic_info().repetition() == Repetition::REPEATED
    };
    let problem = match info.converted_type() {
        ConvertedType::LIST => match fields {
            [child] if !repeated(child) => Some("its child is not repeated"),
            [child] if child.is_group() && child.get_fields().is_empty() => {
                Some("its child is an empty group")
            }
            [_] => None,
            _ => Some("it has not exactly one child"),
        },
        ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE => match fields {
            [entry] if entry.is_primitive() || !repeated(entry) => {
                Some("its child is not a repeated group")
            }
            [entry] if !(1..=2).contains(&entry.get_fields().len()) => {
                Some("its entries have not one or two fields")
            }
            [_] => None,
            _ => Some("it has not exactly one child"),
        },
        _ => None,
    };
    if let Some(problem) = problem {
        return Err(format!(
            "column `{name}` is annotated {} but {problem}",
            info.converted_type()
        ));
    }
    for child in fields {
        let child_path = match path {
            Some(path) => format!("{path}.{}", child.name()),
            None => child.name().to_owned(),
        };
        check_schema(child, Some(&child_path))?;
    }
    Ok(())
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
