//! Who the visitor is and what the pages offer them, why an API call failed, and the checks of
//! the sign-in and account forms before anything is sent.
//!
//! Plain logic, compiled natively too, so its unit tests run without a browser.

use fuselab_shared::api::{ChangePassword, NewToken, Role, Session, SessionUser, SignIn};

/// What the pages offer the visitor, from `GET /api/session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The server runs without accounts (`--auth off`): everything, nobody signs in.
    Open,
    /// Not signed in: the in-browser tools and shared reports only.
    Anonymous,
    /// Signed in.
    User(SessionUser),
}

/// Whether the visitor may start training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Training {
    Allowed,
    /// Signed in, but the administrator has not allowed this user to train.
    NotAllowed,
    /// Not signed in.
    SignIn,
}

impl Access {
    /// The access a session gives.
    pub fn of(session: &Session) -> Self {
        match (&session.user, session.auth_required) {
            (_, false) => Self::Open,
            (None, true) => Self::Anonymous,
            (Some(user), true) => Self::User(user.clone()),
        }
    }

    /// Whether the server stores and computes for this visitor (reports, server-side analyses,
    /// mask jobs, listing alignment runs).
    pub fn uses_server(&self) -> bool {
        !matches!(self, Self::Anonymous)
    }

    /// Whether the visitor may start (and resume) training runs.
    pub fn training(&self) -> Training {
        match self {
            Self::Open => Training::Allowed,
            Self::Anonymous => Training::SignIn,
            Self::User(user) if user.role == Role::Admin || user.can_train => Training::Allowed,
            Self::User(_) => Training::NotAllowed,
        }
    }

    /// Whether listings hold every user's items, so they show whose each one is.
    pub fn sees_owners(&self) -> bool {
        matches!(self, Self::User(user) if user.role == Role::Admin)
    }
}

/// Why a call to the server failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No answer (or the request could not be made).
    #[error("cannot reach the server: {0}")]
    Unreachable(String),
    /// 401: not signed in, or the session expired.
    #[error("{0}")]
    SignIn(String),
    /// 403: signed in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Any other error answer, with the server's message.
    #[error("{message}")]
    Answer {
        /// The HTTP status.
        status: u16,
        /// The server's `error` message, or the status.
        message: String,
    },
    /// A successful answer that is not what the app expects.
    #[error("the server's answer could not be read: {0}")]
    Unreadable(String),
}

impl Failure {
    /// The failure an error answer stands for; `message` is the body's `error`, when it has one.
    pub fn answer(status: u16, message: Option<String>) -> Self {
        let message = message.unwrap_or_else(|| format!("the server answered HTTP {status}"));
        match status {
            401 => Self::SignIn(message),
            403 => Self::Forbidden(message),
            _ => Self::Answer { status, message },
        }
    }

    /// Whether the visitor has to sign in (again) for this to work.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, Self::SignIn(_))
    }
}

/// The server's shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// What is wrong with a form before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormProblem {
    #[error("enter your user name and password")]
    MissingCredentials,
    #[error("enter your current password")]
    MissingCurrent,
    #[error("the new password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the two new passwords differ")]
    Mismatch,
    #[error("give the token a name")]
    MissingTokenName,
}

/// The sign-in request; the name without surrounding spaces.
///
/// # Errors
/// [`FormProblem::MissingCredentials`] when the name or the password is empty.
pub fn sign_in(name: &str, password: &str) -> Result<SignIn, FormProblem> {
    let name = name.trim();
    if name.is_empty() || password.is_empty() {
        return Err(FormProblem::MissingCredentials);
    }
    Ok(SignIn {
        name: name.to_owned(),
        password: password.to_owned(),
    })
}

/// The password change request, once the new password is long enough and typed twice alike.
///
/// # Errors
/// The first problem of the form.
pub fn change_password(
    current: &str,
    new: &str,
    repeated: &str,
) -> Result<ChangePassword, FormProblem> {
    if current.is_empty() {
        Err(FormProblem::MissingCurrent)
    } else if new.chars().count() < MIN_PASSWORD_CHARS {
        Err(FormProblem::TooShort)
    } else if new != repeated {
        Err(FormProblem::Mismatch)
    } else {
        Ok(ChangePassword {
            current: current.to_owned(),
            new: new.to_owned(),
        })
    }
}

/// The request for a new API token named `name` (without surrounding spaces).
///
/// # Errors
/// [`FormProblem::MissingTokenName`] for an empty name.
pub fn new_token(name: &str) -> Result<NewToken, FormProblem> {
    match name.trim() {
        "" => Err(FormProblem::MissingTokenName),
        name => Ok(NewToken {
            name: name.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, can_train: bool) -> SessionUser {
        SessionUser {
            name: "ada".into(),
            role,
            can_train,
        }
    }

    fn access(user: Option<SessionUser>, auth_required: bool) -> Access {
        Access::of(&Session {
            user,
            auth_required,
        })
    }

    #[test]
    fn anonymous_visitors_keep_to_the_browser() {
        let anonymous = access(None, true);
        assert_eq!(anonymous, Access::Anonymous);
        assert!(!anonymous.uses_server());
        assert_eq!(anonymous.training(), Training::SignIn);
        assert!(!anonymous.sees_owners());
    }

    #[test]
    fn users_train_when_allowed_and_admins_always() {
        let plain = access(Some(user(Role::User, false)), true);
        assert!(plain.uses_server());
        assert_eq!(plain.training(), Training::NotAllowed);
        assert!(!plain.sees_owners());
        assert_eq!(
            access(Some(user(Role::User, true)), true).training(),
            Training::Allowed
        );
        let admin = access(Some(user(Role::Admin, false)), true);
        assert_eq!(admin.training(), Training::Allowed);
        assert!(admin.sees_owners());
    }

    #[test]
    fn a_server_without_accounts_offers_everything() {
        for user in [None, Some(user(Role::Admin, true))] {
            let open = access(user, false);
            assert_eq!(open, Access::Open);
            assert!(open.uses_server());
            assert_eq!(open.training(), Training::Allowed);
            assert!(!open.sees_owners());
        }
    }

    #[test]
    fn error_answers_are_classified() {
        let expired = Failure::answer(401, Some("sign in to save reports".into()));
        assert!(expired.needs_sign_in());
        assert_eq!(expired.to_string(), "sign in to save reports");
        assert_eq!(
            Failure::answer(403, None),
            Failure::Forbidden("the server answered HTTP 403".into())
        );
        let busy = Failure::answer(429, Some("too many attempts".into()));
        assert!(!busy.needs_sign_in());
        assert_eq!(busy.to_string(), "too many attempts");
        assert_eq!(
            Failure::Unreachable("offline".into()).to_string(),
            "cannot reach the server: offline"
        );
    }

    #[test]
    fn sign_in_needs_both_fields() {
        assert_eq!(sign_in(" ", "x"), Err(FormProblem::MissingCredentials));
        assert_eq!(sign_in("ada", ""), Err(FormProblem::MissingCredentials));
        let request = sign_in(" ada ", " secret ").unwrap();
        assert_eq!(request.name, "ada");
        assert_eq!(request.password, " secret ", "passwords are sent as typed");
    }

    #[test]
    fn password_changes_are_checked_like_the_server() {
        assert_eq!(
            change_password("", "long enough", "long enough"),
            Err(FormProblem::MissingCurrent)
        );
        assert_eq!(
            change_password("old", "seven77", "seven77"),
            Err(FormProblem::TooShort)
        );
        // Characters, not bytes: seven two-byte characters are too short.
        assert_eq!(
            change_password("old", "ééééééé", "ééééééé"),
            Err(FormProblem::TooShort)
        );
        assert_eq!(
            change_password("old", "eight888", "eight889"),
            Err(FormProblem::Mismatch)
        );
        let body = change_password("old", "eight888", "eight888").unwrap();
        assert_eq!(
            (body.current.as_str(), body.new.as_str()),
            ("old", "eight888")
        );
    }

    #[test]
    fn tokens_need_a_name() {
        assert_eq!(new_token("  "), Err(FormProblem::MissingTokenName));
        assert_eq!(new_token(" ci ").unwrap().name, "ci");
    }
}
