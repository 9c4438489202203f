//! The one base64 dialect Fernet uses: URL-safe alphabet, `=` padding,
//! canonical on decode (no missing padding, no stray trailing bits).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

pub(crate) use base64::Engine;

pub(crate) const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(false),
);

/// Length of the padded encoding of `n` bytes, saturating.
pub(crate) const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}
