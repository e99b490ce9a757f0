#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mailstore::fuzzing::dbox_file(data));
