use std::collections::BTreeSet;

use crate::core::{Bdf, Class, CoreError, GuestImsicLayout, HartId, IrqRate, VmId};

/// KVM_MAX_VCPUS on RISC-V.
pub const MAX_VCPUS: u32 = 1024;

/// A validated placement request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceSpec {
    pub vm: VmId,
    pub vcpus: u32,
    pub class: Class,
    pub devices: Vec<Bdf>,
    /// Among burstable VMs, higher keeps its VS-files longer under swapping.
    pub priority: i32,
    /// Harts the VM may use, sorted; `None`: all.
    pub allowed: Option<Vec<HartId>>,
    /// Where the VMM puts the guest IMSICs; `None`: not given, so unknown.
    pub guest_imsic: Option<GuestImsicLayout>,
    /// Interrupts per second the orchestrator expects, one per vCPU in vCPU
    /// order; `None`: no hint.
    pub expected_irq_rates: Option<Vec<IrqRate>>,
}

impl PlaceSpec {
    /// Checks every field of a request as it came off the wire; the first bad
    /// field is named in the error.
    pub fn parse(
        vm: &str,
        vcpus: u32,
        class: Option<Class>,
        devices: &[String],
    ) -> Result<Self, CoreError> {
        let vm = VmId::parse(vm)?;
        if vcpus == 0 || vcpus > MAX_VCPUS {
            return Err(CoreError::invalid(
                "vcpus",
                format!("{vcpus} is out of range 1..={MAX_VCPUS}"),
            ));
        }
        let class = class.ok_or_else(|| {
            CoreError::invalid("class", "must be guaranteed, burstable or best-effort")
        })?;
        let mut seen = BTreeSet::new();
        let mut parsed = Vec::with_capacity(devices.len());
        for raw in devices {
            let bdf: Bdf = raw.parse()?;
            if !seen.insert(bdf) {
                return Err(CoreError::invalid(
                    "devices",
                    format!("{bdf} is listed twice"),
                ));
            }
            parsed.push(bdf);
        }
        Ok(PlaceSpec {
            vm,
            vcpus,
            class,
            devices: parsed,
            priority: 0,
            allowed: None,
            guest_imsic: None,
            expected_irq_rates: None,
        })
    }

    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Records the VM's guest IMSIC layout after checking it against the
    /// VM's vCPU count.
    pub fn with_guest_imsic(mut self, layout: GuestImsicLayout) -> Result<Self, CoreError> {
        layout.validate(self.vcpus)?;
        self.guest_imsic = Some(layout);
        Ok(self)
    }

    /// Records the expected interrupt rates, one per vCPU.
    pub fn with_expected_irq_rates(mut self, rates: Vec<IrqRate>) -> Result<Self, CoreError> {
        if rates.len() != self.vcpus as usize {
            return Err(CoreError::invalid(
                "expected_irq_rate",
                format!("{} rates for {} vCPUs", rates.len(), self.vcpus),
            ));
        }
        self.expected_irq_rates = Some(rates);
        Ok(self)
    }

    /// Restricts the VM to `harts` (empty: no restriction). Whether the
    /// harts exist is checked against the topology at placement.
    pub fn with_harts(mut self, harts: &[HartId]) -> Self {
        if !harts.is_empty() {
            let mut h = harts.to_vec();
            h.sort_unstable();
            h.dedup();
            self.allowed = Some(h);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<PlaceSpec, CoreError>) -> &'static str {
        match r {
            Err(CoreError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_good_request() {
        let s = PlaceSpec::parse("a", 4, Some(Class::Burstable), &["01:00.0".into()]).unwrap();
        assert_eq!(s.vcpus, 4);
        assert_eq!(s.devices[0].to_string(), "0000:01:00.0");
    }

    #[test]
    fn a_hint_gives_every_vcpu_a_rate() {
        let s = PlaceSpec::parse("a", 2, Some(Class::Burstable), &[]).unwrap();
        let one = IrqRate::try_from(5.0).unwrap();
        assert_eq!(
            field_of(s.clone().with_expected_irq_rates(vec![one])),
            "expected_irq_rate"
        );
        let s = s.with_expected_irq_rates(vec![one, one]).unwrap();
        assert_eq!(s.expected_irq_rates, Some(vec![one, one]));
    }

    #[test]
    fn names_the_bad_field() {
        let g = Some(Class::Guaranteed);
        assert_eq!(field_of(PlaceSpec::parse("", 1, g, &[])), "vm");
        assert_eq!(field_of(PlaceSpec::parse("a", 0, g, &[])), "vcpus");
        assert_eq!(
            field_of(PlaceSpec::parse("a", MAX_VCPUS + 1, g, &[])),
            "vcpus"
        );
        assert_eq!(field_of(PlaceSpec::parse("a", 1, None, &[])), "class");
        assert_eq!(
            field_of(PlaceSpec::parse("a", 1, g, &["x".into()])),
            "devices"
        );
        let twice = ["0000:01:00.0".to_string(), "01:00.0".to_string()];
        assert_eq!(field_of(PlaceSpec::parse("a", 1, g, &twice)), "devices");
    }
}
