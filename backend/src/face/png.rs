//! The check a PNG gets before `image` decodes it: its palette chunks are well formed. `png`
//! 0.18.1 (the newest) slices a `PLTE` chunk three bytes at a time without checking that its
//! length is a multiple of three, and a `tRNS` chunk with more entries than the palette, so
//! such a file panicked the decoder (found by `fuzz/targets/image.rs`). The PNG specification
//! (§11.2.3, §11.3.2.1) requires both.

/// The eight bytes every PNG starts with.
const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// Chunk length and type before the data; the CRC after it.
const CHUNK_HEADER: usize = 8;
const CRC: usize = 4;
/// The `IHDR` colour type of palette images.
const INDEXED: u8 = 3;

/// Checks that `PLTE` holds 1 to 256 whole RGB entries and that `tRNS` of a palette image has
/// at most as many entries as the palette; `bytes` that are not a PNG pass unchecked, and so
/// does what follows a chunk that overruns the file (the decoder reports the truncation).
///
/// # Errors
/// What is wrong, naming the chunk and its byte offset.
pub fn check_palette(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(SIGNATURE) {
        return Ok(());
    }
    let mut colour_type = None;
    let mut entries = None;
    let mut at = SIGNATURE.len();
    // Each step advances by at least a chunk header and CRC, so this ends within len / 12 steps.
    while let Some(header) = bytes.get(at..at + CHUNK_HEADER) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(data) = bytes.get(at + CHUNK_HEADER..at + CHUNK_HEADER + length) else {
            break;
        };
        match &header[4..8] {
            b"IHDR" => colour_type = data.get(9).copied(),
            b"PLTE" => {
                if length == 0 || !length.is_multiple_of(3) || length > 3 * 256 {
                    return Err(format!(
                        "its PLTE chunk at byte {at} holds {length} bytes: expected 1 to 256 RGB entries of 3 bytes (a corrupt PNG)"
                    ));
                }
                entries = Some(length / 3);
            }
            b"tRNS" if colour_type == Some(INDEXED) => {
                if let Some(entries) = entries.filter(|&entries| length > entries) {
                    return Err(format!(
                        "its tRNS chunk at byte {at} holds {length} alpha values for a palette of {entries} colours (a corrupt PNG)"
                    ));
                }
            }
            _ => {}
        }
        at += CHUNK_HEADER + length + CRC;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        for (kind, data) in chunks {
            out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
            out.extend_from_slice(*kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&[0; CRC]);
        }
        out
    }

    const IHDR_INDEXED: [u8; 13] = [0, 0, 0, 1, 0, 0, 0, 1, 8, INDEXED, 0, 0, 0];

    #[test]
    fn whole_palettes_and_short_transparency_pass() {
        let bytes = png(&[
            (b"IHDR", &IHDR_INDEXED),
            (b"PLTE", &[1, 2, 3, 4, 5, 6]),
            (b"tRNS", &[7]),
        ]);
        assert_eq!(check_palette(&bytes), Ok(()));
    }

    #[test]
    fn a_palette_of_partial_entries_is_named() {
        let bytes = png(&[(b"IHDR", &IHDR_INDEXED), (b"PLTE", &[1, 2, 3, 4])]);
        let error = check_palette(&bytes).unwrap_err();
        assert!(
            error.contains("PLTE chunk at byte 33 holds 4 bytes"),
            "{error}"
        );
    }

    #[test]
    fn more_alpha_values_than_colours_are_named() {
        let bytes = png(&[
            (b"IHDR", &IHDR_INDEXED),
            (b"PLTE", &[1, 2, 3]),
            (b"tRNS", &[1, 2]),
        ]);
        let error = check_palette(&bytes).unwrap_err();
        assert!(
            error.contains("tRNS chunk at byte 48 holds 2 alpha values for a palette of 1 colours"),
            "{error}"
        );
    }

    #[test]
    fn other_formats_and_truncated_files_pass_unchecked() {
        assert_eq!(check_palette(b"RIFF\0\0\0\0WEBP"), Ok(()));
        assert_eq!(check_palette(b""), Ok(()));
        let mut cut = png(&[(b"IHDR", &IHDR_INDEXED), (b"PLTE", &[1, 2])]);
        cut.truncate(cut.len() - 6);
        assert_eq!(check_palette(&cut), Ok(()));
    }
}
