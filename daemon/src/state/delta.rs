//! One log record: what a commit changed, applied in order on top of the
//! snapshot (and the records before it) when the state is read back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::ledger::{Millis, VmRecord};
use crate::core::{HartId, VcpuKey, VmId};
use crate::state::Snapshot;

/// What one commit changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The engine clock's reading at the commit.
    pub at: Millis,
    /// The ledger's next placement seq after it (seqs are never reused).
    pub next_seq: u64,
    pub ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A VM placed or changed: its whole record, and the host's part of it.
    Put {
        vm: Box<VmRecord>,
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        host: serde_json::Value,
    },
    Remove {
        vm: VmId,
    },
    /// The drained harts, all of them.
    Drained {
        harts: Vec<HartId>,
    },
    /// The vCPUs whose failed HWACCEL entry was counted, all of them.
    FailedEntries {
        keys: Vec<VcpuKey>,
    },
    /// The host's part that belongs to no VM.
    Host {
        host: serde_json::Value,
    },
}

impl Delta {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a delta is plain data")
    }

    pub fn decode(bytes: &[u8]) -> Result<Delta, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A snapshot opened up for replay: VMs by id.
pub struct Replay {
    at: Millis,
    snapshot: Snapshot,
    vms: BTreeMap<VmId, VmRecord>,
}

impl Replay {
    pub fn new(at: Millis, mut snapshot: Snapshot) -> Replay {
        let vms = std::mem::take(&mut snapshot.ledger.vms)
            .into_iter()
            .map(|vm| (vm.id.clone(), vm))
            .collect();
        Replay { at, snapshot, vms }
    }

    pub fn apply(&mut self, delta: Delta) {
        self.at = delta.at;
        self.snapshot.ledger.next_seq = delta.next_seq;
        for op in delta.ops {
            self.apply_op(op);
        }
    }

    fn apply_op(&mut self, op: Op) {
        let s = &mut self.snapshot;
        match op {
            Op::Put { vm, host } => {
                if host.is_null() {
                    s.host_vms.remove(&vm.id);
                } else {
                    s.host_vms.insert(vm.id.clone(), host);
                }
                self.vms.insert(vm.id.clone(), *vm);
            }
            Op::Remove { vm } => {
                s.host_vms.remove(&vm);
                self.vms.remove(&vm);
            }
            Op::Drained { harts } => s.ledger.drained = harts,
            Op::FailedEntries { keys } => s.failed_entries = keys,
            Op::Host { host } => s.host = host,
        }
    }

    /// The state as replayed, VMs in placement order, and the clock
    /// reading of the last record.
    pub fn finish(self) -> (Millis, Snapshot) {
        let Replay {
            at,
            mut snapshot,
            vms,
        } = self;
        let mut vms: Vec<VmRecord> = vms.into_values().collect();
        vms.sort_by_key(|vm| vm.seq);
        snapshot.ledger.vms = vms;
        (at, snapshot)
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
