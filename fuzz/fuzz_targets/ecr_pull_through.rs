#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::ecr_pull_through(data));
