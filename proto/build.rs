// protox compiles the .proto in pure Rust, so a fresh machine needs no protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "ifa/v1/ifa.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
