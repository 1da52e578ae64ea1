//! Generates the remote-write protobuf types from proto/ with protox (a pure-Rust protobuf
//! compiler), so building needs no `protoc` on the machine or in the Nix sandbox.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/remote.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
