//! Page sizes, opaque page tokens and the task filter, the same for every
//! list RPC.
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

/// The most a page's items may add up to: a quarter of the 4 MiB a gRPC
/// client takes in one message by default, so a page of the largest items
/// still reaches every client.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// Cuts `rows` (fetched one past the page size, to learn whether more
/// follow) to a page: at most `page_size` rows and [`MAX_PAGE_BYTES`] by
/// `size_of`, but never empty. True when rows are left for a next page.
pub fn fit_page<T>(rows: &mut Vec<T>, page_size: usize, size_of: impl Fn(&T) -> usize) -> bool {
    let mut bytes = 0;
    let mut keep = 0;
    for row in rows.iter().take(page_size) {
        bytes += size_of(row);
        if keep > 0 && bytes > MAX_PAGE_BYTES {
            break;
        }
        keep += 1;
    }
    let more = rows.len() > keep;
    rows.truncate(keep);
    more
}

/// Longest `task_id` filter accepted (task ids are UUIDs).
const MAX_TASK_ID_FILTER_LEN: usize = 64;

/// A list's optional `task_id` filter: trimmed, empty means none; bounded,
/// and without control characters (PostgreSQL's text cannot hold NUL).
pub fn task_id_filter(value: &str) -> Result<Option<String>, String> {
    let trimmed = value.trim();
    if trimmed.len() > MAX_TASK_ID_FILTER_LEN {
        return Err(format!("task_id: at most {MAX_TASK_ID_FILTER_LEN} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("task_id: must not contain control characters".to_owned());
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
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

    #[test]
    fn task_id_filters_are_bounded_and_storable() {
        assert_eq!(task_id_filter("  "), Ok(None));
        assert_eq!(task_id_filter(" abc "), Ok(Some("abc".to_owned())));
        assert!(task_id_filter(&"a".repeat(65)).is_err());
        assert!(task_id_filter("a\0b").is_err());
    }

    #[test]
    fn pages_are_cut_by_count_and_by_bytes_but_never_empty() {
        let mut rows = vec![10; 6];
        assert!(fit_page(&mut rows, 5, |size| *size));
        assert_eq!(rows.len(), 5);
        let mut rows = vec![10; 5];
        assert!(!fit_page(&mut rows, 5, |size| *size));
        assert_eq!(rows.len(), 5);
        let mut large = vec![MAX_PAGE_BYTES / 3; 10];
        assert!(fit_page(&mut large, 500, |size| *size));
        assert_eq!(large.len(), 3);
        let mut huge = vec![2 * MAX_PAGE_BYTES; 2];
        assert!(fit_page(&mut huge, 500, |size| *size));
        assert_eq!(huge.len(), 1, "one row even past the limit");
    }
}
