//! Any bytes as a chat or completion body: parsing and validation never
//! panic, and what they accept can be built into every backend's request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_core::BackendKind;
use modelgate_core::request::{Endpoint, parse};

fuzz_target!(|data: &[u8]| {
    for endpoint in [Endpoint::Chat, Endpoint::Completion] {
        if let Ok(req) = parse(endpoint, data) {
            assert!(req.choices >= 1);
            for kind in BackendKind::ALL {
                let _ = kind.supports(&req);
            }
        }
    }
});
