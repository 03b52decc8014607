//! Reading NumPy arrays: `.npy` files and `.npz` archives (stored or deflated), from bytes.
//!
//! Pure parsing, so the browser and the CLI read the same files the same way. Integer and
//! boolean arrays become `i64`, floating-point arrays `f64`; Fortran-ordered arrays are
//! returned in C order.

use thiserror::Error;

/// The elements of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// From `bool`, `int8`..`int64` and `uint8`..`uint64` arrays.
    Int(Vec<i64>),
    /// From `float32` and `float64` arrays.
    Float(Vec<f64>),
}

/// An n-dimensional array in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Extent of each dimension; empty for a scalar.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements.
    pub data: NpyData,
}

/// Why bytes could not be read as a NumPy array or archive.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NpyError {
    /// The bytes do not start with the `.npy` magic string.
    #[error("not a .npy array: it does not start with \\x93NUMPY")]
    Magic,
    /// The header dictionary is malformed.
    #[error("malformed .npy header: {reason}")]
    Header {
        /// What is wrong.
        reason: String,
    },
    /// The dtype is not a number type this reader handles.
    #[error(
        "unsupported dtype `{descr}`: expected bool, int8..int64, uint8..uint64, float32 or float64"
    )]
    Dtype {
        /// The header's `descr`.
        descr: String,
    },
    /// The data is shorter or longer than the header's shape says.
    #[error("the array data has {found} bytes, but its shape and dtype need {expected}")]
    Length {
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A `uint64` value does not fit in `i64`.
    #[error("the value {value} at flat index {index} is too large (above 2^63 - 1)")]
    Overflow {
        /// The value.
        value: u64,
        /// Its position in file order.
        index: usize,
    },
    /// The `.npz` archive is malformed or uses a feature this reader lacks.
    #[error("malformed .npz archive: {reason}")]
    Zip {
        /// What is wrong.
        reason: String,
    },
    /// An array inside an `.npz` archive is malformed.
    #[error("array `{name}` in the .npz archive: {error}")]
    Entry {
        /// The member's name, without `.npy`.
        name: String,
        /// What is wrong with it.
        error: Box<NpyError>,
    },
}

fn header_error(reason: impl Into<String>) -> NpyError {
    NpyError::Header {
        reason: reason.into(),
    }
}

/// The value of `'key': value` in the header dictionary, up to the next top-level comma.
fn header_value<'a>(header: &'a str, key: &str) -> Result<&'a str, NpyError> {
    let pattern = format!("'{key}':");
    let start = header
        .find(&pattern)
        .ok_or_else(|| header_error(format!("no '{key}' entry")))?
        + pattern.len();
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')
            .ok_or_else(|| header_error(format!("unclosed tuple for '{key}'")))?
            + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Ok(rest[..end].trim())
}

fn parse_shape(value: &str) -> Result<Vec<usize>, NpyError> {
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| header_error(format!("shape `{value}` is not a tuple")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<usize>()
                .map_err(|_| header_error(format!("shape entry `{part}` is not a size")))
        })
        .collect()
}

/// Element type: family, size in bytes, little-endian.
#[derive(Debug, Clone, Copy)]
struct Dtype {
    family: u8,
    size: usize,
    little: bool,
}

fn parse_descr(value: &str) -> Result<Dtype, NpyError> {
    let descr = value.trim_matches(|c| c == '\'' || c == '"');
    let unsupported = || NpyError::Dtype {
        descr: descr.to_owned(),
    };
    let bytes = descr.as_bytes();
    if bytes.len() < 3 {
        return Err(unsupported());
    }
    let little = match bytes[0] {
        b'<' | b'|' | b'=' => true,
        b'>' => false,
        _ => return Err(unsupported()),
    };
    let size: usize = descr[2..].parse().map_err(|_| unsupported())?;
    let family = bytes[1];
    let ok = match family {
        b'b' => size == 1,
        b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
        b'f' => matches!(size, 4 | 8),
        _ => false,
    };
    if ok {
        Ok(Dtype {
            family,
            size,
            little,
        })
    } else {
        Err(unsupported())
    }
}

fn element(bytes: &[u8], little: bool) -> u64 {
    let mut buffer = [0_u8; 8];
    if little {
        buffer[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(buffer)
    } else {
        buffer[8 - bytes.len()..].copy_from_slice(bytes);
        u64::from_be_bytes(buffer)
    }
}

fn decode(raw: &[u8], dtype: Dtype) -> Result<NpyData, NpyError> {
    let chunks = raw.chunks_exact(dtype.size);
    Ok(match (dtype.family, dtype.size) {
        (b'f', 4) => NpyData::Float(
            chunks
                .map(|c| f64::from(f32::from_bits(element(c, dtype.little) as u32)))
                .collect(),
        ),
        (b'f', _) => NpyData::Float(
            chunks
                .map(|c| f64::from_bits(element(c, dtype.little)))
                .collect(),
        ),
        (b'i', size) => {
            let shift = 64 - 8 * size as u32;
            // Sign-extend by shifting the value to the top and back.
            NpyData::Int(
                chunks
                    .map(|c| (element(c, dtype.little) << shift).cast_signed() >> shift)
                    .collect(),
            )
        }
        _ => NpyData::Int(
            chunks
                .enumerate()
                .map(|(index, c)| {
                    let value = element(c, dtype.little);
                    i64::try_from(value).map_err(|_| NpyError::Overflow { value, index })
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Reorders a Fortran-ordered (column-major) array into C order.
fn fortran_to_c<T: Copy>(values: &[T], shape: &[usize]) -> Vec<T> {
    let total = values.len();
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0_usize; shape.len()];
    for _ in 0..total {
        // Offset of the C-order multi-index in Fortran order: first axis varies fastest.
        let mut offset = 0;
        let mut stride = 1;
        for (axis, &extent) in shape.iter().enumerate() {
            offset += index[axis] * stride;
            stride *= extent;
        }
        out.push(values[offset]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// Parses one `.npy` file.
///
/// # Errors
/// [`NpyError`] naming what is wrong: magic, header, dtype, length or an oversized `uint64`.
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    let rest = bytes.strip_prefix(b"\x93NUMPY").ok_or(NpyError::Magic)?;
    let (&major, rest) = rest
        .split_first()
        .ok_or_else(|| header_error("truncated version"))?;
    let rest = rest
        .get(1..)
        .ok_or_else(|| header_error("truncated version"))?;
    let (length, rest) = match major {
        1 => {
            let length = rest
                .get(..2)
                .ok_or_else(|| header_error("truncated header length"))?;
            (
                usize::from(u16::from_le_bytes([length[0], length[1]])),
                &rest[2..],
            )
        }
        2 | 3 => {
            let length = rest
                .get(..4)
                .ok_or_else(|| header_error("truncated header length"))?;
            let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]);
            (length as usize, &rest[4..])
        }
        other => return Err(header_error(format!("unknown format version {other}"))),
    };
    let header = rest
        .get(..length)
        .ok_or_else(|| header_error("the header is cut off"))?;
    let header = std::str::from_utf8(header).map_err(|_| header_error("the header is not text"))?;
    let dtype = parse_descr(header_value(header, "descr")?)?;
    let fortran = match header_value(header, "fortran_order")? {
        "True" => true,
        "False" => false,
        other => return Err(header_error(format!("fortran_order is `{other}`"))),
    };
    let shape = parse_shape(header_value(header, "shape")?)?;
    let raw = &rest[length..];
    let expected = shape
        .iter()
        .try_fold(dtype.size, |acc, &extent| acc.checked_mul(extent))
        .ok_or_else(|| header_error("the shape is too large"))?;
    if raw.len() != expected {
        return Err(NpyError::Length {
            expected,
            found: raw.len(),
        });
    }
    let mut data = decode(raw, dtype)?;
    if fortran && shape.len() > 1 {
        data = match data {
            NpyData::Int(values) => NpyData::Int(fortran_to_c(&values, &shape)),
            NpyData::Float(values) => NpyData::Float(fortran_to_c(&values, &shape)),
        };
    }
    Ok(NpyArray { shape, data })
}

fn zip_error(reason: impl Into<String>) -> NpyError {
    NpyError::Zip {
        reason: reason.into(),
    }
}

fn read_u16(bytes: &[u8], at: usize) -> Result<u16, NpyError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| zip_error("truncated record"))
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, NpyError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| zip_error("truncated record"))
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64, NpyError> {
    let low = read_u32(bytes, at)?;
    let high = read_u32(bytes, at + 4)?;
    Ok(u64::from(low) | (u64::from(high) << 32))
}

fn to_usize(value: u64) -> Result<usize, NpyError> {
    usize::try_from(value).map_err(|_| zip_error("an offset does not fit in memory"))
}

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// One member of the central directory.
struct ZipEntry {
    name: String,
    method: u16,
    crc: u32,
    compressed: usize,
    uncompressed: usize,
    local_offset: usize,
}

/// Sizes and offset from the ZIP64 extra field, for the fields the record marks as 0xFFFFFFFF.
fn zip64_extra(extra: &[u8], entry: &mut ZipEntry, masked: [bool; 3]) -> Result<(), NpyError> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = read_u16(extra, at)?;
        let size = usize::from(read_u16(extra, at + 2)?);
        if id == 1 {
            let mut field = at + 4;
            for (masked, target) in masked.into_iter().zip([
                &mut entry.uncompressed,
                &mut entry.compressed,
                &mut entry.local_offset,
            ]) {
                if masked {
                    *target = to_usize(read_u64(extra, field)?)?;
                    field += 8;
                }
            }
            return Ok(());
        }
        at += 4 + size;
    }
    Err(zip_error("a ZIP64 size is missing its extra field"))
}

fn central_directory(bytes: &[u8]) -> Result<Vec<ZipEntry>, NpyError> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let search_from = bytes.len().saturating_sub(22 + usize::from(u16::MAX));
    let eocd = bytes[search_from..]
        .windows(4)
        .rposition(|w| w == EOCD)
        .map(|p| p + search_from)
        .ok_or_else(|| zip_error("no end-of-central-directory record (not a zip file)"))?;
    let mut count = u64::from(read_u16(bytes, eocd + 10)?);
    let mut offset = u64::from(read_u32(bytes, eocd + 16)?);
    if count == 0xFFFF || offset == 0xFFFF_FFFF {
        // ZIP64: the locator sits just before the end record and points at the ZIP64 end record.
        let locator = eocd
            .checked_sub(20)
            .ok_or_else(|| zip_error("ZIP64 locator missing"))?;
        if bytes.get(locator..locator + 4) != Some(b"PK\x06\x07") {
            return Err(zip_error("ZIP64 locator missing"));
        }
        let record = to_usize(read_u64(bytes, locator + 8)?)?;
        if bytes.get(record..record + 4) != Some(b"PK\x06\x06") {
            return Err(zip_error("ZIP64 end record missing"));
        }
        count = read_u64(bytes, record + 32)?;
        offset = read_u64(bytes, record + 48)?;
    }
    let mut at = to_usize(offset)?;
    let mut entries = Vec::new();
    for _ in 0..count {
        if bytes.get(at..at + 4) != Some(b"PK\x01\x02") {
            return Err(zip_error("broken central directory"));
        }
        let name_len = usize::from(read_u16(bytes, at + 28)?);
        let extra_len = usize::from(read_u16(bytes, at + 30)?);
        let comment_len = usize::from(read_u16(bytes, at + 32)?);
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| zip_error("truncated file name"))?;
        let compressed = read_u32(bytes, at + 20)?;
        let uncompressed = read_u32(bytes, at + 24)?;
        let local_offset = read_u32(bytes, at + 42)?;
        let mut entry = ZipEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            method: read_u16(bytes, at + 10)?,
            crc: read_u32(bytes, at + 16)?,
            compressed: compressed as usize,
            uncompressed: uncompressed as usize,
            local_offset: local_offset as usize,
        };
        let masked = [uncompressed, compressed, local_offset].map(|v| v == 0xFFFF_FFFF);
        if masked.iter().any(|&m| m) {
            let extra_start = at + 46 + name_len;
            let extra = bytes
                .get(extra_start..extra_start + extra_len)
                .ok_or_else(|| zip_error("truncated extra field"))?;
            zip64_extra(extra, &mut entry, masked)?;
        }
        entries.push(entry);
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

fn member_bytes(bytes: &[u8], entry: &ZipEntry) -> Result<Vec<u8>, NpyError> {
    let at = entry.local_offset;
    if bytes.get(at..at + 4) != Some(b"PK\x03\x04") {
        return Err(zip_error(format!("no local header for `{}`", entry.name)));
    }
    let start =
        at + 30 + usize::from(read_u16(bytes, at + 26)?) + usize::from(read_u16(bytes, at + 28)?);
    let data = bytes
        .get(start..start + entry.compressed)
        .ok_or_else(|| zip_error(format!("`{}` is cut off", entry.name)))?;
    let data = match entry.method {
        0 => data.to_vec(),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, entry.uncompressed)
            .map_err(|e| zip_error(format!("`{}` does not inflate: {e}", entry.name)))?,
        other => {
            return Err(zip_error(format!(
                "`{}` uses compression method {other}; expected stored (0) or deflate (8)",
                entry.name
            )));
        }
    };
    if data.len() != entry.uncompressed || crc32(&data) != entry.crc {
        return Err(zip_error(format!(
            "`{}` is corrupt (size or CRC mismatch)",
            entry.name
        )));
    }
    Ok(data)
}

/// Parses an `.npz` archive (as written by `numpy.savez` or `numpy.savez_compressed`) into its
/// arrays, by name without the `.npy` suffix, in archive order.
///
/// # Errors
/// [`NpyError::Zip`] for a malformed archive, [`NpyError::Entry`] naming a malformed member.
pub fn parse_npz(bytes: &[u8]) -> Result<Vec<(String, NpyArray)>, NpyError> {
    central_directory(bytes)?
        .into_iter()
        .filter(|entry| !entry.name.ends_with('/'))
        .map(|entry| {
            let name = entry
                .name
                .strip_suffix(".npy")
                .unwrap_or(&entry.name)
                .to_owned();
            let array =
                parse_npy(&member_bytes(bytes, &entry)?).map_err(|error| NpyError::Entry {
                    name: name.clone(),
                    error: Box::new(error),
                })?;
            Ok((name, array))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn reads_signed_unsigned_and_big_endian_integers() {
        let array = parse_npy(&npy("<i2", false, "(3,)", &[1, 0, 0xff, 0xff, 0x00, 0x80])).unwrap();
        assert_eq!(array.shape, vec![3]);
        assert_eq!(array.data, NpyData::Int(vec![1, -1, -32768]));
        let array = parse_npy(&npy(">u2", false, "(2,)", &[1, 0, 0, 2])).unwrap();
        assert_eq!(array.data, NpyData::Int(vec![256, 2]));
        let array = parse_npy(&npy("|b1", false, "(2,)", &[1, 0])).unwrap();
        assert_eq!(array.data, NpyData::Int(vec![1, 0]));
    }

    #[test]
    fn reads_floats_and_fortran_order() {
        let data: Vec<u8> = [1.0_f64, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        // Column-major [[1, 3, 5], [2, 4, 6]].
        let array = parse_npy(&npy("<f8", true, "(2, 3)", &data)).unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(
            array.data,
            NpyData::Float(vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0])
        );
        let array = parse_npy(&npy("<f4", false, "()", &0.5_f32.to_le_bytes())).unwrap();
        assert!(array.shape.is_empty());
        assert_eq!(array.data, NpyData::Float(vec![0.5]));
    }

    #[test]
    fn bad_arrays_are_named() {
        assert_eq!(parse_npy(b"PK\x03\x04"), Err(NpyError::Magic));
        assert_eq!(
            parse_npy(&npy("<U3", false, "(1,)", &[0; 12]))
                .unwrap_err()
                .to_string(),
            "unsupported dtype `<U3`: expected bool, int8..int64, uint8..uint64, float32 or float64"
        );
        assert_eq!(
            parse_npy(&npy("<i4", false, "(3,)", &[0; 8])),
            Err(NpyError::Length {
                expected: 12,
                found: 8
            })
        );
        assert!(matches!(
            parse_npy(&npy("<u8", false, "(1,)", &[0xff; 8])),
            Err(NpyError::Overflow { index: 0, .. })
        ));
        assert!(matches!(parse_npz(b"not a zip"), Err(NpyError::Zip { .. })));
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
