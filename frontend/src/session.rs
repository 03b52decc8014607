//! Who this browser is: `GET /api/session` once per page load, shared by the pages as a context
//! ([`Auth`]); the header's "Sign in" link or user name with Sign out; and the "Sign in to …"
//! prompt that takes the place of whatever needs the server's storage or computation.

use fuselab_shared::api::Session;
use leptos::prelude::*;

use crate::{
    access::{Access, Failure},
    api,
    route::{Page, sign_in_href},
};

/// The session, once known (a context provided by the app shell).
#[derive(Debug, Clone, Copy)]
pub struct Auth {
    session: RwSignal<Option<Session>>,
    access: Memo<Option<Access>>,
}

/// The session of a visitor who is not signed in.
const ANONYMOUS: Session = Session {
    user: None,
    auth_required: true,
};

impl Auth {
    /// What the visitor may do; `None` until `GET /api/session` answered.
    pub fn access(self) -> Option<Access> {
        self.access.get()
    }

    /// [`Self::access`] without subscribing to changes: for code run once, or inside a
    /// component that [`SignedIn`] recreates on a change anyway.
    pub fn access_untracked(self) -> Option<Access> {
        self.access.get_untracked()
    }

    /// A new session (signed in or out).
    pub fn set(self, session: Session) {
        self.session.set(Some(session));
    }

    /// Passes `result` on; a 401 in it means the session expired, and the pages show the
    /// sign-in prompt instead of what needed it.
    pub fn watch<T>(self, result: Result<T, Failure>) -> Result<T, Failure> {
        if let Err(failure) = &result
            && failure.needs_sign_in()
        {
            self.expired();
        }
        result
    }

    /// The server said the session expired (or never was).
    pub fn expired(self) {
        self.set(ANONYMOUS);
    }
}

/// Asks the server who this browser is and provides the answer to every component.
pub fn provide() {
    let session = RwSignal::new(None);
    let access = Memo::new(move |_| session.get().as_ref().map(Access::of));
    let auth = Auth { session, access };
    provide_context(auth);
    leptos::task::spawn_local(async move {
        let known = api::session().await;
        auth.set(known.unwrap_or_else(|failure| {
            leptos::logging::warn!("who is signed in is unknown ({failure}); acting as anonymous");
            ANONYMOUS
        }));
    });
}

/// The session of the app shell.
pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// This page's path and query, to come back to after signing in.
fn here() -> String {
    let location = window().location();
    let path = location.pathname().unwrap_or_default();
    path + &location.search().unwrap_or_default()
}

/// The header's part: "Sign in", or the user's name (their account page) and Sign out. A
/// server without accounts shows neither.
#[component]
pub fn UserMenu() -> impl IntoView {
    let auth = use_auth();
    let on_sign_in_page =
        Page::of(&window().location().pathname().unwrap_or_default()) == Page::SignIn;
    let sign_out = move |_| {
        leptos::task::spawn_local(async move {
            match api::sign_out().await {
                Ok(()) | Err(Failure::SignIn(_)) => auth.expired(),
                Err(failure) => leptos::logging::error!("signing out: {failure}"),
            }
        });
    };
    view! {
        <div id="user-menu" class="user-menu">
            {move || match auth.access() {
                None | Some(Access::Open) => ().into_any(),
                Some(Access::Anonymous) if on_sign_in_page => ().into_any(),
                Some(Access::Anonymous) => view! {
                    <a id="sign-in-link" href=sign_in_href(&here())>"Sign in"</a>
                }.into_any(),
                Some(Access::User(user)) => view! {
                    <a id="user-name" href="/account" title="Your account">{user.name}</a>
                    <button id="sign-out" class="link" on:click=sign_out>"Sign out"</button>
                }.into_any(),
            }}
        </div>
    }
}

/// A link to the sign-in page that comes back here: "Sign in to {what}".
#[component]
pub fn SignInPrompt(what: &'static str) -> impl IntoView {
    view! {
        <p class="sign-in-prompt">
            <a class="sign-in" href=sign_in_href(&here())>{format!("Sign in to {what}")}</a>
        </p>
    }
}

/// `children` for a visitor the server stores and computes for; the sign-in prompt for `what`
/// otherwise (and nothing while the session is being asked for).
#[component]
pub fn SignedIn(what: &'static str, children: ChildrenFn) -> impl IntoView {
    let auth = use_auth();
    move || match auth.access() {
        None => ().into_any(),
        Some(access) if access.uses_server() => children().into_any(),
        Some(_) => view! { <SignInPrompt what=what /> }.into_any(),
    }
}
