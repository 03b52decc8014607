//! Addresses: which page a path shows, and the sign-in page's way back (`/signin?next=…`).
//!
//! Plain logic, compiled natively too, so its unit tests run without a browser.

use std::fmt::Write as _;

/// The pages, by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/`: what each tool does, with a way into each.
    Home,
    /// `/ensembles`: the ensemble tools.
    Ensembles,
    /// `/faces`: face detection and comparison in the browser.
    Faces,
    /// `/protect`: photo protection with a personal mask, and creating the mask.
    Protect,
    /// `/align`: harmful fine-tuning runs on the server.
    Align,
    /// `/ctr`: click-through-rate benchmarks on the server.
    Ctr,
    /// `/pose`: body keypoints in a clip, in the browser.
    Pose,
    /// `/signin`: the sign-in form.
    SignIn,
    /// `/account`: the signed-in user's password and API tokens.
    Account,
    /// `/reports/{id}`: a saved report.
    Saved(String),
}

impl Page {
    /// The page at `path` (the address without its query); unknown paths show the home page.
    pub fn of(path: &str) -> Self {
        if let Some(id) = path.strip_prefix("/reports/") {
            return Self::Saved(id.trim_end_matches('/').to_owned());
        }
        match path.trim_end_matches('/') {
            "/ensembles" => Self::Ensembles,
            "/faces" => Self::Faces,
            "/protect" => Self::Protect,
            "/align" => Self::Align,
            "/ctr" => Self::Ctr,
            "/pose" => Self::Pose,
            SIGN_IN => Self::SignIn,
            "/account" => Self::Account,
            _ => Self::Home,
        }
    }
}

/// The sign-in page's path.
const SIGN_IN: &str = "/signin";

/// The sign-in page's address that comes back to `here` (a path with its query) afterwards.
pub fn sign_in_href(here: &str) -> String {
    let mut href = format!("{SIGN_IN}?next=");
    for byte in here.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            href.push(char::from(byte));
        } else {
            let _ = write!(href, "%{byte:02X}");
        }
    }
    href
}

/// Where to go after signing in: the `next` parameter of the sign-in page's `query` (with or
/// without its `?`) when it is a path on this site, else `/`. Another site's address
/// (`https://…`, `//host`, `/\host`), a `javascript:` URL, control characters and the sign-in
/// page itself all give `/`, so a crafted link cannot send a user elsewhere after signing in.
pub fn next_after_sign_in(query: &str) -> String {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("next="))
        .and_then(percent_decode)
        .filter(|next| is_local_path(next))
        .unwrap_or_else(|| "/".to_owned())
}

/// A path on this site that is not the sign-in page.
fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !path.chars().any(char::is_control)
        && Page::of(path.split(['?', '#']).next().unwrap_or(path)) != Page::SignIn
}

/// A query value's text: `%XX` escapes decoded as UTF-8 and `+` as a space; `None` when an
/// escape is malformed or the bytes are not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.bytes();
    while let Some(byte) = rest.next() {
        bytes.push(match byte {
            b'%' => {
                let high = char::from(rest.next()?).to_digit(16)?;
                let low = char::from(rest.next()?).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()?
            }
            b'+' => b' ',
            other => other,
        });
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_pages() {
        assert_eq!(Page::of("/"), Page::Home);
        assert_eq!(Page::of("/ensembles/"), Page::Ensembles);
        assert_eq!(Page::of("/faces"), Page::Faces);
        assert_eq!(Page::of("/protect/"), Page::Protect);
        assert_eq!(Page::of("/align"), Page::Align);
        assert_eq!(Page::of("/ctr/"), Page::Ctr);
        assert_eq!(Page::of("/pose"), Page::Pose);
        assert_eq!(Page::of("/signin"), Page::SignIn);
        assert_eq!(Page::of("/account"), Page::Account);
        assert_eq!(Page::of("/reports/ab12/"), Page::Saved("ab12".into()));
        assert_eq!(Page::of("/nowhere"), Page::Home);
    }

    #[test]
    fn the_way_back_survives_the_round_trip() {
        for here in ["/", "/align", "/reports/0f3a", "/protect?x=1&y=2", "/a b/ü"] {
            let href = sign_in_href(here);
            let query = href.strip_prefix("/signin").unwrap();
            assert_eq!(next_after_sign_in(query), here, "{href}");
        }
        assert_eq!(
            sign_in_href("/align?a=1&b"),
            "/signin?next=/align%3Fa%3D1%26b"
        );
    }

    #[test]
    fn next_is_read_among_other_parameters() {
        assert_eq!(next_after_sign_in("?a=1&next=%2Faccount&b=2"), "/account");
        assert_eq!(next_after_sign_in("next=/faces"), "/faces");
        assert_eq!(next_after_sign_in(""), "/");
        assert_eq!(next_after_sign_in("?other=/faces"), "/");
    }

    #[test]
    fn next_never_leaves_the_site() {
        for query in [
            "?next=https://evil.example/",
            "?next=//evil.example/",
            "?next=%2F%2Fevil.example",
            "?next=/%5Cevil.example",
            "?next=/\\evil.example",
            "?next=javascript:alert(1)",
            "?next=evil",
            "?next=/%0D%0ASet-Cookie:x",
            "?next=/%ZZ",
            "?next=/%C3",
            "?next=/signin",
            "?next=/signin%3Fnext%3D/align",
        ] {
            assert_eq!(next_after_sign_in(query), "/", "{query}");
        }
    }
}
