//! The allocation core: topology, ledger and policy. Pure: no I/O, no clock,
//! no async, so tests and benchmarks drive it directly.

pub mod bdf;
pub mod error;
pub mod imsic_layout;
pub mod irq_rate;
pub mod ledger;
pub mod model;
pub mod policy;
pub mod pressure;
pub mod rebalance;
pub mod reconcile;
pub mod request;
pub mod swap;
#[cfg(test)]
pub(crate) mod test_support;
pub mod topology;
pub mod vm_id;

pub use bdf::Bdf;
pub use error::{CoreError, Facts, Refusal};
pub use imsic_layout::GuestImsicLayout;
pub use irq_rate::{IrqRate, IrqRateHint};
pub use ledger::Ledger;
pub use model::{AiaMode, Backing, Class, HartId, VcpuKey};
pub use reconcile::Observed;
pub use topology::{HartInfo, Topology};
pub use vm_id::VmId;
