//! Compiles every `.proto` under `proto/` into Rust (prost messages, tonic
//! clients and servers) and writes the encoded descriptor set that gRPC
//! reflection serves. protox parses the protos in pure Rust, so a fresh
//! machine needs no `protoc`.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new("proto");
    let mut files = Vec::new();
    collect_protos(proto_root, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let descriptors = protox::compile(&files, [proto_root])?;

    // `compile_fds` does not write the descriptor set itself; reflection
    // needs it, so encode it here.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("todo_descriptor.bin"), descriptors.encode_to_vec())?;

    // Type names let the event codec find each message in the descriptor
    // pool for the proto3 JSON mapping.
    let mut prost_config = prost_build::Config::new();
    prost_config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(descriptors, prost_config)?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
