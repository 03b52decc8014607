//! The browser app, embedded at build time from `frontend/dist` (see `build.rs`).

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// URL path, e.g. `/index.html`.
    pub path: &'static str,
    /// Content type.
    pub mime: &'static str,
    /// Quoted strong `ETag` derived from the content.
    pub etag: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
}

/// Every file of the built browser app.
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset served at `path`; `/` is the app's `index.html`.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The gzipped twin of the asset at `path` (`scripts/build-web.sh` writes one for the files that
/// compress: wasm, scripts, styles, pages and SVG).
pub fn find_gzip(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    let twin = format!("{path}.gz");
    ASSETS.iter().find(|asset| asset.path == twin)
}
