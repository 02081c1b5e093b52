//! ifad: the interrupt-file allocation daemon for RISC-V KVM hosts.
//!
//! `core` decides (pure), `host` acts (simulated or Linux), `engine` owns
//! the state, `api` serves it over gRPC.

pub mod api;
pub mod clock;
pub mod core;
pub mod engine;
pub mod host;
pub mod liveness;
pub mod metrics;
pub mod metrics_http;
pub mod notify;
pub mod repeats;
pub mod server;
pub mod socket;
pub mod state;
