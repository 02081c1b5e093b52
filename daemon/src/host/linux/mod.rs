//! The host backend for a real RISC-V KVM host.

pub mod cpuinfo;
pub mod cpulist;
pub mod devicetree;
pub mod discover;
