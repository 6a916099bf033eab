//! The gRPC contract of govtrust.
//!
//! The `.proto` files under `proto/govtrust/<service>/v1/` are the public contract; this crate
//! holds the Rust code tonic generates from them (with protox, so no system `protoc`), and the
//! encoded file descriptor set for the gRPC reflection service.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The generated code, nested as the packages are (`govtrust.<service>.v1`), so that messages
/// of one package can name another's.
pub mod govtrust {
    pub mod kms {
        pub mod v1 {
            tonic::include_proto!("govtrust.kms.v1");
        }
    }
    pub mod audit {
        pub mod v1 {
            tonic::include_proto!("govtrust.audit.v1");
        }
    }
    pub mod ca {
        pub mod v1 {
            tonic::include_proto!("govtrust.ca.v1");
        }
    }
    pub mod approval {
        pub mod v1 {
            tonic::include_proto!("govtrust.approval.v1");
        }
    }
}

/// `govtrust.kms.v1`: the key-management centre and its seal.
pub use govtrust::kms::v1 as kms;

/// `govtrust.audit.v1`: the audit log.
pub use govtrust::audit::v1 as audit;

/// `govtrust.ca.v1`: the certificate authority.
pub use govtrust::ca::v1 as ca;

/// `govtrust.approval.v1`: dual control.
pub use govtrust::approval::v1 as approval;

/// Encoded `FileDescriptorSet` of every govtrust service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
