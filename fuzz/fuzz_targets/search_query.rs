#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dsync_core::fuzzing::search_query(data));
