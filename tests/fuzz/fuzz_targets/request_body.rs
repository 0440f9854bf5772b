#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenant_jwt::fuzzing::request_body(data));
