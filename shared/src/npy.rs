//! Reading NumPy arrays: `.npy` files and `.npz` archives (stored or deflated, read with the
//! `zip` crate), from bytes; and the header of a `.npy` file to write, so that a writer can
//! stream the data after it.
//!
//! Pure parsing, so the browser and the CLI read the same files the same way. Integer and
//! boolean arrays become `i64`, floating-point arrays `f64`; Fortran-ordered arrays are
//! returned in C order.

use thiserror::Error;

/// How many bytes [`parse_npz`] inflates at most (all members together), and how large one
/// decoded array may be (8 bytes an element, as `i64` or `f64`): 512 MiB, above the largest pool
/// [`crate::ensemble::Limits::default`] accepts (50 million probabilities, 400 MB) yet far
/// below what a deflate bomb (1,000:1 and more) or an `int8` array widened eightfold would take.
pub const MAX_DECOMPRESSED_BYTES: u64 = 512 << 20;

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
    /// The decoded array would be larger than the limit.
    #[error(
        "the array has {elements} elements ({bytes} bytes decoded), above the limit of {limit} bytes (raise it with --max-decompressed-bytes)"
    )]
    TooLarge {
        /// Elements the shape declares.
        elements: u64,
        /// Their decoded size, 8 bytes each.
        bytes: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Inflating the `.npz` archive would pass the limit on decompressed bytes.
    #[error(
        "malformed .npz archive: `{member}` inflates past {limit} bytes, the limit on an archive's decompressed size (raise it with --max-decompressed-bytes)"
    )]
    Decompressed {
        /// The member being inflated when the limit was reached.
        member: String,
        /// The limit, in bytes, for all members together.
        limit: u64,
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
    // ASCII only, so slicing at byte 2 cannot split a character.
    let bytes = descr.as_bytes();
    if bytes.len() < 3 || !descr.is_ascii() {
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

/// Parses one `.npy` file whose decoded array is at most [`MAX_DECOMPRESSED_BYTES`].
///
/// # Errors
/// As [`parse_npy_with_limit`].
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    parse_npy_with_limit(bytes, MAX_DECOMPRESSED_BYTES)
}

/// What an `.npy` header declares, and the bytes after it.
struct Header<'a> {
    dtype: Dtype,
    fortran: bool,
    shape: Vec<usize>,
    raw: &'a [u8],
}

/// The reason of a header that is longer than the bytes after it.
const CUT_OFF: &str = "the header is cut off";

/// Reads the magic, version and header dictionary; the data is not looked at.
fn parse_header(bytes: &[u8]) -> Result<Header<'_>, NpyError> {
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
    let header = rest.get(..length).ok_or_else(|| header_error(CUT_OFF))?;
    let header = std::str::from_utf8(header).map_err(|_| header_error("the header is not text"))?;
    let dtype = parse_descr(header_value(header, "descr")?)?;
    let fortran = match header_value(header, "fortran_order")? {
        "True" => true,
        "False" => false,
        other => return Err(header_error(format!("fortran_order is `{other}`"))),
    };
    let shape = parse_shape(header_value(header, "shape")?)?;
    Ok(Header {
        dtype,
        fortran,
        shape,
        raw: &rest[length..],
    })
}

/// Parses one `.npy` file whose decoded array (8 bytes an element) is at most `max_bytes`.
/// The shape is checked against the data and the limit before anything is allocated.
///
/// # Errors
/// [`NpyError`] naming what is wrong: magic, header, dtype, length, size or an oversized
/// `uint64`.
pub fn parse_npy_with_limit(bytes: &[u8], max_bytes: u64) -> Result<NpyArray, NpyError> {
    let Header {
        dtype,
        fortran,
        shape,
        raw,
    } = parse_header(bytes)?;
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
    let elements = (expected / dtype.size) as u64;
    let decoded = elements.saturating_mul(8);
    if decoded > max_bytes {
        return Err(NpyError::TooLarge {
            elements,
            bytes: decoded,
            limit: max_bytes,
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

/// Inflates one member, refusing to produce more than `budget` bytes whatever size the archive
/// declares. A member declaring more is refused before it is inflated; otherwise the buffer is
/// sized by the declaration and grows (for a lying header) in exact steps that never pass
/// `budget + 1` bytes, so a deflate bomb cannot make it allocate more than the limit.
fn member_bytes(
    file: &mut zip::read::ZipFile<'_, std::io::Cursor<&[u8]>>,
    name: &str,
    budget: u64,
    limit: u64,
) -> Result<Vec<u8>, NpyError> {
    use std::io::Read as _;
    let over = || NpyError::Decompressed {
        member: name.to_owned(),
        limit,
    };
    if file.size() > budget {
        return Err(over());
    }
    let inflate_error = |e: std::io::Error| zip_error(format!("`{name}` does not inflate: {e}"));
    let mut data: Vec<u8> = Vec::new();
    // `size()` is at most `budget` here, which the caller keeps within `usize`.
    data.try_reserve_exact(file.size() as usize)
        .map_err(|e| zip_error(format!("`{name}`: {e}")))?;
    let mut chunk = vec![0_u8; 64 * 1024];
    loop {
        let read = file.read(&mut chunk).map_err(inflate_error)?;
        if read == 0 {
            return Ok(data);
        }
        if (data.len() + read) as u64 > budget {
            return Err(over());
        }
        if data.capacity() - data.len() < read {
            // Doubling, as `read_to_end` would, but capped at the budget.
            let room = usize::try_from(budget).unwrap_or(usize::MAX) - data.len();
            let grow = data.len().max(read).min(room);
            data.try_reserve_exact(grow)
                .map_err(|e| zip_error(format!("`{name}`: {e}")))?;
        }
        data.extend_from_slice(&chunk[..read]);
    }
}

/// Parses an `.npz` archive (as written by `numpy.savez` or `numpy.savez_compressed`) into its
/// arrays, by name without the `.npy` suffix, in archive order, inflating at most
/// [`MAX_DECOMPRESSED_BYTES`] in all.
///
/// # Errors
/// As [`parse_npz_with_limit`].
pub fn parse_npz(bytes: &[u8]) -> Result<Vec<(String, NpyArray)>, NpyError> {
    parse_npz_with_limit(bytes, MAX_DECOMPRESSED_BYTES)
}

/// [`parse_npz`] inflating at most `max_decompressed` bytes, all members together, each decoded
/// array at most as large.
///
/// # Errors
/// [`NpyError::Zip`] for a malformed archive (CRC and sizes are checked),
/// [`NpyError::Decompressed`] naming the member that crosses the limit, [`NpyError::Entry`]
/// naming a malformed member.
pub fn parse_npz_with_limit(
    bytes: &[u8],
    max_decompressed: u64,
) -> Result<Vec<(String, NpyArray)>, NpyError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| zip_error(format!("{e} (not a zip file?)")))?;
    let mut arrays = Vec::new();
    let mut inflated = 0_u64;
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|e| zip_error(format!("member #{index}: {e}")))?;
        if file.is_dir() {
            continue;
        }
        let member = file
            .name()
            .map_err(|e| zip_error(format!("member #{index}: {e}")))?
            .into_owned();
        let data = member_bytes(
            &mut file,
            &member,
            max_decompressed - inflated,
            max_decompressed,
        )?;
        inflated += data.len() as u64;
        let name = member.strip_suffix(".npy").unwrap_or(&member).to_owned();
        let array =
            parse_npy_with_limit(&data, max_decompressed).map_err(|error| NpyError::Entry {
                name: name.clone(),
                error: Box::new(error),
            })?;
        arrays.push((name, array));
    }
    Ok(arrays)
}

/// How many bytes of each member [`npz_shapes`] inflates: the magic, version and length (10
/// or 12 bytes) and a header of up to 64 KiB (`numpy` writes ~128 bytes and refuses to read
/// more than 10,000 by default).
const HEADER_PREFIX: u64 = (64 << 10) + 12;

/// The shape of each array in an `.npz` archive, by name without `.npy`, in archive order, read
/// from the first bytes of each member alone: a reader can check the table an archive declares
/// against its limits before [`parse_npz_with_limit`] inflates and decodes anything in full.
///
/// # Errors
/// [`NpyError::Zip`] for a malformed archive, [`NpyError::Entry`] naming a member whose header
/// is malformed or longer than 64 KiB.
pub fn npz_shapes(bytes: &[u8]) -> Result<Vec<(String, Vec<usize>)>, NpyError> {
    use std::io::Read as _;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| zip_error(format!("{e} (not a zip file?)")))?;
    let mut shapes = Vec::new();
    let mut prefix = Vec::new();
    for index in 0..archive.len() {
        let file = archive
            .by_index(index)
            .map_err(|e| zip_error(format!("member #{index}: {e}")))?;
        if file.is_dir() {
            continue;
        }
        let member = file
            .name()
            .map_err(|e| zip_error(format!("member #{index}: {e}")))?
            .into_owned();
        let name = member.strip_suffix(".npy").unwrap_or(&member).to_owned();
        prefix.clear();
        file.take(HEADER_PREFIX)
            .read_to_end(&mut prefix)
            .map_err(|e| zip_error(format!("`{member}` does not inflate: {e}")))?;
        match parse_header(&prefix) {
            Ok(header) => shapes.push((name, header.shape)),
            Err(error) => {
                let error = if prefix.len() as u64 == HEADER_PREFIX
                    && matches!(&error, NpyError::Header { reason } if reason == CUT_OFF)
                {
                    header_error("the header is longer than 64 KiB")
                } else {
                    error
                };
                return Err(NpyError::Entry {
                    name,
                    error: Box::new(error),
                });
            }
        }
    }
    Ok(shapes)
}

/// The element types [`npy_header`] describes, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// `uint8` (`|u1`: byte order does not apply).
    U8,
    /// `float32` (`<f4`).
    F32,
}

/// The header of a C-ordered `.npy` file (format 1.0) of `shape` and `dtype`: the data, as
/// little-endian values in row-major order, follows it directly. The header is padded to a
/// multiple of 64 bytes, as NumPy writes it. `None` when the shape has more dimensions than a
/// format-1.0 header can describe (its length must fit in 16 bits).
pub fn npy_header(dtype: NpyDtype, shape: &[usize]) -> Option<Vec<u8>> {
    let descr = match dtype {
        NpyDtype::U8 => "|u1",
        NpyDtype::F32 => "<f4",
    };
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let length = u16::try_from(header.len()).ok()?;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    Some(bytes)
}

/// Hand-made `.npy` files and `.npz` archives for the tests of this reader and of the pool's.
#[cfg(test)]
pub(crate) mod fixtures {
    /// An `.npy` file (format 1.0) with this header and data.
    pub(crate) fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
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

    /// A deflated archive of these members.
    pub(crate) fn npz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write as _;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            writer.start_file(*name, options).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{npy, npz};
    use super::*;

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
    fn a_non_ascii_dtype_is_refused_not_a_panic() {
        // `descr[2..]` would fall inside the two-byte `é`.
        for descr in ["<\u{e9}8", "<i\u{e9}", "\u{e9}i8"] {
            assert!(matches!(
                parse_npy(&npy(descr, false, "(1,)", &[0; 8])),
                Err(NpyError::Dtype { .. })
            ));
        }
    }

    #[test]
    fn an_array_above_the_limit_is_refused_before_decoding() {
        let error = parse_npy_with_limit(&npy("|u1", false, "(2, 8)", &[0; 16]), 100).unwrap_err();
        assert_eq!(
            error,
            NpyError::TooLarge {
                elements: 16,
                bytes: 128,
                limit: 100
            }
        );
        assert!(error.to_string().contains("--max-decompressed-bytes"));
        assert!(matches!(
            parse_npy(&npy("<i8", false, "(4611686018427387904, 4)", &[])),
            Err(NpyError::Header { .. })
        ));
    }

    #[test]
    fn inflation_stops_at_the_limit_naming_the_member() {
        let small = npy("<i8", false, "(2,)", &[0; 16]);
        let large = npy("|u1", false, "(1000000,)", &vec![0; 1_000_000]);
        let archive = npz(&[("labels.npy", small.clone()), ("bomb.npy", large)]);
        assert!(archive.len() < 10_000, "{}", archive.len());
        let limit = 2 * small.len() as u64;
        let error = parse_npz_with_limit(&archive, limit).unwrap_err();
        assert_eq!(
            error,
            NpyError::Decompressed {
                member: "bomb.npy".into(),
                limit
            }
        );
        assert!(
            error.to_string().contains("--max-decompressed-bytes"),
            "{error}"
        );
        let arrays = parse_npz(&npz(&[("labels.npy", small)])).unwrap();
        assert_eq!(arrays[0].0, "labels");
    }

    #[test]
    fn npz_shapes_reads_headers_without_inflating_the_data() {
        // The labels' header declares ten million elements; the data is cut short, which only a
        // full read would notice.
        let archive = npz(&[
            ("labels.npy", npy("<i8", false, "(10000000,)", &[0; 8])),
            ("predictions.npy", npy("|u1", true, "(3, 4)", &[0; 12])),
        ]);
        assert_eq!(
            npz_shapes(&archive).unwrap(),
            [
                ("labels".to_owned(), vec![10_000_000]),
                ("predictions".to_owned(), vec![3, 4])
            ]
        );
        assert!(matches!(
            parse_npz(&archive),
            Err(NpyError::Entry { error, .. }) if matches!(*error, NpyError::Length { .. })
        ));
    }

    #[test]
    fn npz_shapes_refuses_a_header_over_64_kib_naming_the_member() {
        let mut member = b"\x93NUMPY\x02\x00".to_vec();
        member.extend_from_slice(&(1_u32 << 20).to_le_bytes());
        member.resize(member.len() + (1 << 20), b' ');
        let error = npz_shapes(&npz(&[("labels.npy", member)])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "array `labels` in the .npz archive: malformed .npy header: the header is longer than 64 KiB"
        );
    }

    #[test]
    fn written_headers_read_back_with_their_data() {
        let mut bytes = npy_header(NpyDtype::U8, &[2, 3]).unwrap();
        assert_eq!(bytes.len() % 64, 0);
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 255]);
        let array = parse_npy(&bytes).unwrap();
        assert_eq!(array.shape, [2, 3]);
        assert_eq!(array.data, NpyData::Int(vec![1, 2, 3, 4, 5, 255]));

        let mut bytes = npy_header(NpyDtype::F32, &[2]).unwrap();
        for v in [0.5_f32, -2.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let array = parse_npy(&bytes).unwrap();
        assert_eq!(array.shape, [2]);
        assert_eq!(array.data, NpyData::Float(vec![0.5, -2.0]));

        assert!(npy_header(NpyDtype::U8, &vec![1; 30_000]).is_none());
    }
}
