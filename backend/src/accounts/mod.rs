//! Accounts: users with Argon2id password hashes, sign-in sessions and API tokens, in the
//! server's database. Session and token secrets are stored only as SHA-256 digests, so a copy
//! of the database signs nobody in.

pub mod password;

use std::fmt::Write as _;

use fuselab_shared::api::{Role, SessionUser, TokenInfo};
use sha2::{Digest as _, Sha256};
use sqlx::{Row as _, any::AnyRow};
use thiserror::Error;
use zeroize::Zeroizing;

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

impl From<sqlx::Error> for AccountError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(DbError::Sql(error))
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

const USER_COLUMNS: &str = "users.id, users.name, users.role, users.can_train, users.created";

fn user_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: parse_role(&row.try_get::<String, _>(2)?),
        can_train: row.try_get::<i64, _>(3)? != 0,
        created: row.try_get(4)?,
    })
}

/// Runs Argon2 (a core for a tenth of a second) off the async runtime.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Hashes a password off the async runtime.
async fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = Zeroizing::new(password.to_owned());
    off_runtime(move || password::hash(&password)).await?
}

/// The accounts in the server's database.
#[derive(Debug, Clone)]
pub struct Accounts {
    db: Database,
}

impl Accounts {
    /// Accounts kept in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// How many users there are.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn count(&self) -> Result<u64, AccountError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Adds a user.
    ///
    /// # Errors
    /// A bad name or password, a taken name, or a failing database.
    pub async fn add(
        &self,
        name: &str,
        password: &str,
        role: Role,
        can_train: bool,
    ) -> Result<User, AccountError> {
        check_name(name)?;
        let hash = hash_password(password).await?;
        let created = now();
        let id: Option<i64> = sqlx::query(
            "INSERT INTO users (name, password, role, can_train, created)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(hash)
        .bind(role.as_str())
        .bind(i64::from(can_train))
        .bind(created)
        .fetch_optional(self.db.pool())
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
        let id = id.ok_or_else(|| AccountError::UserExists { name: name.into() })?;
        Ok(User {
            id,
            name: name.into(),
            role,
            can_train,
            created,
        })
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list(&self) -> Result<Vec<User>, AccountError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY name"
        )))
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(user_row).collect::<Result<_, _>>()?)
    }

    /// The user of that name.
    ///
    /// # Errors
    /// When there is none, or the database fails.
    pub async fn get(&self, name: &str) -> Result<User, AccountError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(self.db.pool())
        .await?
        .as_ref()
        .map(user_row)
        .transpose()?
        .ok_or_else(|| AccountError::NoSuchUser { name: name.into() })
    }

    async fn admins_other_than(&self, id: i64) -> Result<i64, AccountError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM users WHERE role = 'admin' AND id != $1")
                .bind(id)
                .fetch_one(self.db.pool())
                .await?
                .try_get(0)?,
        )
    }

    /// Removes a user with their sessions and tokens; their reports stay, owned by nobody
    /// (administrators see them).
    ///
    /// # Errors
    /// When there is no such user, they are the last administrator, or the database fails.
    pub async fn remove(&self, name: &str) -> Result<(), AccountError> {
        let user = self.get(name).await?;
        if user.is_admin() && self.admins_other_than(user.id).await? == 0 {
            return Err(AccountError::LastAdmin { name: name.into() });
        }
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user.id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Changes a user's role and training permission.
    ///
    /// # Errors
    /// When there is no such user, the change demotes the last administrator, or the database
    /// fails.
    pub async fn update(
        &self,
        name: &str,
        role: Option<Role>,
        can_train: Option<bool>,
    ) -> Result<User, AccountError> {
        let mut user = self.get(name).await?;
        if user.is_admin()
            && role == Some(Role::User)
            && self.admins_other_than(user.id).await? == 0
        {
            return Err(AccountError::LastAdmin { name: name.into() });
        }
        user.role = role.unwrap_or(user.role);
        user.can_train = can_train.unwrap_or(user.can_train);
        sqlx::query("UPDATE users SET role = $1, can_train = $2 WHERE id = $3")
            .bind(user.role.as_str())
            .bind(i64::from(user.can_train))
            .bind(user.id)
            .execute(self.db.pool())
            .await?;
        Ok(user)
    }

    /// Sets a user's password and signs them out everywhere (tokens stay valid).
    ///
    /// # Errors
    /// When there is no such user, the password is refused, or the database fails.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        let user = self.get(name).await?;
        let hash = hash_password(password).await?;
        let mut tx = self.db.write().await?;
        sqlx::query("UPDATE users SET password = $1 WHERE id = $2")
            .bind(hash)
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user whose name and password these are. An unknown name costs the same time as a
    /// wrong password.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn verify(&self, name: &str, password: &str) -> Result<Option<User>, AccountError> {
        let found = if check_name(name).is_ok() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS}, users.password FROM users WHERE name = $1"
            )))
            .bind(name)
            .fetch_optional(self.db.pool())
            .await?
            .map(|row| Ok::<_, sqlx::Error>((user_row(&row)?, row.try_get::<String, _>(5)?)))
            .transpose()?
        } else {
            None
        };
        let stored = found.as_ref().map(|(_, hash)| hash.clone());
        let password = Zeroizing::new(password.to_owned());
        let ok = off_runtime(move || password::verify(&password, stored.as_deref())).await?;
        Ok(found.filter(|_| ok).map(|(user, _)| user))
    }

    /// Starts a session for a user; returns its secret (the cookie's value).
    ///
    /// # Errors
    /// When there is no randomness or the database fails.
    pub async fn start_session(&self, user: &User) -> Result<String, AccountError> {
        let secret = random_hex(32)?;
        let created = now();
        let mut tx = self.db.write().await?;
        sqlx::query("DELETE FROM sessions WHERE expires <= $1")
            .bind(created)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, created, expires) VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&secret))
        .bind(user.id)
        .bind(created)
        .bind(created + SESSION_SECONDS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// The user of an unexpired session.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn session_user(&self, secret: &str) -> Result<Option<User>, AccountError> {
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM sessions JOIN users ON users.id = sessions.user_id
             WHERE sessions.hash = $1 AND sessions.expires > $2"
        )))
        .bind(digest(secret))
        .bind(now())
        .fetch_optional(self.db.pool())
        .await?
        .as_ref()
        .map(user_row)
        .transpose()?)
    }

    /// Ends a session.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn end_session(&self, secret: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(digest(secret))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Creates an API token for a user; the answer holds its secret, which is not kept.
    ///
    /// # Errors
    /// A bad name, too many tokens, no randomness, or the database failing.
    pub async fn create_token(
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
        let mut tx = self.db.write().await?;
        let held: i64 = sqlx::query("SELECT COUNT(*) FROM tokens WHERE user_id = $1")
            .bind(user.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if usize::try_from(held).unwrap_or(usize::MAX) >= MAX_TOKENS_PER_USER {
            return Err(AccountError::TooManyTokens);
        }
        sqlx::query(
            "INSERT INTO tokens (id, hash, user_id, name, created) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(digest(&secret))
        .bind(user.id)
        .bind(name)
        .bind(created)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
    /// When the database fails.
    pub async fn tokens(&self, user: &User) -> Result<Vec<TokenInfo>, AccountError> {
        let rows = sqlx::query(
            "SELECT id, name, created, last_used FROM tokens WHERE user_id = $1
             ORDER BY created DESC, id",
        )
        .bind(user.id)
        .fetch_all(self.db.pool())
        .await?;
        let tokens = rows
            .iter()
            .map(|row| {
                Ok::<_, sqlx::Error>(TokenInfo {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    created: row.try_get(2)?,
                    last_used: row.try_get(3)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(tokens)
    }

    /// Revokes one of a user's tokens; `false` when they have none with that id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn revoke_token(&self, user: &User, id: &str) -> Result<bool, AccountError> {
        Ok(
            sqlx::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user.id)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// The user of an API token, noting when it was used.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn token_user(&self, secret: &str) -> Result<Option<User>, AccountError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let hash = digest(secret);
        let user = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM tokens JOIN users ON users.id = tokens.user_id
             WHERE tokens.hash = $1"
        )))
        .bind(hash.clone())
        .fetch_optional(self.db.pool())
        .await?
        .as_ref()
        .map(user_row)
        .transpose()?;
        if user.is_some() {
            sqlx::query("UPDATE tokens SET last_used = $1 WHERE hash = $2")
                .bind(now())
                .bind(hash)
                .execute(self.db.pool())
                .await?;
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn accounts() -> Accounts {
        Accounts::new(Database::in_memory().await.unwrap())
    }

    #[tokio::test]
    async fn users_sign_in_with_their_password_only() {
        let accounts = accounts().await;
        let ada = accounts
            .add("ada", "analytical", Role::User, false)
            .await
            .unwrap();
        assert_eq!(
            accounts.verify("ada", "analytical").await.unwrap(),
            Some(ada.clone())
        );
        assert_eq!(accounts.verify("ada", "Analytical").await.unwrap(), None);
        assert_eq!(accounts.verify("bob", "analytical").await.unwrap(), None);
        assert_eq!(accounts.verify("a d a", "analytical").await.unwrap(), None);
        assert!(matches!(
            accounts
                .add("ada", "something else", Role::User, false)
                .await,
            Err(AccountError::UserExists { .. })
        ));
        assert!(matches!(
            accounts
                .add("ada lovelace", "analytical", Role::User, false)
                .await,
            Err(AccountError::InvalidName { .. })
        ));
    }

    #[tokio::test]
    async fn sessions_end_on_sign_out_and_on_a_new_password() {
        let accounts = accounts().await;
        let ada = accounts
            .add("ada", "analytical", Role::User, false)
            .await
            .unwrap();
        let first = accounts.start_session(&ada).await.unwrap();
        let second = accounts.start_session(&ada).await.unwrap();
        assert_ne!(first, second);
        assert_eq!(
            accounts.session_user(&first).await.unwrap(),
            Some(ada.clone())
        );
        accounts.end_session(&first).await.unwrap();
        assert_eq!(accounts.session_user(&first).await.unwrap(), None);
        assert_eq!(accounts.session_user(&second).await.unwrap(), Some(ada));
        accounts
            .set_password("ada", "engine number 2")
            .await
            .unwrap();
        assert_eq!(accounts.session_user(&second).await.unwrap(), None);
        assert!(
            accounts
                .verify("ada", "engine number 2")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn tokens_are_per_user_and_revocable() {
        let accounts = accounts().await;
        let ada = accounts
            .add("ada", "analytical", Role::User, false)
            .await
            .unwrap();
        let bob = accounts
            .add("bob", "babbage's", Role::User, false)
            .await
            .unwrap();
        let (info, secret) = accounts.create_token(&ada, " notebook ").await.unwrap();
        assert_eq!(info.name, "notebook");
        assert!(secret.starts_with(TOKEN_PREFIX));
        assert_eq!(
            accounts.token_user(&secret).await.unwrap(),
            Some(ada.clone())
        );
        assert!(accounts.tokens(&ada).await.unwrap()[0].last_used.is_some());
        assert!(!accounts.revoke_token(&bob, &info.id).await.unwrap());
        assert!(accounts.revoke_token(&ada, &info.id).await.unwrap());
        assert_eq!(accounts.token_user(&secret).await.unwrap(), None);
        assert!(matches!(
            accounts.create_token(&ada, "  ").await,
            Err(AccountError::InvalidTokenName)
        ));
    }

    #[tokio::test]
    async fn the_last_admin_stays() {
        let accounts = accounts().await;
        accounts
            .add("root", "administrator", Role::Admin, false)
            .await
            .unwrap();
        accounts
            .add("ada", "analytical", Role::User, true)
            .await
            .unwrap();
        assert!(matches!(
            accounts.remove("root").await,
            Err(AccountError::LastAdmin { .. })
        ));
        assert!(matches!(
            accounts.update("root", Some(Role::User), None).await,
            Err(AccountError::LastAdmin { .. })
        ));
        accounts
            .update("ada", Some(Role::Admin), None)
            .await
            .unwrap();
        accounts.remove("root").await.unwrap();
        assert_eq!(accounts.list().await.unwrap().len(), 1);
        assert!(matches!(
            accounts.remove("root").await,
            Err(AccountError::NoSuchUser { .. })
        ));
    }
}
