//! The ifa.v1 API shared by `ifad` and `ifactl`: generated gRPC types, where
//! the daemon's socket lives, and a client that dials it.

pub mod cli;
pub mod client;
pub mod codec;
pub mod errors;
pub mod socket;

/// Generated from `proto/ifa/v1/ifa.proto`.
pub mod v1 {
    tonic::include_proto!("ifa.v1");
    include!(concat!(env!("OUT_DIR"), "/server/ifa.v1.rs"));
}

/// The largest expected interrupt rate a placement may hint, per vCPU per
/// second (`PlaceRequest.expected_irq_rate`; why this bound: the proto).
pub const MAX_EXPECTED_IRQ_RATE: f64 = 10_000_000.0;

/// The encoded `FileDescriptorSet` of ifa.v1, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ifa_descriptor.bin"));
