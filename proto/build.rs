//! Generates the tonic code from the `.proto` files with protox: no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "govtrust/kms/v1/kms.proto",
        "govtrust/ca/v1/ca.proto",
        "govtrust/ca/v1/trust.proto",
        "govtrust/audit/v1/audit.proto",
        "govtrust/approval/v1/approval.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // The payloads of the hot encryption calls are `bytes::Bytes`: sliced from the receive
    // buffer instead of copied, and a request clone is a reference count. The server answers
    // plaintexts (Decrypt, GenerateDataKey) in `Bytes` that own a buffer wiped on drop.
    let mut config = tonic_prost_build::configure();
    for message in [
        "EncryptRequest",
        "EncryptResponse",
        "DecryptRequest",
        "DecryptResponse",
        "GenerateDataKeyResponse",
    ] {
        config = config.bytes(format!(".govtrust.kms.v1.{message}"));
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
