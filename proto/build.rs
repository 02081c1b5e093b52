//! protox compiles the .proto in pure Rust, so a fresh machine needs no protoc.
//!
//! Two passes over the same descriptors: messages and the client with the
//! stock codec, then the server alone (messages taken from the first pass)
//! with `crate::codec::RequestCodec`, which answers undecodable requests
//! INVALID_ARGUMENT. The encoded descriptors are kept for server reflection.
use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "ifa/v1/ifa.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ifa_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds.clone())?;
    let server = out.join("server");
    std::fs::create_dir_all(&server)?;
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".ifa.v1", "crate::v1")
        .codec_path("crate::codec::RequestCodec")
        .out_dir(&server)
        .compile_fds(fds)?;
    Ok(())
}
