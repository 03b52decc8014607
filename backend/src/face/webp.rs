//! The one check a WebP gets before `image` decodes it: every top-level RIFF chunk fits in the
//! file. `image-webp` 0.2 records a chunk's declared size as is and allocates that much when it
//! reads the chunk (the EXIF chunk, for the orientation), outside the `image` crate's limits:
//! a 160-byte WebP declaring a 3.8 GB EXIF chunk asked for 3.8 GB (found by
//! `fuzz/targets/image.rs`). With every chunk inside the file, no read exceeds the file's size.

/// RIFF header: `RIFF`, the size, `WEBP`.
const HEADER: usize = 12;
/// Chunk header: the four-character code and the size.
const CHUNK_HEADER: usize = 8;

/// Checks that each chunk after the RIFF header declares no more bytes than remain in `bytes`;
/// `bytes` that are not a RIFF WebP pass unchecked (another decoder reads them).
///
/// # Errors
/// What is wrong, naming the chunk and its byte offset.
pub fn check_chunks(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < HEADER || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Ok(());
    }
    let mut at = HEADER;
    // Each step advances by at least a chunk header, so this ends within len / 8 steps.
    while let Some(header) = bytes.get(at..at + CHUNK_HEADER) {
        let kind = String::from_utf8_lossy(&header[..4]);
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let left = bytes.len() - at - CHUNK_HEADER;
        if size > left {
            return Err(format!(
                "its `{kind}` chunk at byte {at} declares {size} bytes but only {left} follow (a truncated or corrupt WebP)"
            ));
        }
        at += CHUNK_HEADER + size + size % 2;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webp(chunks: &[(&[u8; 4], u32, &[u8])]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
        for (kind, size, data) in chunks {
            out.extend_from_slice(*kind);
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn chunks_inside_the_file_pass_and_odd_sizes_are_padded() {
        let bytes = webp(&[(b"VP8X", 3, &[1, 2, 3, 0]), (b"EXIF", 2, &[9, 9])]);
        assert_eq!(check_chunks(&bytes), Ok(()));
    }

    #[test]
    fn a_chunk_declaring_more_than_the_file_holds_is_named() {
        let bytes = webp(&[(b"VP8X", 2, &[0, 0]), (b"EXIF", 3_808_428_058, &[1, 2, 3])]);
        let error = check_chunks(&bytes).unwrap_err();
        assert!(
            error.contains("`EXIF` chunk at byte 22 declares 3808428058 bytes but only 3 follow"),
            "{error}"
        );
    }

    #[test]
    fn other_formats_pass_unchecked() {
        assert_eq!(check_chunks(b"\x89PNG\r\n\x1a\n"), Ok(()));
        assert_eq!(check_chunks(b""), Ok(()));
    }
}
