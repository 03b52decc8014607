//! Reading a `.gz` file (RFC 1952) from bytes: header, deflate stream, CRC-32 and length checked.

use thiserror::Error;

/// Why bytes are not a valid gzip file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a valid gzip file: {reason}")]
pub struct GzipError {
    /// What is wrong.
    pub reason: &'static str,
}

fn error(reason: &'static str) -> GzipError {
    GzipError { reason }
}

/// The decompressed contents of a single-member gzip file.
///
/// # Errors
/// [`GzipError`] for a wrong signature, an unsupported method, a truncated file, a corrupt
/// stream, or a CRC-32 or length that does not match.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, GzipError> {
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    const FHCRC: u8 = 2;
    if bytes.len() < 18 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Err(error("the gzip signature is missing"));
    }
    if bytes[2] != 8 {
        return Err(error("only the deflate method is supported"));
    }
    let flags = bytes[3];
    let mut at = 10;
    let truncated = || error("the header is truncated");
    if flags & FEXTRA != 0 {
        let length = bytes.get(at..at + 2).ok_or_else(truncated)?;
        at += 2 + usize::from(u16::from_le_bytes([length[0], length[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = bytes
                .get(at..)
                .and_then(|rest| rest.iter().position(|&b| b == 0))
                .ok_or_else(truncated)?;
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let body = bytes
        .get(at..bytes.len().saturating_sub(8))
        .ok_or_else(truncated)?;
    let trailer = &bytes[bytes.len() - 8..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let data = miniz_oxide::inflate::decompress_to_vec(body)
        .map_err(|_| error("the deflate stream is corrupt"))?;
    if crate::npy::crc32(&data) != crc || data.len() as u32 != size {
        return Err(error("the CRC-32 or length does not match the contents"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf 'hello gzip\n' | gzip -9n | xxd -i`.
    const HELLO: [u8; 31] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0x57, 0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x39, 0x7c, 0x63, 0x56, 0x0b, 0x00, 0x00,
        0x00,
    ];

    #[test]
    fn reads_a_gzip_file() {
        assert_eq!(gunzip(&HELLO).unwrap(), b"hello gzip\n");
    }

    #[test]
    fn refuses_corruption() {
        let mut bad = HELLO;
        bad[25] ^= 1;
        assert!(gunzip(&bad).unwrap_err().reason.contains("CRC-32"));
        assert!(gunzip(b"plain text, not gzip").is_err());
        assert!(gunzip(&HELLO[..12]).is_err());
    }
}
