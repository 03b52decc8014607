//! Embeds the built browser app (`frontend/dist`, made by `scripts/build-web.sh`) into the binary,
//! so `fuselab serve` needs no other files.

use std::{
    env,
    fmt::Write as _,
    fs,
    hash::Hasher as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// FNV-1a: a stable content hash for `ETag` headers (std's hasher is seeded per process).
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn main() -> ExitCode {
    println!("cargo:rerun-if-env-changed=FUSELAB_WEB_DIST");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = env::var_os("FUSELAB_WEB_DIST")
        .map_or_else(|| manifest.join("../frontend/dist"), PathBuf::from);
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if let Err(error) = collect(&dist, &mut files) {
        eprintln!(
            "error: the browser app is not built ({}: {error}).\n\
             Run `scripts/build-web.sh` first (it writes frontend/dist), or set FUSELAB_WEB_DIST.",
            dist.display()
        );
        return ExitCode::FAILURE;
    }
    if !dist.join("index.html").is_file() {
        eprintln!(
            "error: {} has no index.html; run `scripts/build-web.sh`.",
            dist.display()
        );
        return ExitCode::FAILURE;
    }
    files.sort();
    let mut code = String::from("&[\n");
    for file in &files {
        let bytes = fs::read(file).expect("listed just now");
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        hash.write(&bytes);
        let route = file
            .strip_prefix(&dist)
            .expect("below dist")
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(
            code,
            "    Asset {{ path: {:?}, mime: {:?}, etag: \"\\\"{:016x}\\\"\", bytes: include_bytes!({:?}) }},",
            format!("/{route}"),
            mime(file),
            hash.finish(),
            fs::canonicalize(file).expect("exists").display().to_string(),
        )
        .expect("writing to a String");
    }
    code.push_str("]\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("assets.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
    ExitCode::SUCCESS
}
