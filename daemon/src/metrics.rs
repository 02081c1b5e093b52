//! Prometheus metrics. Names follow Prometheus conventions: `_total` for
//! counters, labels of low cardinality only (never per VM or vCPU).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::core::policy::Placement;
use crate::core::{Backing, Class, Ledger, Refusal, Topology};

const CLASSES: [Class; 3] = [Class::Guaranteed, Class::Burstable, Class::BestEffort];

/// Why a vCPU runs on MRIF; the label of `ifad_mrif_fallbacks_total`.
pub const FALLBACK_NO_FREE_VSFILE: &str = "no_free_vsfile";
/// A guaranteed VM took its VS-file (swapping).
pub const FALLBACK_DEMOTED: &str = "demoted";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    vsfiles: IntGauge,
    vsfiles_used: IntGauge,
    harts_online: IntGauge,
    vms: IntGauge,
    vcpus: IntGaugeVec,
    interrupt_rates: prometheus::GaugeVec,
    hart_vsfiles: IntGaugeVec,
    hart_vsfiles_used: IntGaugeVec,
    decisions: prometheus::HistogramVec,
    vm_placements: IntCounterVec,
    vcpu_placements: IntCounterVec,
    refusals: IntCounterVec,
    mrif_fallbacks: IntCounterVec,
    promotions: IntCounter,
    demotions: IntCounter,
    rebalances: IntCounter,
    migrations: IntCounter,
    stranded: IntCounter,
    hwaccel_entry_failures: IntCounter,
    ledger_corrections: IntCounter,
    drift: IntCounter,
    irq_errors: IntCounterVec,
    checkpoint_seconds: Histogram,
    checkpoint_errors: IntCounter,
    state_log_bytes: IntGauge,
    state_snapshots: IntCounter,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Metrics {
    pub fn new(version: &str, host: &str) -> Self {
        let r = Registry::new();
        let build = gauge_vec(
            &r,
            "ifad_build_info",
            "ifad build and host backend; always 1.",
            &["version", "host"],
        );
        build.with_label_values(&[version, host]).set(1);
        let m = Metrics {
            vsfiles: gauge(
                &r,
                "ifad_vsfiles",
                "VS-files (guest interrupt files) on online harts.",
            ),
            vsfiles_used: gauge(&r, "ifad_vsfiles_used", "VS-files held by placed vCPUs."),
            harts_online: gauge(&r, "ifad_harts_online", "Online harts."),
            vms: gauge(&r, "ifad_vms", "Placed VMs."),
            vcpus: gauge_vec(
                &r,
                "ifad_vcpus",
                "Placed vCPUs by class and interrupt-file backing.",
                &["class", "backing"],
            ),
            interrupt_rates: {
                let g = prometheus::GaugeVec::new(
                    Opts::new(
                        "ifad_interrupts_per_second",
                        "Interrupts per second ifad knows placed vCPUs take (measured \
                         wake-ups or hints), by class and backing: the MRIF share is the \
                         interrupt-weighted MRIF exposure.",
                    ),
                    &["class", "backing"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            hart_vsfiles: gauge_vec(
                &r,
                "ifad_hart_vsfiles",
                "VS-files of each hart (0 while it is offline).",
                &["hart"],
            ),
            hart_vsfiles_used: gauge_vec(
                &r,
                "ifad_hart_vsfiles_used",
                "VS-files of each hart held by placed vCPUs.",
                &["hart"],
            ),
            decisions: {
                let h = prometheus::HistogramVec::new(
                    HistogramOpts::new(
                        "ifad_decision_duration_seconds",
                        "Time policy took to decide, by operation (place, migrate, drain, promote).",
                    )
                    .buckets(vec![
                        1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1,
                    ]),
                    &["operation"],
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            vm_placements: counter_vec(&r, "ifad_vm_placements_total", "VMs placed.", &["class"]),
            vcpu_placements: counter_vec(
                &r,
                "ifad_vcpu_placements_total",
                "vCPUs placed.",
                &["class"],
            ),
            refusals: counter_vec(
                &r,
                "ifad_placement_refusals_total",
                "Placements refused because the host could not hold them as their class demands.",
                &["class", "reason"],
            ),
            mrif_fallbacks: counter_vec(
                &r,
                "ifad_mrif_fallbacks_total",
                "vCPUs that wanted a VS-file and were put on MRIF.",
                &["reason"],
            ),
            promotions: counter(
                &r,
                "ifad_promotions_total",
                "vCPUs moved from MRIF to a VS-file.",
            ),
            demotions: counter(
                &r,
                "ifad_demotions_total",
                "Burstable vCPUs that gave up their VS-file to a guaranteed VM.",
            ),
            rebalances: counter(
                &r,
                "ifad_rebalances_total",
                "Burstable vCPUs that gave up their VS-file to a far busier waiting burstable vCPU.",
            ),
            migrations: counter(&r, "ifad_migrations_total", "vCPUs migrated on request."),
            stranded: counter(
                &r,
                "ifad_stranded_vcpus_total",
                "Guaranteed vCPUs left without a VS-file by a hart going offline.",
            ),
            hwaccel_entry_failures: counter(
                &r,
                "ifad_hwaccel_entry_failures_total",
                "HWACCEL guest entries that failed for lack of a VS-file (KVM_EXIT_FAIL_ENTRY).",
            ),
            ledger_corrections: counter(
                &r,
                "ifad_ledger_corrections_total",
                "Times the host showed a vCPU backing the ledger had not predicted.",
            ),
            drift: counter(
                &r,
                "ifad_drift_detected_total",
                "vCPU threads found pinned where their placement does not allow.",
            ),
            irq_errors: counter_vec(
                &r,
                "ifad_irq_steering_errors_total",
                "Device IRQ moves that failed, by class (transient, target_full, permanent; rerouted: taken, but the kernel routes the IRQ elsewhere).",
                &["class"],
            ),
            checkpoint_seconds: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "ifad_checkpoint_write_seconds",
                        "Time to make a group of state changes durable: one log record and its fdatasync, or a whole snapshot.",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
                    ]),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            checkpoint_errors: counter(
                &r,
                "ifad_checkpoint_errors_total",
                "State changes that could not be made durable (the client got an error).",
            ),
            state_log_bytes: gauge(
                &r,
                "ifad_state_log_bytes",
                "Bytes of durable records in the state log since the last snapshot.",
            ),
            state_snapshots: counter(
                &r,
                "ifad_state_snapshots_total",
                "Whole snapshots of the state written (at start, after a failed append, and when the log outgrew the last one).",
            ),
            registry: r,
        };
        // Export every series from the start, so rate() works from zero.
        for c in CLASSES {
            m.vm_placements.with_label_values(&[c.as_str()]);
            m.vcpu_placements.with_label_values(&[c.as_str()]);
            for r in [
                Refusal::NoGuestFiles,
                Refusal::NoEligibleHart,
                Refusal::NoFreeVsFile,
                Refusal::TryAgain,
            ] {
                m.refusals.with_label_values(&[c.as_str(), r.as_str()]);
            }
            for b in [Backing::VsFile, Backing::Mrif] {
                m.vcpus.with_label_values(&[c.as_str(), b.as_str()]);
            }
        }
        m.mrif_fallbacks
            .with_label_values(&[FALLBACK_NO_FREE_VSFILE]);
        m.mrif_fallbacks.with_label_values(&[FALLBACK_DEMOTED]);
        for class in ["transient", "target_full", "permanent", "rerouted"] {
            m.irq_errors.with_label_values(&[class]);
        }
        m
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn placed(&self, class: Class, placement: &Placement) {
        self.vm_placements
            .with_label_values(&[class.as_str()])
            .inc();
        self.vcpu_placements
            .with_label_values(&[class.as_str()])
            .inc_by(placement.vcpus.len() as u64);
        if class == Class::Burstable {
            let mrif = placement.count(Backing::Mrif);
            self.mrif_fallbacks
                .with_label_values(&[FALLBACK_NO_FREE_VSFILE])
                .inc_by(mrif as u64);
        }
        let demoted = placement
            .demotions
            .iter()
            .filter(|m| m.backing == Backing::Mrif)
            .count();
        self.mrif_fallbacks
            .with_label_values(&[FALLBACK_DEMOTED])
            .inc_by(demoted as u64);
        self.demotions.inc_by(placement.demotions.len() as u64);
    }

    pub fn checkpoint_written(&self, seconds: f64) {
        self.checkpoint_seconds.observe(seconds);
    }

    pub fn checkpoint_failed(&self) {
        self.checkpoint_errors.inc();
    }

    pub fn state_log_bytes(&self, bytes: u64) {
        self.state_log_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn compacted(&self) {
        self.state_snapshots.inc();
    }

    pub fn migrated(&self) {
        self.migrations.inc();
    }

    pub fn stranded(&self, n: usize) {
        self.stranded.inc_by(n as u64);
    }

    pub fn refused(&self, class: Class, reason: Refusal) {
        self.refusals
            .with_label_values(&[class.as_str(), reason.as_str()])
            .inc();
    }

    /// How long policy took to decide one `operation`.
    pub fn decided(&self, operation: &str, seconds: f64) {
        self.decisions
            .with_label_values(&[operation])
            .observe(seconds);
    }

    pub fn rebalanced(&self) {
        self.rebalances.inc();
    }

    pub fn promoted(&self, n: usize) {
        self.promotions.inc_by(n as u64);
    }

    pub fn hwaccel_entry_failed(&self) {
        self.hwaccel_entry_failures.inc();
    }

    pub fn irq_steering_failed(&self, class: &str) {
        self.irq_errors.with_label_values(&[class]).inc();
    }

    pub fn drift_detected(&self) {
        self.drift.inc();
    }

    pub fn ledger_corrected(&self) {
        self.ledger_corrections.inc();
    }

    /// Sets every gauge from the ledger: per hart at most, never per VM.
    pub fn refresh(&self, topology: &Topology, ledger: &Ledger) {
        let mut vsfiles = 0;
        let mut online = 0;
        for h in topology.harts() {
            let files = if h.online { i64::from(h.vsfiles) } else { 0 };
            vsfiles += files;
            online += i64::from(h.online);
            let hart = h.id.to_string();
            self.hart_vsfiles.with_label_values(&[&hart]).set(files);
            self.hart_vsfiles_used
                .with_label_values(&[&hart])
                .set(i64::from(ledger.load(h.id).vsfiles_used));
        }
        self.vsfiles.set(vsfiles);
        self.vsfiles_used.set(i64::from(ledger.vsfiles_used()));
        self.harts_online.set(online);
        self.vms.set(ledger.vm_count() as i64);
        let mut counts = [[0i64; 2]; 3];
        let mut rates = [[0f64; 2]; 3];
        for vm in ledger.vms() {
            let c = CLASSES
                .iter()
                .position(|&c| c == vm.class)
                .expect("known class");
            for (v, rate) in vm.vcpus.iter().zip(ledger.interrupt_rates(vm)) {
                let b = usize::from(v.backing == Backing::Mrif);
                counts[c][b] += 1;
                rates[c][b] += rate;
            }
        }
        for (c, class) in CLASSES.iter().enumerate() {
            for (b, backing) in [Backing::VsFile, Backing::Mrif].iter().enumerate() {
                let labels = [class.as_str(), backing.as_str()];
                self.vcpus.with_label_values(&labels).set(counts[c][b]);
                self.interrupt_rates
                    .with_label_values(&labels)
                    .set(rates[c][b]);
            }
        }
    }

    /// The exposition in Prometheus text format.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}
