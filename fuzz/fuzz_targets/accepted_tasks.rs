//! Every task that validation accepts, through the whole path its events
//! take: task-api's event for it encodes in the wire format and decodes
//! back; recurring-service's next occurrence, when there is one, encodes
//! and task-api accepts it as a new task; reminder-service's job, and the
//! reminder each of its triggers publishes, encode. A value validation
//! accepts that fails anywhere later would fail every delivery of it
//! (poison a user can make at will); so here that is a crash, as a panic
//! is.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use task_api::{
    domain::validation::{REQUEST_FIELDS, TaskInput, new_task},
    operations::{occurrence_from_command, task_event},
};
use todo_core::{
    dapr::publisher::OutgoingEvent,
    events::{WIRE_FORMAT, decode, encode_wire},
    proto::v1::{CreateTaskRequest, TaskEvent},
};

fuzz_target!(|input: &[u8]| {
    let Ok(request) = CreateTaskRequest::decode(input) else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
    let fields = TaskInput::of_request(&request);
    let Ok(mut task) = new_task(uuid::Uuid::nil(), "fuzz-user", &fields, &REQUEST_FIELDS, now) else {
        return;
    };
    for event_type in ["task.created", "task.completed"] {
        task.completed = event_type == "task.completed";
        let event = task_event(&task, event_type, vec!["title"]);
        let wire = encode_wire(&event).expect("an accepted task's event has a wire form");
        let event: TaskEvent = decode(WIRE_FORMAT, &wire).expect("an event decodes as it was encoded");

        match recurring_service::occurrence::next_occurrence(&event, now) {
            Ok(Some(command)) => {
                OutgoingEvent::from_message(&command.event_id, &command.event_type, "fuzz-user", &command, None)
                    .expect("a next occurrence that is asked for has a wire form");
                occurrence_from_command(&command).expect("task-api accepts the occurrence a series asks for");
            }
            Ok(None) => {}
            Err(err) => panic!("an accepted task's completion is not poison: {err}"),
        }

        match reminder_service::plan::plan(&event, now, None) {
            Ok(Some(reminder_service::plan::Action::Schedule { at, repeat, job, .. })) => {
                let _ = reminder_service::plan::job_data(&job);
                let mut fires = vec![at];
                if let Some(repeat) = repeat {
                    fires.push(at + repeat.every);
                }
                for fired in fires {
                    let reminder = reminder_service::plan::reminder_event(&job, fired)
                        .expect("a scheduled job yields its reminder");
                    encode_wire(&reminder).expect("a reminder has a wire form");
                }
            }
            Ok(_) => {}
            Err(err) => panic!("an accepted task's event is not poison to reminders: {err}"),
        }
    }
});
