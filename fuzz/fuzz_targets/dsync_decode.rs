#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dsync_proto::fuzzing::decode(data));
