//! The opaque page token of ListTasks: the sort key of the last row served,
//! plus the filters it was served under, so a token cannot be replayed with
//! different filters (that would skip or repeat rows silently).

use serde::{Deserialize, Serialize};

use super::listing::{Cursor, ListFilter, Order};
use crate::domain::validation::{ValidationError, invalid};

#[derive(Serialize, Deserialize)]
struct Token {
    order: Order,
    cursor: Cursor,
    filter: ListFilter,
}

pub fn encode(order: Order, cursor: Cursor, filter: &ListFilter) -> String {
    todo_core::pagination::encode(&Token {
        order,
        cursor,
        filter: filter.clone(),
    })
}

/// Reads a token; it must come from the same order and filters.
pub fn decode(text: &str, order: Order, filter: &ListFilter) -> Result<Cursor, ValidationError> {
    let token: Token = todo_core::pagination::decode(text).map_err(|err| invalid("page_token", err.0))?;
    if token.order != order || token.filter != *filter {
        return Err(invalid(
            "page_token",
            "was issued for a different order or different filters",
        ));
    }
    // Every stored time is within a protobuf Timestamp's range; a cursor
    // outside it was not issued here (and PostgreSQL may not take it).
    let cursor = token.cursor;
    if !todo_core::timestamps::representable(cursor.created_at)
        || cursor
            .due_at
            .is_some_and(|due| !todo_core::timestamps::representable(due))
    {
        return Err(invalid("page_token", "not a token this API issued"));
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn tokens_round_trip_and_are_tied_to_filters() {
        let filter = ListFilter {
            tag: Some("home".into()),
            ..Default::default()
        };
        let cursor = Cursor {
            created_at: Utc::now(),
            due_at: None,
            id: Uuid::new_v4(),
        };
        let token = encode(Order::CreatedDesc, cursor.clone(), &filter);
        assert_eq!(decode(&token, Order::CreatedDesc, &filter).unwrap(), cursor);
        assert!(decode(&token, Order::DueAsc, &filter).is_err());
        assert!(decode(&token, Order::CreatedDesc, &ListFilter::default()).is_err());
        assert!(decode("garbage!", Order::CreatedDesc, &filter).is_err());
        // A time PostgreSQL cannot store (before 4713 BC) is refused here,
        // not by the database as an internal error.
        let ancient = Cursor {
            created_at: chrono::DateTime::from_timestamp(-200_000_000_000, 0).unwrap(),
            ..cursor
        };
        let forged = encode(Order::CreatedDesc, ancient, &filter);
        assert!(decode(&forged, Order::CreatedDesc, &filter).is_err());
    }
}
