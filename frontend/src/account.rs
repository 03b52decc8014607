//! The account page (`/account`): change one's password, and the API tokens (for
//! `Authorization: Bearer <token>`): list, create (the secret is shown once, with a copy
//! button), revoke.

use fuselab_shared::api::{CreatedToken, Role};
use leptos::prelude::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::{
    access::{self, Access},
    api::{self, local_time},
    session::{Auth, SignedIn, use_auth},
};

/// The page.
#[component]
pub fn AccountPage() -> impl IntoView {
    let auth = use_auth();
    let who = move || match auth.access() {
        Some(Access::User(user)) => format!(
            "Signed in as {}{}.",
            user.name,
            match (user.role, user.can_train) {
                (Role::Admin, _) => " (administrator)",
                (Role::User, true) => " (may start training runs)",
                (Role::User, false) => "",
            }
        ),
        _ => String::new(),
    };
    let open = move || auth.access() == Some(Access::Open);
    view! {
        <section id="account" class="tool" aria-labelledby="account-title">
            <h2 id="account-title">"Account"</h2>
            <Show
                when=open
                fallback=move || view! {
                    <SignedIn what="manage your account">
                        <p id="account-user">{who}</p>
                        <PasswordForm />
                        <Tokens auth=auth />
                    </SignedIn>
                }
            >
                <p class="note">"This server runs without accounts: there are no passwords or tokens to manage."</p>
            </Show>
        </section>
    }
}

/// Current password, the new one twice.
#[component]
fn PasswordForm() -> impl IntoView {
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let repeated = RwSignal::new(String::new());
    let outcome = RwSignal::new(None::<Result<&'static str, String>>);
    let submit = move |event: web_sys::SubmitEvent| {
        event.prevent_default();
        let body = match access::change_password(
            &current.get_untracked(),
            &new.get_untracked(),
            &repeated.get_untracked(),
        ) {
            Ok(body) => body,
            Err(problem) => return outcome.set(Some(Err(problem.to_string()))),
        };
        outcome.set(None);
        leptos::task::spawn_local(async move {
            // Not `auth.watch`: here a 401 means a wrong current password, not an ended session.
            let sent = api::change_password(&body).await;
            outcome.set(Some(match sent {
                Ok(()) => {
                    for field in [current, new, repeated] {
                        field.set(String::new());
                    }
                    Ok("Your password is changed.")
                }
                Err(failure) => Err(failure.to_string()),
            }));
        });
    };
    let field =
        |id: &'static str, label: &'static str, complete: &'static str, value: RwSignal<String>| {
            view! {
                <label for=id>{label}</label>
                <input id=id type="password" autocomplete=complete prop:value=move || value.get()
                    on:input=move |e| value.set(event_target_value(&e)) />
            }
        };
    view! {
        <h3>"Password"</h3>
        <form id="password-form" on:submit=submit>
            {field("password-current", "Current password", "current-password", current)}
            {field("password-new", "New password (at least 8 characters)", "new-password", new)}
            {field("password-repeat", "New password again", "new-password", repeated)}
            <div class="actions">
                <button id="password-change" type="submit">"Change password"</button>
            </div>
            {move || outcome.get().map(|o| match o {
                Ok(text) => view! { <p id="password-status" role="status">{text}</p> }.into_any(),
                Err(text) => view! { <p id="password-status" class="error" role="alert">{text}</p> }.into_any(),
            })}
        </form>
    }
}

/// Copies `text` to the clipboard.
async fn copy(text: String) -> Result<(), JsValue> {
    JsFuture::from(window().navigator().clipboard().write_text(&text))
        .await
        .map(drop)
}

/// The user's API tokens: the list with Revoke, and a form for a new one.
#[component]
fn Tokens(auth: Auth) -> impl IntoView {
    // Counts changes, so the list reloads after one.
    let version = RwSignal::new(0_u32);
    let tokens = LocalResource::new(move || {
        version.track();
        async move { auth.watch(api::tokens().await) }
    });
    let name = RwSignal::new(String::new());
    let created = RwSignal::new(None::<Result<CreatedToken, String>>);
    let copied = RwSignal::new(false);
    let create = move |event: web_sys::SubmitEvent| {
        event.prevent_default();
        let body = match access::new_token(&name.get_untracked()) {
            Ok(body) => body,
            Err(problem) => return created.set(Some(Err(problem.to_string()))),
        };
        copied.set(false);
        leptos::task::spawn_local(async move {
            let answer = api::create_token(&body).await;
            let answer = auth.watch(answer).map_err(|f| f.to_string());
            if answer.is_ok() {
                name.set(String::new());
            }
            created.set(Some(answer));
            version.update(|v| *v += 1);
        });
    };
    let revoke = move |id: String| {
        leptos::task::spawn_local(async move {
            let gone = api::revoke_token(&id).await;
            if let Err(failure) = auth.watch(gone) {
                leptos::logging::error!("revoking a token: {failure}");
            }
            if matches!(created.get_untracked(), Some(Ok(ref t)) if t.info.id == id) {
                created.set(None);
            }
            version.update(|v| *v += 1);
        });
    };
    let secret = move || {
        created.get().map(|result| match result {
            Ok(token) => {
                let text = token.token.clone();
                let click = move |_| {
                    let text = text.clone();
                    leptos::task::spawn_local(async move {
                        match copy(text).await {
                            Ok(()) => copied.set(true),
                            Err(error) => leptos::logging::error!("copying the token: {error:?}"),
                        }
                    });
                };
                view! {
                    <div id="token-created" class="token-created" role="status">
                        <p>{format!("Your new token “{}”:", token.info.name)}</p>
                        <p><code id="token-secret">{token.token.clone()}</code></p>
                        <div class="actions">
                            <button id="token-copy" class="secondary" on:click=click>
                                {move || if copied.get() { "Copied" } else { "Copy" }}
                            </button>
                        </div>
                        <p class="note">
                            "Copy it now: it is shown only this once, and the server keeps only a hash of
                            it. Programs send it as "<code>"Authorization: Bearer <token>"</code>"; revoke
                            it here when it is no longer needed or may have leaked."
                        </p>
                    </div>
                }
                .into_any()
            }
            Err(text) => view! { <p id="token-error" class="error" role="alert">{text}</p> }.into_any(),
        })
    };
    view! {
        <h3>"API tokens"</h3>
        <p class="note">
            "Programs use a token instead of your password, with the same rights as you. Each can be
            revoked on its own."
        </p>
        <form id="token-form" on:submit=create>
            <label for="token-name">"Name of a new token"</label>
            <input id="token-name" placeholder="e.g. laptop scripts" prop:value=move || name.get()
                on:input=move |e| name.set(event_target_value(&e)) />
            <div class="actions">
                <button id="token-create" type="submit">"Create token"</button>
            </div>
        </form>
        {secret}
        <Suspense fallback=|| view! { <p class="note">"Loading…"</p> }>
            {move || tokens.get().map(|result| match result {
                Err(failure) => view! { <p class="note">{format!("Tokens are unavailable: {failure}")}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="empty" id="tokens-empty">"No tokens yet."</p> }.into_any(),
                Ok(list) => view! {
                    <div class="table-wrap" tabindex="0">
                        <table id="tokens">
                            <thead><tr><th>"name"</th><th>"created"</th><th>"last used"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|t| {
                                    let id = t.id.clone();
                                    view! {
                                        <tr data-id=t.id.clone()>
                                            <td>{t.name}</td>
                                            <td>{local_time(t.created)}</td>
                                            <td>{t.last_used.map_or_else(|| "never".to_owned(), local_time)}</td>
                                            <td><button class="secondary" on:click=move |_| revoke(id.clone())>"Revoke"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
            })}
        </Suspense>
    }
}
