//! The embedded, durable, partitioned log.
//!
//! - [`record`]: what is stored: the CloudEvent of each published event,
//!   and jobs.
//! - [`store`]: the redb database: topics split into partitions, offsets per
//!   consumer group, jobs; every write goes through one writer thread that
//!   groups concurrent requests into one durable commit.
//! - [`retention`]: what is trimmed once every consumer group is past it,
//!   by size and age per partition.

pub mod record;
pub mod retention;
pub mod store;

pub use record::{StoredEvent, StoredJob};
pub use retention::Retention;
pub use store::{Log, LogError};
