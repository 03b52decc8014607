//! The mask key file: a trained P3-Mask δ, what is needed to use it again, and optionally a
//! passphrase that locks it.
//!
//! The mask is the user's key. It protects photos, and whoever holds it can subtract it from
//! protected photos and so take the protection off again: a leaked mask is as good as the
//! unprotected photos. Keep the file encrypted unless it never leaves a place you trust.
//!
//! Beside δ the file records the crop convention the mask was trained for (a mask cancels only
//! where it is placed exactly as in training), the training settings, and the SHA-256 of δ,
//! which names the mask: two keys with the same hash hold the same mask.
//!
//! # Layout
//!
//! | bytes | what |
//! |---|---|
//! | 8 | the magic `FLP3MASK` |
//! | 4 | `n`, the header's length in bytes, `u32` little-endian |
//! | `n` | the header: [`MaskHeader`] as UTF-8 JSON |
//! | the rest | the payload: δ as 112 × 112 × 3 `f32` little-endian in the interleaved order of [`super`] (rows, then columns, then R, G, B), on the 0..255 scale; encrypted: that, encrypted, followed by the 16-byte tag |
//!
//! The header stays readable without the passphrase ([`read_header`]), so a program can tell
//! whether to ask for one. An encrypted file's key is Argon2id (version 1.3) of the passphrase
//! and the header's salt; its cipher is XChaCha20-Poly1305 with the header bytes, exactly as
//! stored, as associated data, so changing the header or the payload makes decryption fail. A
//! plain file's payload is checked against the header's SHA-256; its header is not protected.
//!
//! Everything here works on bytes: the caller reads and writes the file and supplies the random
//! salt and nonce, so this runs unchanged in the browser.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use super::{MASK_LEN, MASK_SIDE};

/// The first eight bytes of every key file.
pub const MAGIC: &[u8; 8] = b"FLP3MASK";
/// The header's `format`: the only one this version writes and reads.
pub const FORMAT: &str = "fuselab.p3mask/v1";
/// The mask's shape: rows, columns, channels.
pub const SHAPE: [usize; 3] = [MASK_SIDE, MASK_SIDE, 3];

/// What the written header's `created_by` says.
const CREATED_BY: &str = concat!("fuselab ", env!("CARGO_PKG_VERSION"));
/// The key derivation of encrypted files.
const KDF: &str = "argon2id";
/// The cipher of encrypted files.
const CIPHER: &str = "xchacha20poly1305";
/// Argon2id's cost for new files: 19 MiB, 2 passes, 1 lane (OWASP's recommended minimum).
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
/// The most a file may ask a reader to spend on Argon2id, so that a hostile file cannot make
/// it allocate gigabytes or hash for minutes: 256 MiB and 16 passes (about 13 times the memory
/// and 8 times the passes new files use; a few seconds), 16 lanes (the lanes are computed one
/// after another here, so they add no cost; RFC 9106 suggests at most twice the cores).
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// See [`MAX_MEMORY_KIB`].
pub const MAX_ITERATIONS: u32 = 16;
/// See [`MAX_MEMORY_KIB`].
pub const MAX_PARALLELISM: u32 = 16;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// Poly1305's tag, after the ciphertext.
const TAG_LEN: usize = 16;
/// Bytes of the plain payload.
const PAYLOAD_LEN: usize = MASK_LEN * 4;
/// How far beyond ±ε a value may lie (on the 0..255 scale): rounding, not a real excess.
const TOLERANCE: f32 = 1e-4;

/// Where a mask is placed on a face: what the mask was trained for, and what applying it must
/// reproduce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropConvention {
    /// The face detector and its weights, e.g. `mtcnn (facenet-pytorch 2.6.0)`.
    pub detector: String,
    /// Pixels added to the larger side of the face box (30).
    pub margin: u32,
    /// How the canvas is made, e.g. `square, side max(w, h) + margin, face centred, mean-colour
    /// fill`.
    pub canvas: String,
    /// The side the canvas is resized to (112).
    pub size: u32,
    /// The resampling between canvas and mask, e.g. `bilinear, half-pixel centres`.
    pub resample: String,
}

/// How an encrypted file is locked: everything but the passphrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// `argon2id` (version 1.3).
    pub kdf: String,
    /// Argon2id's memory in KiB.
    pub memory_kib: u32,
    /// Argon2id's passes over the memory.
    pub iterations: u32,
    /// Argon2id's lanes.
    pub parallelism: u32,
    /// Argon2id's salt: 16 bytes as 32 hex digits.
    pub salt: String,
    /// `xchacha20poly1305`.
    pub cipher: String,
    /// The cipher's nonce: 24 bytes as 48 hex digits.
    pub nonce: String,
}

/// The readable part of a key file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskHeader {
    /// [`FORMAT`].
    pub format: String,
    /// The program that wrote the file, e.g. `fuselab 0.1.0`.
    pub created_by: String,
    /// [`SHAPE`]: rows, columns, channels.
    pub shape: [usize; 3],
    /// The L∞ bound of the mask on the 0..255 scale: every value lies in ±`epsilon`.
    pub epsilon: f32,
    /// The perceptual budget training aimed for (mean DSSIM).
    pub tau: f32,
    /// Where the mask goes on a face.
    pub crop: CropConvention,
    /// The face models the mask was trained against.
    pub models: Vec<String>,
    /// Training's random seed.
    pub seed: u64,
    /// Training's epochs (0 when it ran for `steps`).
    pub epochs: u32,
    /// How many photos trained the mask.
    pub photos: u32,
    /// Training's steps, when it ran for a number of steps rather than `epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// SHA-256 of each training photo's file (64 lower-case hex digits each), so that checking
    /// the protection can leave out the photos the mask was trained on; empty in keys that
    /// predate it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trained_on: Vec<String>,
    /// SHA-256 of the plain payload, 64 lower-case hex digits: the mask's identity.
    pub sha256: String,
    /// How the payload is encrypted; `None` for a plain file.
    pub encryption: Option<Encryption>,
}

impl MaskHeader {
    /// A header for a newly trained mask. [`write_key`] fills in `sha256` and `encryption`.
    pub fn new(
        crop: CropConvention,
        epsilon: f32,
        tau: f32,
        models: Vec<String>,
        seed: u64,
        epochs: u32,
        photos: u32,
    ) -> Self {
        Self {
            format: FORMAT.to_owned(),
            created_by: CREATED_BY.to_owned(),
            shape: SHAPE,
            epsilon,
            tau,
            crop,
            models,
            seed,
            epochs,
            photos,
            steps: None,
            trained_on: Vec::new(),
            sha256: String::new(),
            encryption: None,
        }
    }
}

/// A mask and its header. Its `Debug` output leaves the mask's values out: they are the secret.
#[derive(Clone, PartialEq)]
pub struct MaskKey {
    /// What the file says about the mask.
    pub header: MaskHeader,
    /// δ: [`MASK_LEN`] values, interleaved rows × columns × RGB, on the 0..255 scale.
    pub delta: Vec<f32>,
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskKey")
            .field("header", &self.header)
            .field("delta", &format_args!("<{} values>", self.delta.len()))
            .finish()
    }
}

/// A passphrase and the fresh randomness that locks one file with it.
#[derive(Clone, Copy)]
pub struct Protection<'a> {
    /// The passphrase; any UTF-8, used as its bytes.
    pub passphrase: &'a str,
    /// Argon2id's salt: random, never reused.
    pub salt: [u8; SALT_LEN],
    /// The cipher's nonce: random, never reused.
    pub nonce: [u8; NONCE_LEN],
}

impl std::fmt::Debug for Protection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("passphrase", &"<hidden>")
            .field("salt", &hex(&self.salt))
            .field("nonce", &hex(&self.nonce))
            .finish()
    }
}

/// Why a key file could not be read or written.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KeyError {
    /// The bytes do not start with [`MAGIC`].
    #[error("not a fuselab mask key: the file does not start with FLP3MASK")]
    Magic,
    /// The file ends inside the magic, the header length or the header.
    #[error(
        "the mask key is truncated: its {part} needs {needed} bytes, but only {found} are left"
    )]
    Truncated {
        /// `magic`, `header length` or `header`.
        part: &'static str,
        /// Bytes the part needs.
        needed: usize,
        /// Bytes the file has left for it.
        found: usize,
    },
    /// The header is not JSON of a [`MaskHeader`].
    #[error("the mask key's header is malformed: {reason}")]
    Header {
        /// serde's message, which names the field.
        reason: String,
    },
    /// The header names a format, key derivation or cipher this version does not know.
    #[error("unsupported mask key {what} `{found}`: this version of fuselab reads `{expected}`")]
    Unsupported {
        /// `format`, `key derivation` or `cipher`.
        what: &'static str,
        /// The header's value.
        found: String,
        /// The one this version supports.
        expected: &'static str,
    },
    /// The header's shape is not [`SHAPE`].
    #[error("the mask has shape {found:?}, but a P3-Mask is {expected:?}", expected = SHAPE)]
    Shape {
        /// The header's shape.
        found: [usize; 3],
    },
    /// `epsilon` or `tau` is out of range.
    #[error("the mask key's `{field}` is {value}, but it must be {expected}")]
    Setting {
        /// `epsilon` or `tau`.
        field: &'static str,
        /// Its value.
        value: f32,
        /// What it must be.
        expected: &'static str,
    },
    /// The salt or nonce is not hex of the right length.
    #[error(
        "the mask key's `{field}` must be {bytes} bytes written as {digits} hex digits, found `{found}`",
        digits = .bytes * 2
    )]
    Hex {
        /// `salt` or `nonce`.
        field: &'static str,
        /// Bytes it must hold.
        bytes: usize,
        /// The header's value.
        found: String,
    },
    /// Argon2id's parameters are invalid or beyond what a reader spends.
    #[error("the mask key's Argon2id parameters are not usable: {reason}")]
    KdfParams {
        /// What is wrong.
        reason: String,
    },
    /// The payload is shorter or longer than the header implies.
    #[error(
        "the mask key's payload has {found} bytes, but its header implies {expected} (the file is truncated or has bytes appended)"
    )]
    PayloadLength {
        /// Bytes the payload must have.
        expected: usize,
        /// Bytes it has.
        found: usize,
    },
    /// The file is encrypted and no passphrase was given.
    #[error("the mask key is encrypted: a passphrase is needed")]
    NeedPassphrase,
    /// Authentication failed: the passphrase is wrong, or the header or payload was changed.
    #[error("wrong passphrase, or the key file was altered")]
    Decrypt,
    /// The payload's SHA-256 differs from the header's: the file is damaged.
    #[error(
        "the mask key is damaged: the SHA-256 of its mask is {actual}, but its header says {expected}"
    )]
    Digest {
        /// SHA-256 of the payload.
        actual: String,
        /// The header's `sha256`.
        expected: String,
    },
    /// The mask to write has the wrong number of values.
    #[error("the mask has {found} values, but a 112×112×3 mask has {expected}")]
    Length {
        /// [`MASK_LEN`].
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// A mask value is NaN or infinite.
    #[error("the mask value at index {index} is {value}, not a finite number")]
    NotFinite {
        /// Its position in the interleaved mask.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A mask value lies beyond ±ε.
    #[error(
        "the mask value {value} at row {row}, column {column}, channel {channel} (index {index}) is outside ±{epsilon}"
    )]
    OutOfBound {
        /// Its position in the interleaved mask.
        index: usize,
        /// Its row, `index / 336`.
        row: usize,
        /// Its column, `index / 3 % 112`.
        column: usize,
        /// Its channel, 0 (red), 1 (green) or 2 (blue).
        channel: usize,
        /// The value.
        value: f32,
        /// The header's `epsilon`.
        epsilon: f32,
    },
    /// The header is too long for its 4-byte length.
    #[error("the mask key's header would be {bytes} bytes, more than a key file can hold")]
    HeaderTooLong {
        /// The header's length.
        bytes: usize,
    },
    /// The cipher refused the payload.
    #[error("the mask could not be encrypted")]
    Encrypt,
}

/// The key file of `key`: plain, or encrypted with `protect`'s passphrase, salt and nonce.
///
/// The written header is `key.header` with `format`, `created_by`, `shape`, `sha256` and
/// `encryption` set by this function; the others are written as given. New files use Argon2id
/// with 19 MiB, 2 passes and 1 lane.
///
/// # Errors
/// A mask of the wrong length, a value that is not finite or lies beyond ±`epsilon` (with a
/// tolerance of 10⁻⁴), an `epsilon` that is not finite and positive or a `tau` that is not
/// finite and non-negative.
pub fn write_key(key: &MaskKey, protect: Option<Protection<'_>>) -> Result<Vec<u8>, KeyError> {
    check_settings(&key.header)?;
    check_delta(&key.delta, key.header.epsilon)?;
    let plain = Zeroizing::new(
        key.delta
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let mut header = key.header.clone();
    FORMAT.clone_into(&mut header.format);
    CREATED_BY.clone_into(&mut header.created_by);
    header.shape = SHAPE;
    header.sha256 = hex(&Sha256::digest(plain.as_slice()));
    header.encryption = protect.map(|p| Encryption {
        kdf: KDF.to_owned(),
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        parallelism: PARALLELISM,
        salt: hex(&p.salt),
        cipher: CIPHER.to_owned(),
        nonce: hex(&p.nonce),
    });
    let header_bytes = serde_json::to_vec_pretty(&header).map_err(|e| header_error(&e))?;
    let header_len = u32::try_from(header_bytes.len()).map_err(|_| KeyError::HeaderTooLong {
        bytes: header_bytes.len(),
    })?;
    let mut out = Vec::with_capacity(12 + header_bytes.len() + PAYLOAD_LEN + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header_bytes);
    match protect {
        None => out.extend_from_slice(&plain),
        Some(p) => {
            let params = argon2_params(MEMORY_KIB, ITERATIONS, PARALLELISM)?;
            let cipher = cipher(p.passphrase, &p.salt, params)?;
            let sealed = cipher
                .encrypt(
                    XNonce::from_slice(&p.nonce),
                    Payload {
                        msg: &plain,
                        aad: &header_bytes,
                    },
                )
                .map_err(|_| KeyError::Encrypt)?;
            out.extend_from_slice(&sealed);
        }
    }
    Ok(out)
}

/// The header of a key file, without the passphrase: enough to show what the mask is and to
/// know whether to ask for a passphrase (`encryption.is_some()`).
///
/// The file's structure is checked (magic, lengths, format, shape, encryption parameters), not
/// its integrity: until [`read_key`] succeeds, the header may have been altered.
///
/// # Errors
/// Anything wrong with the file's structure: see [`KeyError`].
pub fn read_header(bytes: &[u8]) -> Result<MaskHeader, KeyError> {
    parse(bytes).map(|file| file.header)
}

/// The mask in a key file, decrypted with `passphrase` when the file is encrypted (a
/// passphrase given for a plain file is not used).
///
/// # Errors
/// Everything [`read_header`] reports, and: [`KeyError::NeedPassphrase`] for an encrypted file
/// without a passphrase, [`KeyError::Decrypt`] for a wrong passphrase or an altered file,
/// [`KeyError::Digest`] for a plain file whose mask does not match its header, and an invalid
/// `epsilon`, `tau` or mask value.
pub fn read_key(bytes: &[u8], passphrase: Option<&str>) -> Result<MaskKey, KeyError> {
    let file = parse(bytes)?;
    let delta = match &file.lock {
        None => open_plain(file.payload, &file.header)?,
        Some(lock) => {
            let passphrase = passphrase.ok_or(KeyError::NeedPassphrase)?;
            let cipher = cipher(passphrase, &lock.salt, lock.params.clone())?;
            let plain = Zeroizing::new(
                cipher
                    .decrypt(
                        XNonce::from_slice(&lock.nonce),
                        Payload {
                            msg: file.payload,
                            aad: file.header_bytes,
                        },
                    )
                    .map_err(|_| KeyError::Decrypt)?,
            );
            open_plain(&plain, &file.header)?
        }
    };
    Ok(MaskKey {
        header: file.header,
        delta,
    })
}

/// The first eight bytes of a sealed blob ([`seal`]): a training checkpoint of an encrypted key.
pub const SEALED_MAGIC: &[u8; 8] = b"FLP3SEAL";

/// Encrypts `plain` (a training checkpoint, which holds the mask being trained) as the key file
/// encrypts a mask: [`SEALED_MAGIC`], a 4-byte little-endian length, the [`Encryption`] header
/// as JSON, then the XChaCha20-Poly1305 ciphertext and tag, with that header as associated
/// data and the key Argon2id of the passphrase with the costs new key files use.
///
/// # Errors
/// [`KeyError::Encrypt`] or [`KeyError::KdfParams`] if the cipher or KDF refuses.
pub fn seal(plain: &[u8], protect: &Protection<'_>) -> Result<Vec<u8>, KeyError> {
    let encryption = Encryption {
        kdf: KDF.to_owned(),
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        parallelism: PARALLELISM,
        salt: hex(&protect.salt),
        cipher: CIPHER.to_owned(),
        nonce: hex(&protect.nonce),
    };
    let header = serde_json::to_vec(&encryption).map_err(|e| header_error(&e))?;
    let header_len = u32::try_from(header.len()).map_err(|_| KeyError::HeaderTooLong {
        bytes: header.len(),
    })?;
    let cipher = cipher(
        protect.passphrase,
        &protect.salt,
        argon2_params(MEMORY_KIB, ITERATIONS, PARALLELISM)?,
    )?;
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&protect.nonce),
            Payload {
                msg: plain,
                aad: &header,
            },
        )
        .map_err(|_| KeyError::Encrypt)?;
    let mut out = Vec::with_capacity(12 + header.len() + sealed.len());
    out.extend_from_slice(SEALED_MAGIC);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts a [`seal`]ed blob; the plaintext is wiped when dropped. The header's Argon2id costs
/// are held to the same limits as a key file's.
///
/// # Errors
/// [`KeyError::Magic`] or [`KeyError::Truncated`] for bytes that are not a sealed blob,
/// [`KeyError::Header`] / [`KeyError::KdfParams`] / [`KeyError::Hex`] for a bad header, and
/// [`KeyError::Decrypt`] for a wrong passphrase or altered bytes.
pub fn unseal(bytes: &[u8], passphrase: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let rest = bytes
        .strip_prefix(SEALED_MAGIC.as_slice())
        .ok_or(KeyError::Magic)?;
    let (header, payload) = split_header(rest)?;
    let encryption: Encryption = serde_json::from_slice(header).map_err(|e| header_error(&e))?;
    let lock = unlock_parameters(&encryption)?;
    let cipher = cipher(passphrase, &lock.salt, lock.params)?;
    cipher
        .decrypt(
            XNonce::from_slice(&lock.nonce),
            Payload {
                msg: payload,
                aad: header,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| KeyError::Decrypt)
}

/// A key file taken apart, its structure checked.
struct KeyFile<'a> {
    header: MaskHeader,
    /// The header as stored: the cipher's associated data.
    header_bytes: &'a [u8],
    payload: &'a [u8],
    lock: Option<Lock>,
}

/// The decoded encryption parameters.
struct Lock {
    params: Params,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
}

/// Just the header's format, read before the rest so that a newer format is reported as such
/// rather than as unknown fields.
#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

/// The header (after its little-endian `u32` length) and what follows it, in a key file or a
/// sealed blob.
fn split_header(rest: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    let Some((length, rest)) = rest.split_first_chunk::<4>() else {
        return Err(KeyError::Truncated {
            part: "header length",
            needed: 4,
            found: rest.len(),
        });
    };
    let length = u32::from_le_bytes(*length) as usize;
    if rest.len() < length {
        return Err(KeyError::Truncated {
            part: "header",
            needed: length,
            found: rest.len(),
        });
    }
    Ok(rest.split_at(length))
}

fn parse(bytes: &[u8]) -> Result<KeyFile<'_>, KeyError> {
    let Some(rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err(if MAGIC.starts_with(bytes) {
            KeyError::Truncated {
                part: "magic",
                needed: MAGIC.len(),
                found: bytes.len(),
            }
        } else {
            KeyError::Magic
        });
    };
    let (header_bytes, payload) = split_header(rest)?;
    let FormatOnly { format } =
        serde_json::from_slice(header_bytes).map_err(|e| header_error(&e))?;
    if format != FORMAT {
        return Err(KeyError::Unsupported {
            what: "format",
            found: format,
            expected: FORMAT,
        });
    }
    let header: MaskHeader = serde_json::from_slice(header_bytes).map_err(|e| header_error(&e))?;
    if header.shape != SHAPE {
        return Err(KeyError::Shape {
            found: header.shape,
        });
    }
    check_settings(&header)?;
    let lock = header
        .encryption
        .as_ref()
        .map(unlock_parameters)
        .transpose()?;
    let expected = PAYLOAD_LEN + if lock.is_some() { TAG_LEN } else { 0 };
    if payload.len() != expected {
        return Err(KeyError::PayloadLength {
            expected,
            found: payload.len(),
        });
    }
    Ok(KeyFile {
        header,
        header_bytes,
        payload,
        lock,
    })
}

/// Checks and decodes a header's encryption parameters.
fn unlock_parameters(encryption: &Encryption) -> Result<Lock, KeyError> {
    if encryption.kdf != KDF {
        return Err(KeyError::Unsupported {
            what: "key derivation",
            found: encryption.kdf.clone(),
            expected: KDF,
        });
    }
    if encryption.cipher != CIPHER {
        return Err(KeyError::Unsupported {
            what: "cipher",
            found: encryption.cipher.clone(),
            expected: CIPHER,
        });
    }
    for (name, value, limit) in [
        ("memory_kib", encryption.memory_kib, MAX_MEMORY_KIB),
        ("iterations", encryption.iterations, MAX_ITERATIONS),
        ("parallelism", encryption.parallelism, MAX_PARALLELISM),
    ] {
        if value > limit {
            return Err(KeyError::KdfParams {
                reason: format!("`{name}` is {value}, more than the {limit} a reader allows"),
            });
        }
    }
    let params = argon2_params(
        encryption.memory_kib,
        encryption.iterations,
        encryption.parallelism,
    )?;
    let salt = unhex(&encryption.salt).ok_or_else(|| KeyError::Hex {
        field: "salt",
        bytes: SALT_LEN,
        found: encryption.salt.clone(),
    })?;
    let nonce = unhex(&encryption.nonce).ok_or_else(|| KeyError::Hex {
        field: "nonce",
        bytes: NONCE_LEN,
        found: encryption.nonce.clone(),
    })?;
    Ok(Lock {
        params,
        salt,
        nonce,
    })
}

fn argon2_params(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Params, KeyError> {
    Params::new(memory_kib, iterations, parallelism, Some(KEY_LEN)).map_err(|e| {
        KeyError::KdfParams {
            reason: format!(
                "{e} (memory_kib {memory_kib}, iterations {iterations}, parallelism {parallelism})"
            ),
        }
    })
}

/// The cipher keyed by Argon2id of the passphrase; the derived key is wiped afterwards.
fn cipher(passphrase: &str, salt: &[u8], params: Params) -> Result<XChaCha20Poly1305, KeyError> {
    let mut key = Zeroizing::new([0_u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|e| KeyError::KdfParams {
            reason: e.to_string(),
        })?;
    XChaCha20Poly1305::new_from_slice(key.as_slice()).map_err(|_| KeyError::KdfParams {
        reason: format!("the derived key is not {KEY_LEN} bytes"),
    })
}

/// The mask in a plain payload of [`PAYLOAD_LEN`] bytes, checked against the header.
fn open_plain(plain: &[u8], header: &MaskHeader) -> Result<Vec<f32>, KeyError> {
    let actual = hex(&Sha256::digest(plain));
    if !actual.eq_ignore_ascii_case(&header.sha256) {
        return Err(KeyError::Digest {
            actual,
            expected: header.sha256.clone(),
        });
    }
    let delta: Vec<f32> = plain
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    check_delta(&delta, header.epsilon)?;
    Ok(delta)
}

fn check_settings(header: &MaskHeader) -> Result<(), KeyError> {
    if !(header.epsilon.is_finite() && header.epsilon > 0.0) {
        return Err(KeyError::Setting {
            field: "epsilon",
            value: header.epsilon,
            expected: "a finite number above 0",
        });
    }
    if !(header.tau.is_finite() && header.tau >= 0.0) {
        return Err(KeyError::Setting {
            field: "tau",
            value: header.tau,
            expected: "a finite number of at least 0",
        });
    }
    Ok(())
}

fn check_delta(delta: &[f32], epsilon: f32) -> Result<(), KeyError> {
    if delta.len() != MASK_LEN {
        return Err(KeyError::Length {
            expected: MASK_LEN,
            found: delta.len(),
        });
    }
    for (index, &value) in delta.iter().enumerate() {
        if !value.is_finite() {
            return Err(KeyError::NotFinite { index, value });
        }
        if value.abs() > epsilon + TOLERANCE {
            return Err(KeyError::OutOfBound {
                index,
                row: index / (MASK_SIDE * 3),
                column: index / 3 % MASK_SIDE,
                channel: index % 3,
                value,
                epsilon,
            });
        }
    }
    Ok(())
}

fn header_error(e: &serde_json::Error) -> KeyError {
    KeyError::Header {
        reason: e.to_string(),
    }
}

/// Lower-case hex digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// `N` bytes from exactly `2 N` hex digits (either case); `None` otherwise.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0_u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let digit = |d: u8| char::from(d).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const PASSPHRASE: &str = "correct horse battery staple";

    fn protection() -> Protection<'static> {
        Protection {
            passphrase: PASSPHRASE,
            salt: std::array::from_fn(|i| (i * 17 + 3) as u8),
            nonce: std::array::from_fn(|i| (i * 29 + 11) as u8),
        }
    }

    /// A mask that reaches ±ε and holds values whose bits a sloppy codec would change.
    fn sample_key() -> MaskKey {
        let header = MaskHeader::new(
            CropConvention {
                detector: "mtcnn (facenet-pytorch 2.6.0)".to_owned(),
                margin: 30,
                canvas: "square, side max(w, h) + margin, face centred, mean-colour fill"
                    .to_owned(),
                size: 112,
                resample: "bilinear, half-pixel centres".to_owned(),
            },
            8.0,
            0.007,
            vec!["dlib".to_owned(), "faceres".to_owned()],
            42,
            20,
            5,
        );
        #[allow(clippy::cast_precision_loss)]
        let mut delta: Vec<f32> = (0..MASK_LEN)
            .map(|i| (i * 7919 % 1601) as f32 / 100.0 - 8.0)
            .collect();
        delta[..5].copy_from_slice(&[-8.0, 8.0, -0.0, f32::MIN_POSITIVE / 2.0, 1.0 / 3.0]);
        MaskKey { header, delta }
    }

    fn bits(delta: &[f32]) -> Vec<u32> {
        delta.iter().map(|v| v.to_bits()).collect()
    }

    /// The header bytes and the payload of a well-formed file.
    fn split(bytes: &[u8]) -> (&[u8], &[u8]) {
        let length = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        bytes[12..].split_at(length)
    }

    fn assemble(header: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
        out.extend_from_slice(header);
        out.extend_from_slice(payload);
        out
    }

    /// `bytes` with its header JSON changed by `edit`.
    fn edit_header(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let (header, payload) = split(bytes);
        let mut json: Value = serde_json::from_slice(header).unwrap();
        edit(&mut json);
        assemble(&serde_json::to_vec(&json).unwrap(), payload)
    }

    #[test]
    fn plain_keys_round_trip_bit_for_bit() {
        let key = sample_key();
        let mut messy = key.clone();
        "other".clone_into(&mut messy.header.format);
        messy.header.shape = [1, 2, 3];
        "bogus".clone_into(&mut messy.header.sha256);
        let bytes = write_key(&messy, None).unwrap();

        assert!(bytes.starts_with(b"FLP3MASK"));
        let (header_bytes, payload) = split(&bytes);
        let plain: Vec<u8> = key.delta.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(payload, plain.as_slice());
        assert!(
            std::str::from_utf8(header_bytes)
                .unwrap()
                .contains("\"fuselab.p3mask/v1\"")
        );

        let read = read_key(&bytes, None).unwrap();
        assert_eq!(bits(&read.delta), bits(&key.delta));
        let mut expected = key.header.clone();
        expected.sha256 = hex(&Sha256::digest(&plain));
        assert_eq!(read.header, expected);
        assert_eq!(read.header.sha256.len(), 64);
        assert_eq!(read_header(&bytes).unwrap(), expected);
        // A passphrase is not needed, and not used, for a plain file.
        assert_eq!(read_key(&bytes, Some("anything")).unwrap(), read);
        // Writing the read key again gives the same file.
        assert_eq!(write_key(&read, None).unwrap(), bytes);
    }

    #[test]
    fn encrypted_keys_round_trip_and_hide_the_mask() {
        let key = sample_key();
        let bytes = write_key(&key, Some(protection())).unwrap();
        let plain: Vec<u8> = key.delta.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (_, payload) = split(&bytes);
        assert_eq!(payload.len(), plain.len() + 16);
        assert!(
            payload
                .chunks(64)
                .zip(plain.chunks(64))
                .all(|(c, p)| c != p),
            "the payload shows the plain mask"
        );

        let header = read_header(&bytes).unwrap();
        assert_eq!(
            header.encryption,
            Some(Encryption {
                kdf: "argon2id".to_owned(),
                memory_kib: 19 * 1024,
                iterations: 2,
                parallelism: 1,
                salt: "031425364758697a8b9cadbecfe0f102".to_owned(),
                cipher: "xchacha20poly1305".to_owned(),
                nonce: "0b2845627f9cb9d6f3102d4a6784a1bedbf815324f6c89a6".to_owned(),
            })
        );
        assert_eq!(header.sha256, hex(&Sha256::digest(&plain)));

        let read = read_key(&bytes, Some(PASSPHRASE)).unwrap();
        assert_eq!(bits(&read.delta), bits(&key.delta));
        assert_eq!(read.header, header);
    }

    #[test]
    fn a_wrong_passphrase_is_refused() {
        let bytes = write_key(&sample_key(), Some(protection())).unwrap();
        let error = read_key(&bytes, Some("correct horse battery stapler")).unwrap_err();
        assert_eq!(error, KeyError::Decrypt);
        assert_eq!(
            error.to_string(),
            "wrong passphrase, or the key file was altered"
        );
    }

    #[test]
    fn an_encrypted_key_needs_a_passphrase() {
        let bytes = write_key(&sample_key(), Some(protection())).unwrap();
        let error = read_key(&bytes, None).unwrap_err();
        assert_eq!(error, KeyError::NeedPassphrase);
        assert!(error.to_string().contains("passphrase is needed"));
        assert!(read_header(&bytes).unwrap().encryption.is_some());
    }

    #[test]
    fn a_flipped_payload_byte_is_caught() {
        let key = sample_key();
        let mut plain = write_key(&key, None).unwrap();
        let last = plain.len() - 1;
        plain[last - 100] ^= 0x01;
        match read_key(&plain, None).unwrap_err() {
            KeyError::Digest { actual, expected } => {
                assert_eq!(expected, read_header(&plain).unwrap().sha256);
                assert_ne!(actual, expected);
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }

        let mut sealed = write_key(&key, Some(protection())).unwrap();
        let last = sealed.len() - 1;
        sealed[last - 100] ^= 0x01;
        assert_eq!(read_key(&sealed, Some(PASSPHRASE)), Err(KeyError::Decrypt));
        // The tag too.
        let mut sealed = write_key(&key, Some(protection())).unwrap();
        sealed[last] ^= 0x80;
        assert_eq!(read_key(&sealed, Some(PASSPHRASE)), Err(KeyError::Decrypt));
    }

    #[test]
    fn a_changed_header_breaks_an_encrypted_key() {
        let bytes = write_key(&sample_key(), Some(protection())).unwrap();
        let at = bytes.windows(7).position(|w| w == b"faceres").unwrap();
        let mut altered = bytes.clone();
        altered[at] ^= 0x20;
        // Still a well-formed header, naming another model…
        assert_eq!(read_header(&altered).unwrap().models[1], "Faceres");
        // …but the cipher notices.
        assert_eq!(read_key(&altered, Some(PASSPHRASE)), Err(KeyError::Decrypt));
        // Re-serialising the same header (other whitespace) is a change too.
        let reformatted = edit_header(&bytes, |_| {});
        assert_eq!(
            read_header(&reformatted).unwrap(),
            read_header(&bytes).unwrap()
        );
        assert_eq!(
            read_key(&reformatted, Some(PASSPHRASE)),
            Err(KeyError::Decrypt)
        );
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let key = sample_key();
        for bytes in [
            write_key(&key, None).unwrap(),
            write_key(&key, Some(protection())).unwrap(),
        ] {
            let header_end = 12 + split(&bytes).0.len();
            let lengths = (0..header_end + 8).chain((header_end..bytes.len()).step_by(997));
            for len in lengths.chain([bytes.len() - 16, bytes.len() - 1]) {
                let cut = &bytes[..len];
                let error = read_key(cut, Some(PASSPHRASE)).unwrap_err();
                assert_eq!(read_header(cut).unwrap_err(), error, "{len} bytes");
                match (len, &error) {
                    (
                        0..8,
                        KeyError::Truncated {
                            part: "magic",
                            needed: 8,
                            found,
                        },
                    )
                    | (
                        8..12,
                        KeyError::Truncated {
                            part: "header length",
                            needed: 4,
                            found,
                        },
                    ) => {
                        assert_eq!(*found, len % 8);
                    }
                    (
                        12..,
                        KeyError::Truncated {
                            part: "header",
                            found,
                            ..
                        },
                    ) => {
                        assert!(len < header_end);
                        assert_eq!(*found, len - 12);
                    }
                    (_, KeyError::PayloadLength { expected, found }) => {
                        assert!(len >= header_end);
                        assert_eq!(*expected, bytes.len() - header_end);
                        assert_eq!(*found, len - header_end);
                    }
                    _ => panic!("{len} bytes: {error:?}"),
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                read_key(&longer, Some(PASSPHRASE)),
                Err(KeyError::PayloadLength { .. })
            ));
        }
        let message = read_key(&[], None).unwrap_err().to_string();
        assert_eq!(
            message,
            "the mask key is truncated: its magic needs 8 bytes, but only 0 are left"
        );
    }

    #[test]
    fn files_without_the_magic_are_refused() {
        let mut bytes = write_key(&sample_key(), None).unwrap();
        bytes[7] = b'X';
        let error = read_key(&bytes, None).unwrap_err();
        assert_eq!(error, KeyError::Magic);
        assert_eq!(
            error.to_string(),
            "not a fuselab mask key: the file does not start with FLP3MASK"
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(read_header(png), Err(KeyError::Magic));
        assert_eq!(read_header(b"FLX"), Err(KeyError::Magic));
    }

    #[test]
    fn unsupported_formats_and_algorithms_are_named() {
        let plain = write_key(&sample_key(), None).unwrap();
        // A newer format is reported as such, not as the unknown field it adds.
        let newer = edit_header(&plain, |h| {
            h["format"] = "fuselab.p3mask/v2".into();
            h["watermark"] = true.into();
        });
        let error = read_key(&newer, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unsupported mask key format `fuselab.p3mask/v2`: this version of fuselab reads \
             `fuselab.p3mask/v1`"
        );

        let sealed = write_key(&sample_key(), Some(protection())).unwrap();
        let scrypt = edit_header(&sealed, |h| h["encryption"]["kdf"] = "scrypt".into());
        assert_eq!(
            read_header(&scrypt),
            Err(KeyError::Unsupported {
                what: "key derivation",
                found: "scrypt".to_owned(),
                expected: "argon2id",
            })
        );
        let aes = edit_header(&sealed, |h| {
            h["encryption"]["cipher"] = "aes-256-gcm".into();
        });
        assert_eq!(
            read_header(&aes),
            Err(KeyError::Unsupported {
                what: "cipher",
                found: "aes-256-gcm".to_owned(),
                expected: "xchacha20poly1305",
            })
        );
    }

    #[test]
    fn malformed_headers_name_what_is_wrong() {
        let plain = write_key(&sample_key(), None).unwrap();
        let header_reason = |bytes: &[u8]| match read_header(bytes) {
            Err(KeyError::Header { reason }) => reason,
            other => panic!("expected a header error, got {other:?}"),
        };
        let no_tau = edit_header(&plain, |h| {
            h.as_object_mut().unwrap().remove("tau");
        });
        assert!(header_reason(&no_tau).contains("missing field `tau`"));
        let extra = edit_header(&plain, |h| h["crop"]["rotation"] = 0.into());
        assert!(header_reason(&extra).contains("unknown field `rotation`"));
        let no_format = edit_header(&plain, |h| {
            h.as_object_mut().unwrap().remove("format");
        });
        assert!(header_reason(&no_format).contains("missing field `format`"));
        let (_, payload) = split(&plain);
        assert!(header_reason(&assemble(b"{\"format\": ", payload)).contains("EOF"));

        let four = edit_header(&plain, |h| h["shape"] = serde_json::json!([112, 112, 4]));
        assert_eq!(
            read_header(&four),
            Err(KeyError::Shape {
                found: [112, 112, 4]
            })
        );
        let negative = edit_header(&plain, |h| h["epsilon"] = (-1.0).into());
        assert!(matches!(
            read_header(&negative),
            Err(KeyError::Setting {
                field: "epsilon",
                ..
            })
        ));

        let sealed = write_key(&sample_key(), Some(protection())).unwrap();
        let short_salt = edit_header(&sealed, |h| h["encryption"]["salt"] = "00ff".into());
        assert_eq!(
            read_header(&short_salt).unwrap_err().to_string(),
            "the mask key's `salt` must be 16 bytes written as 32 hex digits, found `00ff`"
        );
        let bad_nonce = edit_header(&sealed, |h| {
            h["encryption"]["nonce"] = "zz".repeat(24).into();
        });
        assert!(matches!(
            read_header(&bad_nonce),
            Err(KeyError::Hex { field: "nonce", .. })
        ));
    }

    #[test]
    fn hostile_or_invalid_argon2_parameters_are_refused() {
        let sealed = write_key(&sample_key(), Some(protection())).unwrap();
        for (field, value, needle) in [
            ("memory_kib", u64::from(u32::MAX), "more than the 262144"),
            (
                "memory_kib",
                262_145,
                "`memory_kib` is 262145, more than the 262144",
            ),
            ("iterations", 64, "`iterations` is 64, more than the 16"),
            ("iterations", 17, "more than the 16"),
            ("parallelism", 17, "more than the 16"),
            ("iterations", 0, "iterations 0"),
            ("memory_kib", 1, "memory_kib 1"),
        ] {
            let bytes = edit_header(&sealed, |h| h["encryption"][field] = value.into());
            match read_key(&bytes, Some(PASSPHRASE)) {
                Err(KeyError::KdfParams { reason }) => {
                    assert!(reason.contains(needle), "{field} = {value}: {reason}");
                }
                other => panic!("{field} = {value}: {other:?}"),
            }
        }
        // The ceiling itself is readable (the header check does not run the KDF).
        let at_limit = edit_header(&sealed, |h| {
            h["encryption"]["memory_kib"] = MAX_MEMORY_KIB.into();
            h["encryption"]["iterations"] = MAX_ITERATIONS.into();
        });
        assert!(read_header(&at_limit).is_ok());
    }

    #[test]
    fn masks_beyond_epsilon_are_refused() {
        let key = sample_key();
        // Within the rounding tolerance: accepted.
        let mut edge = key.clone();
        edge.delta[9] = 8.000_05;
        assert!(write_key(&edge, None).is_ok());

        let mut over = key.clone();
        let index = 5 * 336 + 7 * 3 + 2;
        over.delta[index] = -8.01;
        let error = write_key(&over, None).unwrap_err();
        assert_eq!(
            error,
            KeyError::OutOfBound {
                index,
                row: 5,
                column: 7,
                channel: 2,
                value: -8.01,
                epsilon: 8.0,
            }
        );
        assert!(error.to_string().contains("row 5, column 7, channel 2"));

        let mut nan = key.clone();
        nan.delta[3] = f32::NAN;
        assert!(matches!(
            write_key(&nan, None),
            Err(KeyError::NotFinite { index: 3, .. })
        ));
        let mut short = key.clone();
        short.delta.pop();
        assert_eq!(
            write_key(&short, None),
            Err(KeyError::Length {
                expected: MASK_LEN,
                found: MASK_LEN - 1
            })
        );
        let mut unbounded = key.clone();
        unbounded.header.epsilon = f32::INFINITY;
        assert!(matches!(
            write_key(&unbounded, None),
            Err(KeyError::Setting {
                field: "epsilon",
                ..
            })
        ));

        // A plain file whose header claims a tighter bound than its mask keeps is refused on
        // reading, even though its SHA-256 still matches.
        let plain = write_key(&key, None).unwrap();
        let tighter = edit_header(&plain, |h| h["epsilon"] = 4.0.into());
        assert!(matches!(
            read_key(&tighter, None),
            Err(KeyError::OutOfBound { epsilon: 4.0, .. })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let shown = format!("{:?}", protection());
        assert!(!shown.contains(PASSPHRASE), "{shown}");
        assert!(shown.contains("031425"), "{shown}");
        let mut key = sample_key();
        key.delta[0] = -7.654_321;
        let shown = format!("{key:?}");
        assert!(!shown.contains("7.654"), "{shown}");
        assert!(
            shown.contains("<37632 values>") && shown.contains("faceres"),
            "{shown}"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        let bytes: [u8; 4] = [0x00, 0x7f, 0xa5, 0xff];
        assert_eq!(hex(&bytes), "007fa5ff");
        assert_eq!(unhex::<4>("007FA5ff"), Some(bytes));
        assert_eq!(unhex::<4>("007fa5f"), None);
        assert_eq!(unhex::<2>("+f00"), None);
        assert_eq!(unhex::<1>("é"), None);
    }

    #[test]
    fn sealed_blobs_round_trip_and_refuse_a_wrong_passphrase() {
        let plain = br#"{"state":"secret mask"}"#;
        let sealed = seal(plain, &protection()).unwrap();
        assert!(sealed.starts_with(SEALED_MAGIC));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(unseal(&sealed, PASSPHRASE).unwrap().as_slice(), plain);
        assert_eq!(unseal(&sealed, "wrong"), Err(KeyError::Decrypt));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(unseal(&altered, PASSPHRASE), Err(KeyError::Decrypt));
        for end in 0..sealed.len().min(200) {
            assert!(unseal(&sealed[..end], PASSPHRASE).is_err());
        }
    }
}
