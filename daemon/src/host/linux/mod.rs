//! The host backend for a real RISC-V KVM host.

pub mod acpi;
pub mod affinity;
pub mod cpuinfo;
pub mod cpulist;
pub mod devicetree;
pub mod discover;
pub mod host;
pub mod irq;
pub mod kprobes;
pub mod threads;

pub use host::{DriftPolicy, LinuxConfig, LinuxHost};
