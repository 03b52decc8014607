//! Every WGSL file in `shaders/` parses and validates with naga, without a GPU.

use std::path::Path;

#[test]
fn every_shader_validates() {
    for (name, source) in fuselab_shaders::ALL {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    }
}

/// A new `.wgsl` file must be registered in `fuselab_shaders::ALL`, or it would escape validation.
#[test]
fn every_file_is_registered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wgsl"))
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = fuselab_shaders::ALL
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    registered.sort();
    assert_eq!(on_disk, registered);
    for (name, source) in fuselab_shaders::ALL {
        assert_eq!(
            std::fs::read_to_string(dir.join(name)).unwrap(),
            *source,
            "{name}"
        );
    }
}
