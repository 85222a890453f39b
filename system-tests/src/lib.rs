//! System tests live in `tests/`: each starts the real binaries on a
//! runtime and checks what a user can observe.
