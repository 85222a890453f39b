//! Any decodable task event through the consumers' pure logic: the next
//! occurrence of a recurring task (calendar arithmetic on hostile
//! recurrences and dates) and the reminder plan. Errors are fine, panics
//! are not.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use todo_core::proto::v1::TaskEvent;

fuzz_target!(|input: &[u8]| {
    let Ok(event) = TaskEvent::decode(input) else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
    let _ = recurring_service::occurrence::next_occurrence(&event, now);
    let _ = reminder_service::plan::plan(&event, now, None);
    let _ = reminder_service::plan::plan(
        &event,
        now,
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
});
