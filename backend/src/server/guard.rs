//! What every request passes through before the routes: the `Host` must be one of this server's
//! names (so a web page cannot rebind its own name to this address), a state-changing request
//! must not come from another site, and every answer carries the security headers.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{AppError, AppState};

/// The names a loopback server answers to when no `--public-url` is given.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The app's Content-Security-Policy: its own scripts, workers and WebAssembly, inline style
/// attributes (the plots and vote bars set some), images and videos from the page's own
/// `blob:` URLs (previews, downloads, the Pose page's clip), nothing framed and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob:; \
     media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// The host part (without port) of a `Host` header or an origin's authority, lower-cased.
fn host_name(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.starts_with('[') {
        // [::1]:8080 → [::1]
        return authority
            .split_once(']')
            .map_or(authority.clone(), |(host, _)| format!("{host}]"));
    }
    authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority.clone(), |(host, _)| host.to_owned())
}

/// The allowed host name of a public URL such as `https://fuselab.example.org:8443/`; `None`
/// when it is not an `http` or `https` URL with a host.
pub fn public_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    Some(host_name(authority)).filter(|host| !host.is_empty())
}

fn forbidden_host(host: &str) -> Response {
    AppError::client(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this server does not answer to the name `{}`; its operator adds it with \
             `fuselab serve --public-url URL`",
            host.chars().take(100).collect::<String>().escape_debug()
        ),
    )
    .into_response()
}

fn cross_site(why: &str) -> Response {
    AppError::client(
        StatusCode::FORBIDDEN,
        format!("cross-site request refused ({why})"),
    )
    .into_response()
}

/// Refuses requests for other host names (421) and state-changing requests from other sites
/// (403): `Sec-Fetch-Site` must be `same-origin` or `none`, and an `Origin` must name one of this
/// server's hosts. Requests without either header are not from a web page (curl, scripts) and
/// must still authenticate.
fn check(allowed: &[String], method: &Method, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let allowed_name = |name: &str| allowed.iter().any(|a| a == name);
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !allowed_name(&host_name(host)) {
            return Err(Box::new(forbidden_host(host)));
        }
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if safe {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if !matches!(site, "same-origin" | "none") {
            return Err(Box::new(cross_site(&format!("Sec-Fetch-Site: {site}"))));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let name = origin
            .split_once("://")
            .map(|(_, authority)| host_name(authority));
        if !name.is_some_and(|name| allowed_name(&name)) {
            return Err(Box::new(cross_site("Origin")));
        }
    }
    Ok(())
}

/// The middleware: the checks above, then the security headers on whatever the app answers.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = match check(&state.allowed_hosts, request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => *refused,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if state.tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_drop_ports_and_case() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("evil.example:80x"), "evil.example:80x");
        assert_eq!(
            public_host("https://Lab.Example.org:8443/fuselab").unwrap(),
            "lab.example.org"
        );
        assert!(public_host("ftp://x").is_none());
        assert!(public_host("https:///").is_none());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn foreign_hosts_and_cross_site_writes_are_refused() {
        let allowed: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect();
        let ok = |method: Method, pairs| check(&allowed, &method, &headers(pairs)).is_ok();
        assert!(ok(Method::GET, &[("host", "127.0.0.1:8080")]));
        assert!(!ok(Method::GET, &[("host", "rebound.example:8080")]));
        assert!(ok(
            Method::POST,
            &[("host", "localhost:1"), ("sec-fetch-site", "same-origin")]
        ));
        assert!(!ok(
            Method::POST,
            &[("host", "localhost:1"), ("sec-fetch-site", "cross-site")]
        ));
        assert!(!ok(
            Method::POST,
            &[("host", "localhost:1"), ("sec-fetch-site", "same-site")]
        ));
        assert!(!ok(Method::DELETE, &[("origin", "https://evil.example")]));
        assert!(!ok(Method::POST, &[("origin", "null")]));
        assert!(ok(Method::POST, &[("origin", "http://localhost:8080")]));
        assert!(ok(Method::POST, &[]));
        assert!(ok(Method::GET, &[("sec-fetch-site", "cross-site")]));
    }
}
