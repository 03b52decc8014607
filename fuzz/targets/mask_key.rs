//! The mask key file: its header, the plain mask, and decryption with [`PASSPHRASE`].
//!
//! The file chooses Argon2id's costs (capped by the reader at
//! `fuselab_shared::mask::key::MAX_MEMORY_KIB` and `MAX_ITERATIONS`); one derivation at those
//! caps takes seconds, so decryption is tried only for files that ask for at most
//! [`MAX_FUZZ_MEMORY_KIB`] and [`MAX_FUZZ_ITERATIONS`]. Files beyond them still go through the
//! header's checks (the caps included) and through reading without a passphrase.

use fuselab_shared::mask::key::{read_header, read_key};

/// The passphrase of the encrypted seeds.
pub const PASSPHRASE: &str = "fuzz";
/// The most Argon2id memory (KiB) a file may ask for to be decrypted here.
pub const MAX_FUZZ_MEMORY_KIB: u32 = 64;
/// The most Argon2id passes a file may ask for to be decrypted here.
pub const MAX_FUZZ_ITERATIONS: u32 = 2;

/// See the module documentation.
pub fn run(data: &[u8]) {
    let Ok(header) = read_header(data) else {
        return;
    };
    let _ = read_key(data, None);
    if header.encryption.as_ref().is_some_and(|lock| {
        lock.memory_kib <= MAX_FUZZ_MEMORY_KIB && lock.iterations <= MAX_FUZZ_ITERATIONS
    }) {
        let _ = read_key(data, Some(PASSPHRASE));
    }
}
