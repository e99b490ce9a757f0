#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mutf7::fuzz_decode(data));
