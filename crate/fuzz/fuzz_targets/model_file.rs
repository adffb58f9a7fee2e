//! `pocketrec::file` reading arbitrary bytes: it must return, never panic. The digest check is off
//! so that mutated tensor bytes reach the checks behind it (a mutation would otherwise stop at the
//! digest); it is on when a file written back is read again, which must give the same model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocketrec::file::{LoadOptions, from_bytes, from_bytes_with_options, to_bytes};

fuzz_target!(|data: &[u8]| {
    let _ = from_bytes(data);
    if let Ok(file) = from_bytes_with_options(data, LoadOptions { verify_digest: false }) {
        let bytes = to_bytes(&file.model, file.dtype, &file.provenance).expect("a loaded model writes");
        let again = from_bytes(&bytes).expect("a written model reads");
        assert_eq!(again.model.embedding, file.model.embedding);
    }
});
