//! Types generated from `proto/` by `build.rs`.

/// The `todo.v1` package: tasks, events and the three public services.
pub mod todo {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("todo.v1");
    }
}

pub use todo::v1;

/// Encoded `FileDescriptorSet` of every proto under `proto/` (with imports),
/// for gRPC server reflection and for the proto3 JSON mapping.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/todo_descriptor.bin"));

/// Encoded `FileDescriptorSet` of the Dapr protos the `dapr` crate was
/// generated from (empty if `build.rs` could not find it), so reflection can
/// describe `dapr.proto.runtime.v1.Dapr` and `AppCallback`.
pub const DAPR_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dapr_descriptor.bin"));
