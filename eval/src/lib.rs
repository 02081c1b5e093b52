//! ifad-eval: how well each placement policy does on one workload, replayed
//! on the simulated host (the KVM model the daemon is judged on).

pub mod figures;
pub mod optimal;
pub mod plot;
pub mod policy;
pub mod replay;
pub mod report;
pub mod trace;
pub mod workload;
