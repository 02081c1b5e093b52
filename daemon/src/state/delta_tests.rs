use super::*;
use crate::core::test_support::spec;
use crate::core::{Backing, Class, Ledger, Topology};

/// Two VMs' records, as a ledger on 2 harts x 2 files keeps them.
fn records() -> Vec<VmRecord> {
    let topology = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&topology);
    l.insert(
        &spec("a", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
        false,
        0,
    );
    l.insert(
        &spec("b", 1, Class::Burstable),
        &[(1, Backing::VsFile)],
        false,
        0,
    );
    l.save().vms
}

fn put(vm: &VmRecord, host: serde_json::Value) -> Op {
    Op::Put {
        vm: Box::new(vm.clone()),
        host,
    }
}

#[test]
fn ops_apply_in_order_and_vms_come_back_in_placement_order() {
    let vms = records();
    let mut replay = Replay::new(1, Snapshot::default());
    replay.apply(Delta {
        at: 5,
        next_seq: 2,
        ops: vec![
            put(&vms[1], serde_json::json!({"pid": 7})),
            put(&vms[0], serde_json::Value::Null),
            Op::Drained { harts: vec![1] },
            Op::FailedEntries { keys: vec![] },
            Op::Host {
                host: serde_json::json!("machine"),
            },
        ],
    });
    let (at, s) = replay.finish();
    assert_eq!(at, 5);
    assert_eq!(s.ledger.vms, vms, "sorted by seq, not by arrival");
    assert_eq!(s.ledger.next_seq, 2);
    assert_eq!(s.ledger.drained, [1]);
    assert_eq!(s.host, serde_json::json!("machine"));
    assert_eq!(s.host_vms.len(), 1);
    assert_eq!(s.host_vms[&vms[1].id], serde_json::json!({"pid": 7}));
}

#[test]
fn a_later_put_replaces_and_a_remove_forgets_the_vm_and_its_host_part() {
    let vms = records();
    let mut changed = vms[0].clone();
    changed.pending = true;
    let mut replay = Replay::new(1, Snapshot::default());
    for ops in [
        vec![
            put(&vms[0], serde_json::json!(1)),
            put(&vms[1], serde_json::json!(2)),
        ],
        vec![put(&changed, serde_json::Value::Null)],
        vec![Op::Remove {
            vm: vms[1].id.clone(),
        }],
    ] {
        replay.apply(Delta {
            at: 2,
            next_seq: 2,
            ops,
        });
    }
    let (_, s) = replay.finish();
    assert_eq!(s.ledger.vms, [changed]);
    assert!(s.host_vms.is_empty(), "{:?}", s.host_vms);
}

#[test]
fn a_delta_round_trips_through_its_bytes() {
    let vms = records();
    let delta = Delta {
        at: 3,
        next_seq: 9,
        ops: vec![
            put(&vms[0], serde_json::json!({"pid": 1})),
            Op::Remove {
                vm: vms[1].id.clone(),
            },
        ],
    };
    assert_eq!(Delta::decode(&delta.encode()).unwrap(), delta);
}
