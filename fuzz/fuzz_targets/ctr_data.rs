#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuselab_fuzz::ctr_data::run(data));
