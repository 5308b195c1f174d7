//! Generates the Rust code of every proto package and the file descriptor set
//! that server reflection serves, with no system `protoc`.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "tradewatch/common/v1/common.proto",
    "tradewatch/tariff/v1/tariff.proto",
    "tradewatch/dispute/v1/dispute.proto",
    "tradewatch/dialogue/v1/dialogue.proto",
    "tradewatch/relations/v1/relations.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(PROTOS, [&root])?;
    fs::write(out.join("tradewatch_descriptor.bin"), fds.encode_to_vec())?;

    // google.api.field_behavior is an option for other tools: its code is
    // not needed here, and its comments carry examples rustdoc would run.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .disable_comments([".google.api"])
        .compile_fds(fds)?;
    Ok(())
}
