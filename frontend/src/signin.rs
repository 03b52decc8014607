//! The sign-in page (`/signin?next=/path`): name and password, the server's message when they
//! are wrong (or when it asks to wait), and back to `next` once signed in.

use leptos::prelude::*;

use crate::{
    access::{self, Access},
    api,
    route::next_after_sign_in,
    session::use_auth,
};

/// The page.
#[component]
pub fn SignInPage() -> impl IntoView {
    let auth = use_auth();
    let next = next_after_sign_in(&window().location().search().unwrap_or_default());
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let target = next.clone();
    let submit = move |event: web_sys::SubmitEvent| {
        event.prevent_default();
        let body = match access::sign_in(&name.get_untracked(), &password.get_untracked()) {
            Ok(body) => body,
            Err(form) => return problem.set(Some(form.to_string())),
        };
        busy.set(true);
        problem.set(None);
        let target = target.clone();
        leptos::task::spawn_local(async move {
            let answer = api::sign_in(&body).await;
            match answer {
                Ok(session) => {
                    auth.set(session);
                    if let Err(error) = window().location().assign(&target) {
                        leptos::logging::error!("cannot go to {target}: {error:?}");
                    }
                }
                Err(failure) => {
                    problem.set(Some(failure.to_string()));
                    password.set(String::new());
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <section id="signin" class="tool" aria-labelledby="signin-title">
            <h2 id="signin-title">"Sign in"</h2>
            {move || match auth.access() {
                Some(Access::User(user)) if !busy.get() => view! {
                    <p id="signin-already">
                        {format!("You are signed in as {}. ", user.name)}
                        <a href=next.clone()>"Continue"</a>
                    </p>
                }.into_any(),
                Some(Access::Open) => view! {
                    <p class="note">"This server runs without accounts: there is nothing to sign in to."</p>
                }.into_any(),
                _ => ().into_any(),
            }}
            <form class="signin-form" on:submit=submit>
                <label for="signin-name">"User name"</label>
                <input id="signin-name" name="username" autocomplete="username" required
                    prop:value=move || name.get() on:input=move |e| name.set(event_target_value(&e)) />
                <label for="signin-password">"Password"</label>
                <input id="signin-password" name="password" type="password" autocomplete="current-password" required
                    prop:value=move || password.get() on:input=move |e| password.set(event_target_value(&e)) />
                <div class="actions">
                    <button id="signin-submit" type="submit" prop:disabled=move || busy.get()>"Sign in"</button>
                </div>
                {move || problem.get().map(|text| view! { <p id="signin-error" class="error" role="alert">{text}</p> })}
            </form>
            <p class="note">
                "Accounts are made by this server's administrator ("<code>"fuselab users add"</code>"). \
                 Without one you can still use every tool that runs in this browser."
            </p>
        </section>
    }
}
