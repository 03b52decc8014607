//! Writes the mask key seeds into `fuzz/corpus-seeds/mask_key/`: a plain key, a key encrypted as
//! `fuselab mask train` writes it (Argon2id at 19 MiB × 2, too slow to decrypt per fuzz input),
//! the same mask encrypted with the cheapest Argon2id (8 KiB × 1, which the target decrypts
//! with its passphrase), and a header without its payload.
//!
//! `cargo run --release --example seeds` from `fuzz/` (see docs/fuzzing.md).

use std::fmt::Write as _;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use fuselab_fuzz::mask_key::PASSPHRASE;
use fuselab_shared::mask::MASK_LEN;
use fuselab_shared::mask::key::{
    CropConvention, Encryption, MAGIC, MAX_ITERATIONS, MAX_MEMORY_KIB, MAX_PARALLELISM, MaskHeader,
    MaskKey, Protection, read_header, read_key, write_key,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        write!(out, "{b:02x}").unwrap();
        out
    })
}

fn file(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

fn main() {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus-seeds/mask_key");
    std::fs::create_dir_all(&out).unwrap();
    let crop = CropConvention {
        detector: "mtcnn (facenet-pytorch 2.6.0)".into(),
        margin: 30,
        canvas: "square, side max(w, h) + margin, face centred, mean-colour fill".into(),
        size: 112,
        resample: "bilinear, half-pixel centres".into(),
    };
    let header = MaskHeader::new(crop, 8.0, 0.02, vec!["facenet".into()], 7, 3, 5);
    let delta: Vec<f32> = (0..MASK_LEN)
        .map(|i| (f32::from(u8::try_from(i % 17).unwrap()) - 8.0) * 0.9)
        .collect();
    let key = MaskKey { header, delta };
    let plain = write_key(&key, None).unwrap();
    std::fs::write(out.join("plain.p3mask"), &plain).unwrap();
    let protection = Protection {
        passphrase: PASSPHRASE,
        salt: [1; 16],
        nonce: [2; 24],
    };
    let locked = write_key(&key, Some(protection)).unwrap();
    std::fs::write(out.join("encrypted_19mib.p3mask"), &locked).unwrap();

    // The cheapest Argon2id the format allows, so that the fuzzer can decrypt it per input.
    let cheap = encrypted(&plain, &protection, [8, 1, 1]);
    assert_eq!(
        read_key(&cheap, Some(PASSPHRASE)).unwrap().delta,
        key_of(&plain).delta
    );
    std::fs::write(out.join("encrypted_8kib.p3mask"), &cheap).unwrap();
    // The dearest a reader accepts: not a seed (the target does not decrypt it), timed once.
    let dearest = encrypted(
        &plain,
        &protection,
        [MAX_MEMORY_KIB, MAX_ITERATIONS, MAX_PARALLELISM],
    );
    let started = std::time::Instant::now();
    assert!(read_key(&dearest, Some(PASSPHRASE)).is_ok());
    println!(
        "reading a key at the caps ({MAX_MEMORY_KIB} KiB, {MAX_ITERATIONS} passes, {MAX_PARALLELISM} lanes) took {:.2} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(
        out.join("header_only.p3mask"),
        &plain[..plain.len() - MASK_LEN * 4],
    )
    .unwrap();
}

/// `plain`'s mask encrypted with Argon2id at `[memory KiB, passes, lanes]`.
fn encrypted(plain: &[u8], protection: &Protection, [memory, passes, lanes]: [u32; 3]) -> Vec<u8> {
    let mut header = read_header(plain).unwrap();
    header.encryption = Some(Encryption {
        kdf: "argon2id".into(),
        memory_kib: memory,
        iterations: passes,
        parallelism: lanes,
        salt: hex(&protection.salt),
        cipher: "xchacha20poly1305".into(),
        nonce: hex(&protection.nonce),
    });
    let header_bytes = serde_json::to_vec_pretty(&header).unwrap();
    let mut derived = [0_u8; 32];
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(memory, passes, lanes, Some(32)).unwrap(),
    )
    .hash_password_into(
        protection.passphrase.as_bytes(),
        &protection.salt,
        &mut derived,
    )
    .unwrap();
    let sealed = XChaCha20Poly1305::new_from_slice(&derived)
        .unwrap()
        .encrypt(
            XNonce::from_slice(&protection.nonce),
            Payload {
                msg: &plain[plain.len() - MASK_LEN * 4..],
                aad: &header_bytes,
            },
        )
        .unwrap();
    file(&header_bytes, &sealed)
}

fn key_of(plain: &[u8]) -> MaskKey {
    read_key(plain, None).unwrap()
}
