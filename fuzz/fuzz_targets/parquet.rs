#![no_main]

// `align::data` contains the panics of the parquet crate's page decoders (they assert on corrupt
// pages) with `catch_unwind` and reports them as errors. libFuzzer's hook would abort on those
// caught panics, so it is replaced by the default one: a panic that escapes the target still
// aborts (libfuzzer-sys catches the unwind and aborts), which is what counts as a finding.
libfuzzer_sys::fuzz_target!(
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| fuselab_fuzz::parquet::run(data)
);
