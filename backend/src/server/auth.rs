//! Who is calling: the session cookie or `Authorization: Bearer <token>`, the extractors that
//! require a signed-in user, and `/api/session`, `/api/account/password`, `/api/tokens`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{ConnectInfo, FromRequestParts, Path, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use fuselab_shared::api::{
    ChangePassword, CreatedToken, NewToken, Session, SessionUser, SignIn, TokenInfo,
};
use tokio::sync::Semaphore;
use zeroize::Zeroize as _;

use super::{AppError, AppState};
use crate::{
    accounts::{AccountError, Accounts, SESSION_SECONDS, User},
    reports::Scope,
};

/// The session cookie's name.
pub const COOKIE: &str = "fuselab_session";

/// Whether the server has accounts.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// No accounts: every caller acts as a local administrator. Only for loopback addresses
    /// (`fuselab serve --auth off` refuses others).
    Off,
    /// Users sign in.
    On(Accounts),
}

/// A caller allowed to use the server's own resources: a signed-in user, or anyone when the
/// server runs without accounts. Handlers that take it answer 401 to anonymous callers.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The server runs without accounts.
    Local,
    /// A signed-in user.
    User(User),
}

impl Actor {
    /// Whether they may see and change everything.
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Local => true,
            Self::User(user) => user.is_admin(),
        }
    }

    /// Whether they may start training runs.
    pub fn may_train(&self) -> bool {
        match self {
            Self::Local => true,
            Self::User(user) => user.may_train(),
        }
    }

    /// Their database id, to own what they create.
    pub fn owner_id(&self) -> Option<i64> {
        match self {
            Self::Local => None,
            Self::User(user) => Some(user.id),
        }
    }

    /// Their name, to own what they create outside the database.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Local => None,
            Self::User(user) => Some(&user.name),
        }
    }

    /// Which reports they may list and delete.
    pub fn scope(&self) -> Scope {
        match self {
            Self::User(user) if !user.is_admin() => Scope::Owner(user.id),
            _ => Scope::All,
        }
    }

    /// Whether something owned by `owner` (a user name; `None` for what was made without
    /// accounts) is theirs to see and change.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        self.is_admin() || (owner.is_some() && owner == self.name())
    }

    /// 403 unless they may train.
    ///
    /// # Errors
    /// When they may not.
    pub fn require_training(&self) -> Result<(), AppError> {
        if self.may_train() {
            Ok(())
        } else {
            Err(AppError::client(
                StatusCode::FORBIDDEN,
                "you may not start training runs on this server; an administrator allows it with \
                 `fuselab users set NAME --can-train true`",
            ))
        }
    }
}

/// Who is calling, if anyone.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Actor>);

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, AppError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                AppError::client(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`",
                )
            }),
    )
}

fn internal(context: &'static str) -> impl FnOnce(AccountError) -> AppError {
    move |e| AppError::Internal {
        context,
        source: e.into(),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let AuthMode::On(accounts) = &state.auth else {
            return Ok(Self(Some(Actor::Local)));
        };
        if let Some(token) = bearer(&parts.headers) {
            let user = accounts
                .token_user(token?)
                .await
                .map_err(internal("checking an API token"))?
                .ok_or_else(|| {
                    AppError::client(
                        StatusCode::UNAUTHORIZED,
                        "this API token is not valid (revoked, or mistyped)",
                    )
                })?;
            return Ok(Self(Some(Actor::User(user))));
        }
        let Some(secret) = cookie_value(&parts.headers, COOKIE) else {
            return Ok(Self(None));
        };
        let user = accounts
            .session_user(secret)
            .await
            .map_err(internal("checking a session"))?;
        Ok(Self(user.map(Actor::User)))
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        actor.ok_or_else(|| {
            AppError::client(
                StatusCode::UNAUTHORIZED,
                "sign in first (at /signin), or send `Authorization: Bearer <token>`",
            )
        })
    }
}

fn session(state: &AppState, actor: Option<&Actor>) -> Session {
    Session {
        user: actor.map(|actor| match actor {
            Actor::Local => SessionUser {
                name: "local".into(),
                role: fuselab_shared::api::Role::Admin,
                can_train: true,
            },
            Actor::User(user) => user.session_user(),
        }),
        auth_required: matches!(state.auth, AuthMode::On(_)),
    }
}

/// `GET /api/session`: who this browser is (never 401, so anonymous pages stay quiet).
pub async fn current(State(state): State<AppState>, Caller(actor): Caller) -> Json<Session> {
    Json(session(&state, actor.as_ref()))
}

fn accounts(state: &AppState) -> Result<&Accounts, AppError> {
    match &state.auth {
        AuthMode::On(accounts) => Ok(accounts),
        AuthMode::Off => Err(AppError::client(
            StatusCode::CONFLICT,
            "this server runs without accounts (`--auth off`)",
        )),
    }
}

fn session_cookie(state: &AppState, secret: &str, max_age: i64) -> HeaderValue {
    let secure = if state.tls { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("fuselab_session=; Path=/; Max-Age=0"))
}

/// Failed sign-ins per client address, to slow down password guessing.
#[derive(Debug)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Password hashing uses a core for a tenth of a second: at most this many at once.
    hashing: Semaphore,
}

/// Failures allowed per address within [`WINDOW`].
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_mins(5);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_TRACKED: usize = 10_000;

impl Default for SignInLimiter {
    fn default() -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(2),
        }
    }
}

impl SignInLimiter {
    /// Seconds to wait before the next attempt, when the address has failed too often.
    fn blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, since) = failures.get(&ip)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*count >= MAX_FAILURES).then(|| left.as_secs() + 1)
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ip);
    }
}

/// The client's address, as the connection gave it (loopback where there is no connection, as
/// in tests through `oneshot`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([127, 0, 0, 1]), |ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// Runs password work (Argon2: a core for a tenth of a second, which the accounts run off the
/// async runtime), at most [`SignInLimiter`]'s slots at once.
async fn hashing<T>(
    state: &AppState,
    context: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, AppError> {
    let _permit = state
        .sign_in
        .hashing
        .acquire()
        .await
        .map_err(|e| AppError::Internal {
            context,
            source: e.into(),
        })?;
    Ok(work.await)
}

/// `POST /api/session`: sign in with a name and password; sets the session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, AppError> {
    let accounts = accounts(&state)?;
    let Json(mut request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    if let Some(seconds) = state.sign_in.blocked_for(ip) {
        request.password.zeroize();
        return Err(AppError::busy(
            format!("too many failed sign-ins from here; try again in {seconds} s"),
            seconds,
        ));
    }
    let verified = hashing(&state, "checking a password", async {
        let user = accounts.verify(&request.name, &request.password).await;
        request.password.zeroize();
        match user? {
            Some(user) => Ok(Some((accounts.start_session(&user).await?, user))),
            None => Ok::<_, AccountError>(None),
        }
    })
    .await?
    .map_err(internal("signing in"))?;
    let Some((secret, user)) = verified else {
        state.sign_in.failed(ip);
        return Err(AppError::client(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    };
    state.sign_in.succeeded(ip);
    tracing::info!(user = %user.name, "signed in");
    let body = session(&state, Some(&Actor::User(user)));
    Ok((
        [(
            header::SET_COOKIE,
            session_cookie(&state, &secret, SESSION_SECONDS),
        )],
        Json(body),
    )
        .into_response())
}

/// `DELETE /api/session`: sign out.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let (AuthMode::On(accounts), Some(secret)) = (&state.auth, cookie_value(&headers, COOKIE)) {
        accounts
            .end_session(secret)
            .await
            .map_err(internal("signing out"))?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie(&state, "", 0))],
    )
        .into_response())
}

fn signed_in_user(actor: Actor) -> Result<User, AppError> {
    match actor {
        Actor::User(user) => Ok(user),
        Actor::Local => Err(AppError::client(
            StatusCode::CONFLICT,
            "this server runs without accounts (`--auth off`)",
        )),
    }
}

fn account_error(context: &'static str) -> impl FnOnce(AccountError) -> AppError {
    move |e| {
        if e.is_input() {
            AppError::client(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        } else {
            internal(context)(e)
        }
    }
}

/// `POST /api/account/password`: change one's own password (other sessions end; this browser
/// gets a new one).
pub async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<ChangePassword>, JsonRejection>,
) -> Result<Response, AppError> {
    let accounts = accounts(&state)?;
    let user = signed_in_user(actor)?;
    let Json(mut request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    let changed = hashing(&state, "changing a password", async {
        let result = async {
            if accounts
                .verify(&user.name, &request.current)
                .await?
                .is_none()
            {
                return Ok(None);
            }
            accounts.set_password(&user.name, &request.new).await?;
            accounts.start_session(&user).await.map(Some)
        }
        .await;
        request.current.zeroize();
        request.new.zeroize();
        result
    })
    .await?
    .map_err(account_error("changing a password"))?;
    let secret = changed.ok_or_else(|| {
        AppError::client(StatusCode::UNAUTHORIZED, "the current password is wrong")
    })?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            session_cookie(&state, &secret, SESSION_SECONDS),
        )],
    )
        .into_response())
}

/// `GET /api/tokens`: the caller's API tokens.
pub async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<TokenInfo>>, AppError> {
    let accounts = accounts(&state)?;
    let user = signed_in_user(actor)?;
    Ok(Json(
        accounts
            .tokens(&user)
            .await
            .map_err(internal("listing tokens"))?,
    ))
}

/// `POST /api/tokens`: a new API token; its secret is in this answer only.
pub async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), AppError> {
    let accounts = accounts(&state)?;
    let user = signed_in_user(actor)?;
    let Json(request) = body.map_err(|r| AppError::json(&r, state.max_body_bytes))?;
    let (info, token) = accounts
        .create_token(&user, &request.name)
        .await
        .map_err(account_error("creating a token"))?;
    tracing::info!(user = %user.name, token = %info.id, "API token created");
    Ok((StatusCode::CREATED, Json(CreatedToken { info, token })))
}

/// `DELETE /api/tokens/{id}`: revoke one of the caller's tokens.
pub async fn revoke_token(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let accounts = accounts(&state)?;
    let user = signed_in_user(actor)?;
    if accounts
        .revoke_token(&user, &id)
        .await
        .map_err(internal("revoking a token"))?
    {
        tracing::info!(user = %user.name, token = %id, "API token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::client(
            StatusCode::NOT_FOUND,
            "you have no API token with that id",
        ))
    }
}
