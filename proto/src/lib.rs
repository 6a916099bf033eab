//! The gRPC contract of govtrust.
//!
//! The `.proto` files under `proto/govtrust/<service>/v1/` are the public contract; this crate
//! holds the Rust code tonic generates from them (with protox, so no system `protoc`), and the
//! encoded file descriptor set for the gRPC reflection service.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `govtrust.kms.v1`: the key-management centre and its seal.
pub mod kms {
    tonic::include_proto!("govtrust.kms.v1");
}

/// `govtrust.audit.v1`: the audit log.
pub mod audit {
    tonic::include_proto!("govtrust.audit.v1");
}

/// `govtrust.ca.v1`: the certificate authority.
pub mod ca {
    tonic::include_proto!("govtrust.ca.v1");
}

/// Encoded `FileDescriptorSet` of every govtrust service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
