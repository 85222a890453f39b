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
    copy_dapr_descriptor_set(&out_dir)?;

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

/// The `dapr` crate generates its tonic types ahead of time and ships their
/// descriptor set (`src/dapr/types.bin`) without exporting it. Reflection of
/// the Dapr API (dev-sidecar, and AppCallback on every consumer, so grpcurl
/// can call them) needs it, so find the crate's sources the way Cargo laid
/// them out: the registry under `CARGO_HOME`, or a `vendor/` directory, at
/// the version `Cargo.lock` resolved. Without it, reflection simply omits
/// the Dapr services.
fn copy_dapr_descriptor_set(out_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let target = out_dir.join("dapr_descriptor.bin");
    let version = fs::read_to_string("Cargo.lock").ok().and_then(|lock| {
        let mut lines = lock.lines();
        while let Some(line) = lines.next() {
            if line == "name = \"dapr\"" {
                return lines
                    .next()
                    .and_then(|v| v.strip_prefix("version = \""))
                    .map(|v| v.trim_end_matches('"').to_owned());
            }
        }
        None
    });
    let mut candidates = Vec::new();
    if let Some(version) = &version {
        let dir_name = format!("dapr-{version}");
        candidates.push(PathBuf::from("vendor").join(&dir_name));
        candidates.push(PathBuf::from("vendor").join("dapr"));
        let cargo_home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
        if let Some(registry) = cargo_home.map(|home| home.join("registry").join("src"))
            && let Ok(indexes) = fs::read_dir(registry)
        {
            for index in indexes.flatten() {
                candidates.push(index.path().join(&dir_name));
            }
        }
    }
    match candidates
        .iter()
        .map(|dir| dir.join("src").join("dapr").join("types.bin"))
        .find(|path| path.is_file())
    {
        Some(found) => {
            println!("cargo:rerun-if-changed={}", found.display());
            fs::copy(found, &target)?;
        }
        None => {
            println!("cargo:warning=dapr descriptor set not found; reflection will not list the Dapr API");
            fs::write(&target, [])?;
        }
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    Ok(())
}
