//! Criterion benchmarks of the allocation core on the scale host.
//! Run: cargo bench -p ifad --bench core

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ifad::core::Class;
use ifad::core::policy;

fn place_release(c: &mut Criterion) {
    let t = common::topology();
    let mut ledger = common::resident(&t);
    let mut group = c.benchmark_group("16-vCPU VM on 1024x63 with 50k resident");
    for class in [Class::Guaranteed, Class::Burstable, Class::BestEffort] {
        let spec = common::spec("bench", class);
        let id = common::id("bench");
        group.bench_function(format!("place+release {}", class.as_str()), |b| {
            b.iter(|| {
                common::place(&t, &mut ledger, &spec, 0);
                black_box(ledger.remove(&id).expect("placed"));
                black_box(policy::plan_promotions(&t, &ledger, 0, 30_000));
            })
        });
        group.bench_function(format!("advise {}", class.as_str()), |b| {
            b.iter(|| black_box(policy::plan_place(&t, &ledger, &spec).expect("fits")))
        });
    }
    group.finish();
}

fn replan(c: &mut Criterion) {
    let t = common::topology();
    let ledger = common::resident(&t);
    let mut group = c.benchmark_group("re-plan");
    group.sample_size(10);
    group.bench_function("all 50k vCPUs", |b| {
        b.iter(|| black_box(policy::replan_all(&t, &ledger)))
    });
    group.finish();
}

criterion_group!(benches, place_release, replan);
criterion_main!(benches);
