//! The application shell: the entry point, the header (pages, who is signed in) and the page
//! the address names.

use leptos::prelude::*;
use wasm_bindgen::prelude::wasm_bindgen;

use crate::{
    account, align, api, cofailure, ctr, ensembles, faces, gpu, home, pose, protect, route::Page,
    session, signin,
};

/// Entry point called by the JS glue once the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

#[wasm_bindgen(module = "/theme.js")]
extern "C" {
    #[wasm_bindgen(js_name = currentTheme)]
    fn current_theme() -> String;
    #[wasm_bindgen(js_name = chooseTheme)]
    fn choose_theme(theme: &str);
}

/// The colour theme: the system's, light or dark, remembered by this browser.
#[component]
fn ThemePicker() -> impl IntoView {
    let chosen = current_theme();
    let options = [
        ("system", "System theme"),
        ("light", "Light"),
        ("dark", "Dark"),
    ];
    view! {
        <select id="theme" aria-label="Colour theme" on:change=move |e| choose_theme(&event_target_value(&e))>
            {options.map(|(value, label)| view! {
                <option value=value selected=chosen == value>{label}</option>
            }).collect_view()}
        </select>
    }
}

/// The header with the navigation and the signed-in user, and the page of the address.
#[component]
fn App() -> impl IntoView {
    let page = Page::of(&window().location().pathname().unwrap_or_default());
    session::provide();
    fuselab_ui::provide_toasts();
    let current = |here: bool| if here { "page" } else { "false" };
    let nav = view! {
        <nav aria-label="Pages">
            <a href="/ensembles" aria-current=current(page == Page::Ensembles)>"Ensembles"</a>
            <a href="/faces" aria-current=current(page == Page::Faces)>"Faces"</a>
            <a href="/protect" aria-current=current(page == Page::Protect)>"Protect photos"</a>
            <a href="/align" aria-current=current(page == Page::Align)>"Alignment"</a>
            <a href="/ctr" aria-current=current(page == Page::Ctr)>"CTR"</a>
            <a href="/pose" aria-current=current(page == Page::Pose)>"Pose"</a>
        </nav>
    };
    let device = gpu::start();
    view! {
        <header>
            <div class="masthead">
                <h1><a class="brand" href="/" aria-current=current(page == Page::Home)>"fuselab"</a></h1>
                <div class="masthead-end">
                    <ThemePicker />
                    <session::UserMenu />
                </div>
            </div>
            {nav}
            <p class="tagline">
                "Focal-diversity ensembles, face-privacy masks, alignment fusion, CTR and video-pose studies, self-hosted."
            </p>
        </header>
        <main>
            <section class="status" aria-label="Status">
                <api::ServerStatus />
                <gpu::DeviceStatus device=device />
            </section>
            <Suspense fallback=|| view! { <p class="loading" role="status">"Loading the page…"</p> }>
                {move || Suspend::new(page_view(page.clone()))}
            </Suspense>
        </main>
        <fuselab_ui::ToastRegion />
    }
}

/// The page of the address. Each tool's page is a separate wasm chunk (`#[lazy]`, split off by
/// `wasm-split-cli` in `scripts/build-web.sh`), fetched when the address names it, so the first
/// load carries only the shell and the home page.
async fn page_view(page: Page) -> AnyView {
    match page {
        Page::Home => view! { <home::HomePage /> }.into_any(),
        Page::Saved(id) => saved_page(id).await,
        Page::Faces => faces_page().await,
        Page::Protect => protect_page().await,
        Page::Align => align_page().await,
        Page::Ctr => ctr_page().await,
        Page::Pose => pose_page().await,
        Page::SignIn => sign_in_page().await,
        Page::Account => account_page().await,
        Page::Ensembles => ensembles_page().await,
    }
}

#[lazy]
fn saved_page(id: String) -> AnyView {
    view! { <ensembles::SavedReportPage id=id /> }.into_any()
}

#[lazy]
fn faces_page() -> AnyView {
    view! { <faces::FacesPage /> }.into_any()
}

#[lazy]
fn protect_page() -> AnyView {
    view! { <protect::ProtectPage /> }.into_any()
}

#[lazy]
fn align_page() -> AnyView {
    view! { <align::AlignPage /> }.into_any()
}

#[lazy]
fn ctr_page() -> AnyView {
    view! { <ctr::CtrPage /> }.into_any()
}

#[lazy]
fn pose_page() -> AnyView {
    view! { <pose::PosePage /> }.into_any()
}

#[lazy]
fn sign_in_page() -> AnyView {
    view! { <signin::SignInPage /> }.into_any()
}

#[lazy]
fn account_page() -> AnyView {
    view! { <account::AccountPage /> }.into_any()
}

#[lazy]
fn ensembles_page() -> AnyView {
    view! {
        <ensembles::EnsemblesPage />
        <cofailure::CofailureTool />
    }
    .into_any()
}
