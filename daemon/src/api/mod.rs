//! The gRPC front-end: translates ifa.v1 requests into engine jobs and
//! engine results into ifa.v1 replies and status codes.

pub mod convert;
pub mod service;
pub mod status;

pub use service::AllocatorService;
