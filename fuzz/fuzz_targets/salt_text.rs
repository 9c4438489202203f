//! Salt and version text: never a panic; a salt's URL-safe base64 form reads
//! back as the same bytes unless it also reads as hex (Python's order), and
//! its file text (`to_text`) always does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_manager::keystore::Version;
use secrets_manager::Salt;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let salt = Salt::from(text);
        let _ = salt.matches_hash(text);
        if let Ok(v) = Version::new(text) {
            // Lower-cased as Python's `str.lower` does (Unicode).
            assert_eq!(v.as_str(), text.to_lowercase());
            assert_eq!(Version::new(v.as_str()).unwrap(), v);
        }
        let _ = Version::from_setting(text);
    }
    let salt = Salt::from(data);
    let text = salt.to_base64url();
    let hexlike = text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if !hexlike {
        assert_eq!(Salt::from(text.as_str()), salt);
    }
    assert_eq!(Salt::from(salt.to_text().as_str()), salt);
});
