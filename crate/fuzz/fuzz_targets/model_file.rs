//! `pocketrec::file::from_bytes` on arbitrary bytes: it must return, never panic. When a file is
//! accepted, writing it back in its own dtype must give a file that reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocketrec::file::{from_bytes, to_bytes};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = from_bytes(data) {
        let bytes = to_bytes(&file.model, file.dtype, &file.provenance).expect("a loaded model writes");
        let again = from_bytes(&bytes).expect("a written model reads");
        assert_eq!(again.model.embedding, file.model.embedding);
    }
});
