//! Links the app's wasm with its relocations kept, which `wasm-split-cli` needs to cut it into the
//! shell and a part per page (`scripts/build-web.sh`). Only this crate: the workers' module is
//! not split, and relocations would triple its size.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-cdylib=--emit-relocs");
    }
}
