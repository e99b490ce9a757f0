#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailstore::fuzzing::clean_stamp(data));
