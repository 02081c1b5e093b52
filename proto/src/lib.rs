//! The ifa.v1 API shared by `ifad` and `ifactl`: generated gRPC types, where
//! the daemon's socket lives, and a client that dials it.

pub mod cli;
pub mod client;
pub mod socket;

/// Generated from `proto/ifa/v1/ifa.proto`.
pub mod v1 {
    tonic::include_proto!("ifa.v1");
}
