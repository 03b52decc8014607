//! Accounts: users with Argon2id password hashes, sign-in sessions and API tokens, in the
//! server's database. Session and token secrets are stored only as SHA-256 digests, so a copy
//! of the database signs nobody in.

pub mod password;

use std::{fmt::Write as _, sync::Arc};

use fuselab_shared::api::{Role, SessionUser, TokenInfo};
use rusqlite::{OptionalExtension as _, params};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::db::{Database, DbError, now};

/// How long a sign-in lasts, in seconds (14 days).
pub const SESSION_SECONDS: i64 = 14 * 24 * 3600;
/// Longest user name.
pub const MAX_NAME_LEN: usize = 64;
/// Most API tokens one user may hold.
pub const MAX_TOKENS_PER_USER: usize = 32;
/// Longest token name.
pub const MAX_TOKEN_NAME_LEN: usize = 100;
/// The prefix of API tokens, so they are recognisable in a leaked file.
pub const TOKEN_PREFIX: &str = "flb_";

/// Why an account operation failed.
#[derive(Debug, Error)]
pub enum AccountError {
    /// A user name that is empty, too long or has other characters than letters, digits, `.`,
    /// `_` and `-`.
    #[error(
        "user name `{name}` is not allowed: use 1 to {MAX_NAME_LEN} letters, digits, `.`, `_` or `-`"
    )]
    InvalidName {
        /// The name given (shown escaped).
        name: String,
    },
    /// Password shorter than the minimum.
    #[error("the password must have at least {min} characters")]
    WeakPassword {
        /// The minimum.
        min: usize,
    },
    /// Password longer than the maximum.
    #[error("the password must have at most {max} bytes")]
    PasswordTooLong {
        /// The maximum.
        max: usize,
    },
    /// No user of that name.
    #[error("there is no user `{name}`")]
    NoSuchUser {
        /// The name.
        name: String,
    },
    /// The name is taken.
    #[error("there is already a user `{name}`")]
    UserExists {
        /// The name.
        name: String,
    },
    /// The change would leave the server without an administrator.
    #[error("`{name}` is the last administrator; make another user an admin first")]
    LastAdmin {
        /// The administrator.
        name: String,
    },
    /// A token name that is empty or too long.
    #[error("a token name must have 1 to {MAX_TOKEN_NAME_LEN} characters")]
    InvalidTokenName,
    /// Too many tokens.
    #[error("a user may hold at most {MAX_TOKENS_PER_USER} API tokens; revoke one first")]
    TooManyTokens,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// No randomness for a salt or a secret.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
    /// Argon2 failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

impl From<rusqlite::Error> for AccountError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Db(DbError::Sqlite(error))
    }
}

impl AccountError {
    /// Whether the error is about what the caller gave (so it may be shown to them).
    pub fn is_input(&self) -> bool {
        !matches!(self, Self::Db(_) | Self::Random(_) | Self::Hash(_))
    }
}

/// A user of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Whether they may start training runs.
    pub can_train: bool,
    /// When they were added, seconds since 1970.
    pub created: i64,
}

impl User {
    /// Whether they are an administrator.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether they may start training runs.
    pub fn may_train(&self) -> bool {
        self.is_admin() || self.can_train
    }

    /// As the app shows them.
    pub fn session_user(&self) -> SessionUser {
        SessionUser {
            name: self.name.clone(),
            role: self.role,
            can_train: self.may_train(),
        }
    }
}

/// Checks a user name.
///
/// # Errors
/// [`AccountError::InvalidName`].
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::InvalidName {
            name: name
                .chars()
                .take(MAX_NAME_LEN + 1)
                .collect::<String>()
                .escape_debug()
                .to_string(),
        })
    }
}

fn parse_role(text: &str) -> Role {
    if text == "admin" {
        Role::Admin
    } else {
        Role::User
    }
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn random_hex(bytes: usize) -> Result<String, AccountError> {
    let mut buffer = vec![0_u8; bytes];
    getrandom::fill(&mut buffer)?;
    Ok(buffer.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

const USER_COLUMNS: &str = "id, name, role, can_train, created";

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        role: parse_role(&row.get::<_, String>(2)?),
        can_train: row.get(3)?,
        created: row.get(4)?,
    })
}

/// The accounts in the server's database.
#[derive(Debug, Clone)]
pub struct Accounts {
    db: Arc<Database>,
}

impl Accounts {
    /// Accounts kept in `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// The database they live in.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// How many users there are.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn count(&self) -> Result<u64, AccountError> {
        Ok(self
            .db
            .lock()
            .query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))?)
    }

    /// Adds a user (hashing takes a moment: call it off the async runtime).
    ///
    /// # Errors
    /// A bad name or password, a taken name, or a failing database.
    pub fn add(
        &self,
        name: &str,
        password: &str,
        role: Role,
        can_train: bool,
    ) -> Result<User, AccountError> {
        check_name(name)?;
        let hash = password::hash(password)?;
        let created = now();
        let connection = self.db.lock();
        let inserted = connection.execute(
            "INSERT INTO users (name, password, role, can_train, created)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![name, hash, role.as_str(), can_train, created],
        )?;
        if inserted == 0 {
            return Err(AccountError::UserExists { name: name.into() });
        }
        Ok(User {
            id: connection.last_insert_rowid(),
            name: name.into(),
            role,
            can_train,
            created,
        })
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn list(&self) -> Result<Vec<User>, AccountError> {
        let connection = self.db.lock();
        let mut statement =
            connection.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
        let users = statement
            .query_map([], user_row)?
            .collect::<Result<_, _>>()?;
        Ok(users)
    }

    /// The user of that name.
    ///
    /// # Errors
    /// When there is none, or SQLite fails.
    pub fn get(&self, name: &str) -> Result<User, AccountError> {
        self.db
            .lock()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                user_row,
            )
            .optional()?
            .ok_or_else(|| AccountError::NoSuchUser { name: name.into() })
    }

    fn admins_other_than(&self, id: i64) -> Result<u64, AccountError> {
        Ok(self.db.lock().query_row(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND id != ?1",
            [id],
            |row| row.get(0),
        )?)
    }

    /// Removes a user with their sessions and tokens; their reports stay, owned by nobody
    /// (administrators see them).
    ///
    /// # Errors
    /// When there is no such user, they are the last administrator, or SQLite fails.
    pub fn remove(&self, name: &str) -> Result<(), AccountError> {
        let user = self.get(name)?;
        if user.is_admin() && self.admins_other_than(user.id)? == 0 {
            return Err(AccountError::LastAdmin { name: name.into() });
        }
        self.db
            .lock()
            .execute("DELETE FROM users WHERE id = ?1", [user.id])?;
        Ok(())
    }

    /// Changes a user's role and training permission.
    ///
    /// # Errors
    /// When there is no such user, the change demotes the last administrator, or SQLite fails.
    pub fn update(
        &self,
        name: &str,
        role: Option<Role>,
        can_train: Option<bool>,
    ) -> Result<User, AccountError> {
        let mut user = self.get(name)?;
        if user.is_admin() && role == Some(Role::User) && self.admins_other_than(user.id)? == 0 {
            return Err(AccountError::LastAdmin { name: name.into() });
        }
        user.role = role.unwrap_or(user.role);
        user.can_train = can_train.unwrap_or(user.can_train);
        self.db.lock().execute(
            "UPDATE users SET role = ?1, can_train = ?2 WHERE id = ?3",
            params![user.role.as_str(), user.can_train, user.id],
        )?;
        Ok(user)
    }

    /// Sets a user's password and signs them out everywhere (tokens stay valid).
    ///
    /// # Errors
    /// When there is no such user, the password is refused, or SQLite fails.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        let user = self.get(name)?;
        let hash = password::hash(password)?;
        let connection = self.db.lock();
        connection.execute(
            "UPDATE users SET password = ?1 WHERE id = ?2",
            params![hash, user.id],
        )?;
        connection.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
        Ok(())
    }

    /// The user whose name and password these are (Argon2: call it off the async runtime).
    /// An unknown name costs the same time as a wrong password.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<User>, AccountError> {
        let found = if check_name(name).is_ok() {
            self.db
                .lock()
                .query_row(
                    &format!("SELECT {USER_COLUMNS}, password FROM users WHERE name = ?1"),
                    [name],
                    |row| Ok((user_row(row)?, row.get::<_, String>(5)?)),
                )
                .optional()?
        } else {
            None
        };
        let stored = found.as_ref().map(|(_, hash)| hash.as_str());
        let ok = password::verify(password, stored);
        Ok(found.filter(|_| ok).map(|(user, _)| user))
    }

    /// Starts a session for a user; returns its secret (the cookie's value).
    ///
    /// # Errors
    /// When there is no randomness or SQLite fails.
    pub fn start_session(&self, user: &User) -> Result<String, AccountError> {
        let secret = random_hex(32)?;
        let created = now();
        let connection = self.db.lock();
        connection.execute("DELETE FROM sessions WHERE expires <= ?1", [created])?;
        connection.execute(
            "INSERT INTO sessions (hash, user_id, created, expires) VALUES (?1, ?2, ?3, ?4)",
            params![digest(&secret), user.id, created, created + SESSION_SECONDS],
        )?;
        Ok(secret)
    }

    /// The user of an unexpired session.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn session_user(&self, secret: &str) -> Result<Option<User>, AccountError> {
        Ok(self
            .db
            .lock()
            .query_row(
                "SELECT users.id, users.name, users.role, users.can_train, users.created
                 FROM sessions JOIN users ON users.id = sessions.user_id
                 WHERE sessions.hash = ?1 AND sessions.expires > ?2",
                params![digest(secret), now()],
                user_row,
            )
            .optional()?)
    }

    /// Ends a session.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn end_session(&self, secret: &str) -> Result<(), AccountError> {
        self.db
            .lock()
            .execute("DELETE FROM sessions WHERE hash = ?1", [digest(secret)])?;
        Ok(())
    }

    /// Creates an API token for a user; the answer holds its secret, which is not kept.
    ///
    /// # Errors
    /// A bad name, too many tokens, no randomness, or SQLite failing.
    pub fn create_token(
        &self,
        user: &User,
        name: &str,
    ) -> Result<(TokenInfo, String), AccountError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_LEN {
            return Err(AccountError::InvalidTokenName);
        }
        let id = random_hex(8)?;
        let secret = format!("{TOKEN_PREFIX}{}", random_hex(32)?);
        let created = now();
        let connection = self.db.lock();
        let held: usize = connection.query_row(
            "SELECT COUNT(*) FROM tokens WHERE user_id = ?1",
            [user.id],
            |row| row.get(0),
        )?;
        if held >= MAX_TOKENS_PER_USER {
            return Err(AccountError::TooManyTokens);
        }
        connection.execute(
            "INSERT INTO tokens (id, hash, user_id, name, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, digest(&secret), user.id, name, created],
        )?;
        Ok((
            TokenInfo {
                id,
                name: name.into(),
                created,
                last_used: None,
            },
            secret,
        ))
    }

    /// A user's tokens, newest first.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn tokens(&self, user: &User) -> Result<Vec<TokenInfo>, AccountError> {
        let connection = self.db.lock();
        let mut statement = connection.prepare(
            "SELECT id, name, created, last_used FROM tokens WHERE user_id = ?1
             ORDER BY created DESC, id",
        )?;
        let tokens = statement
            .query_map([user.id], |row| {
                Ok(TokenInfo {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    created: row.get(2)?,
                    last_used: row.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(tokens)
    }

    /// Revokes one of a user's tokens; `false` when they have none with that id.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn revoke_token(&self, user: &User, id: &str) -> Result<bool, AccountError> {
        Ok(self.db.lock().execute(
            "DELETE FROM tokens WHERE id = ?1 AND user_id = ?2",
            params![id, user.id],
        )? > 0)
    }

    /// The user of an API token, noting when it was used.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn token_user(&self, secret: &str) -> Result<Option<User>, AccountError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = digest(secret);
        let connection = self.db.lock();
        let user = connection
            .query_row(
                "SELECT users.id, users.name, users.role, users.can_train, users.created
                 FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ?1",
                [&hash],
                user_row,
            )
            .optional()?;
        if user.is_some() {
            connection.execute(
                "UPDATE tokens SET last_used = ?1 WHERE hash = ?2",
                params![now(), hash],
            )?;
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::new(Arc::new(Database::in_memory().unwrap()))
    }

    #[test]
    fn users_sign_in_with_their_password_only() {
        let accounts = accounts();
        let ada = accounts
            .add("ada", "analytical", Role::User, false)
            .unwrap();
        assert_eq!(
            accounts.verify("ada", "analytical").unwrap(),
            Some(ada.clone())
        );
        assert_eq!(accounts.verify("ada", "Analytical").unwrap(), None);
        assert_eq!(accounts.verify("bob", "analytical").unwrap(), None);
        assert_eq!(accounts.verify("a d a", "analytical").unwrap(), None);
        assert!(matches!(
            accounts.add("ada", "something else", Role::User, false),
            Err(AccountError::UserExists { .. })
        ));
        assert!(matches!(
            accounts.add("ada lovelace", "analytical", Role::User, false),
            Err(AccountError::InvalidName { .. })
        ));
    }

    #[test]
    fn sessions_end_on_sign_out_and_on_a_new_password() {
        let accounts = accounts();
        let ada = accounts
            .add("ada", "analytical", Role::User, false)
            .unwrap();
        let first = accounts.start_session(&ada).unwrap();
        let second = accounts.start_session(&ada).unwrap();
        assert_ne!(first, second);
        assert_eq!(accounts.session_user(&first).unwrap(), Some(ada.clone()));
        accounts.end_session(&first).unwrap();
        assert_eq!(accounts.session_user(&first).unwrap(), None);
        assert_eq!(accounts.session_user(&second).unwrap(), Some(ada));
        accounts.set_password("ada", "engine number 2").unwrap();
        assert_eq!(accounts.session_user(&second).unwrap(), None);
        assert!(accounts.verify("ada", "engine number 2").unwrap().is_some());
    }

    #[test]
    fn tokens_are_per_user_and_revocable() {
        let accounts = accounts();
        let ada = accounts
            .add("ada", "analytical", Role::User, false)
            .unwrap();
        let bob = accounts.add("bob", "babbage's", Role::User, false).unwrap();
        let (info, secret) = accounts.create_token(&ada, " notebook ").unwrap();
        assert_eq!(info.name, "notebook");
        assert!(secret.starts_with(TOKEN_PREFIX));
        assert_eq!(accounts.token_user(&secret).unwrap(), Some(ada.clone()));
        assert!(accounts.tokens(&ada).unwrap()[0].last_used.is_some());
        assert!(!accounts.revoke_token(&bob, &info.id).unwrap());
        assert!(accounts.revoke_token(&ada, &info.id).unwrap());
        assert_eq!(accounts.token_user(&secret).unwrap(), None);
        assert!(matches!(
            accounts.create_token(&ada, "  "),
            Err(AccountError::InvalidTokenName)
        ));
    }

    #[test]
    fn the_last_admin_stays() {
        let accounts = accounts();
        accounts
            .add("root", "administrator", Role::Admin, false)
            .unwrap();
        accounts.add("ada", "analytical", Role::User, true).unwrap();
        assert!(matches!(
            accounts.remove("root"),
            Err(AccountError::LastAdmin { .. })
        ));
        assert!(matches!(
            accounts.update("root", Some(Role::User), None),
            Err(AccountError::LastAdmin { .. })
        ));
        accounts.update("ada", Some(Role::Admin), None).unwrap();
        accounts.remove("root").unwrap();
        assert_eq!(accounts.list().unwrap().len(), 1);
        assert!(matches!(
            accounts.remove("root"),
            Err(AccountError::NoSuchUser { .. })
        ));
    }
}
