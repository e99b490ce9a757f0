#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dsync_core::fuzzing::maildir_listing_cache(data));
