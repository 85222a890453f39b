//! Page sizes and opaque page tokens, the same for every list RPC.
//!
//! A token is the URL-safe base64 of a JSON cursor that the service defines
//! (typically the sort key of the last row served plus the filters it was
//! served under). Clients treat it as opaque; a token that does not decode
//! into the service's cursor type is INVALID_ARGUMENT, never a panic.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

/// Longest token accepted; real ones are well under this.
const MAX_TOKEN_LEN: usize = 4096;

/// A page token this API did not issue (or issued for other filters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("page_token: {0}")]
pub struct InvalidPageToken(pub &'static str);

pub fn encode<C: Serialize>(cursor: &C) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).expect("cursors serialize"))
}

pub fn decode<C: DeserializeOwned>(token: &str) -> Result<C, InvalidPageToken> {
    let bad = InvalidPageToken("not a token this API issued");
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad.clone())?;
    serde_json::from_slice(&bytes).map_err(|_| bad)
}

/// A requested page size: 0 means `default`, otherwise 1 to `max`.
pub fn page_size(requested: i32, default: i32, max: i32) -> Result<i64, String> {
    match requested {
        0 => Ok(i64::from(default)),
        n if (1..=max).contains(&n) => Ok(i64::from(n)),
        _ => Err(format!("page_size: must be between 1 and {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = encode(&(42_i64, "x".to_owned()));
        assert_eq!(decode::<(i64, String)>(&token).unwrap(), (42, "x".to_owned()));
        assert!(decode::<(i64, String)>("!!!").is_err());
        assert!(decode::<(i64, String)>(&encode(&"other shape")).is_err());
        assert!(decode::<(i64, String)>(&"A".repeat(5000)).is_err());
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(0, 50, 500), Ok(50));
        assert_eq!(page_size(500, 50, 500), Ok(500));
        assert!(page_size(501, 50, 500).is_err());
        assert!(page_size(-3, 50, 500).is_err());
    }
}
