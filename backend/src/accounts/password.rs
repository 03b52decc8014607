//! Password hashing: Argon2id in the PHC string format, with OWASP's minimum costs (19 MiB,
//! 2 passes, 1 lane), which keep a sign-in under a tenth of a second on one core.

use std::sync::LazyLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    password_hash::{self, SaltString},
};

use super::AccountError;

/// Shortest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted, in bytes: hashing cost grows with it.
pub const MAX_LEN: usize = 1024;

/// The hash of a password nobody knows: verifying against it when a user name is unknown makes
/// that answer take as long as a wrong password.
static DECOY: LazyLock<Option<String>> =
    LazyLock::new(|| hash(&format!("decoy {:?}", std::time::Instant::now())).ok());

/// Checks a new password's length.
///
/// # Errors
/// [`AccountError::WeakPassword`] or [`AccountError::PasswordTooLong`].
pub fn check(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(AccountError::WeakPassword { min: MIN_LEN });
    }
    if password.len() > MAX_LEN {
        return Err(AccountError::PasswordTooLong { max: MAX_LEN });
    }
    Ok(())
}

/// Hashes a password (after [`check`]).
///
/// # Errors
/// When the system has no randomness or Argon2 fails.
pub fn hash(password: &str) -> Result<String, AccountError> {
    check(password)?;
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(AccountError::hash)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(AccountError::hash)?
        .to_string())
}

/// Whether `password` matches the stored PHC string; with `None` it verifies against a decoy,
/// so an unknown user takes as long as a wrong password.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    if password.len() > MAX_LEN {
        return false;
    }
    let Some(candidate) = stored.or(DECOY.as_deref()) else {
        return false;
    };
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed);
    stored.is_some() && matches.is_ok()
}

impl AccountError {
    fn hash(error: password_hash::Error) -> Self {
        Self::Hash(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse", Some(&stored)));
        assert!(!verify("correct horsE", Some(&stored)));
        assert!(!verify("correct horse", None));
        assert!(!verify("correct horse", Some("not a hash")));
    }

    #[test]
    fn the_decoy_is_a_valid_hash() {
        assert!(PasswordHash::new(DECOY.as_deref().unwrap()).is_ok());
    }

    #[test]
    fn lengths_are_checked() {
        assert!(matches!(
            check("short"),
            Err(AccountError::WeakPassword { min: 8 })
        ));
        assert!(check("eight ch").is_ok());
        let long = "x".repeat(MAX_LEN + 1);
        assert!(matches!(
            check(&long),
            Err(AccountError::PasswordTooLong { .. })
        ));
        assert!(!verify(&long, None));
    }
}
