//! Expected interrupt rates: a placement's hint of how many interrupts per
//! second each vCPU will take, for the time before anything is measured and
//! for VMs the host cannot see (issue 14). ifad keeps and shows the hint;
//! the policy does not weigh it yet.

use crate::core::CoreError;

/// The largest rate a hint may give, interrupts per second per vCPU.
pub const MAX_IRQ_RATE: f64 = ifa_api::MAX_EXPECTED_IRQ_RATE;

/// Interrupts per second for one vCPU: finite, `0..=MAX_IRQ_RATE`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct IrqRate(f64);

// Never NaN (refused at construction, also when read back from a state
// file), so equality is total and the records holding a rate stay `Eq`.
impl Eq for IrqRate {}

/// Why a number is not an interrupt rate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IrqRateError {
    #[error("{0} is not a finite number")]
    NotFinite(f64),
    #[error("{0} is negative")]
    Negative(f64),
    #[error("{0} is above the maximum of {MAX_IRQ_RATE} interrupts per second")]
    TooHigh(f64),
}

impl TryFrom<f64> for IrqRate {
    type Error = IrqRateError;

    fn try_from(per_second: f64) -> Result<Self, Self::Error> {
        if !per_second.is_finite() {
            Err(IrqRateError::NotFinite(per_second))
        } else if per_second < 0.0 {
            Err(IrqRateError::Negative(per_second))
        } else if per_second > MAX_IRQ_RATE {
            Err(IrqRateError::TooHigh(per_second))
        } else {
            // -0.0 passes `< 0.0`; stored as 0 so it shows as 0.
            Ok(IrqRate(per_second + 0.0))
        }
    }
}

impl From<IrqRate> for f64 {
    fn from(rate: IrqRate) -> f64 {
        rate.0
    }
}

impl IrqRate {
    pub fn per_second(self) -> f64 {
        self.0
    }
}

/// A hint as the request gave it, before it is checked against the VM.
#[derive(Debug, Clone, PartialEq)]
pub enum IrqRateHint {
    /// The same rate for every vCPU.
    EachVcpu(f64),
    /// One rate per vCPU, in vCPU order.
    PerVcpu(Vec<f64>),
}

impl IrqRateHint {
    /// One checked rate per vCPU of a VM with `vcpus` vCPUs; the error names
    /// the request field (and, for a list, the index) that is wrong.
    pub fn per_vcpu(&self, vcpus: u32) -> Result<Vec<IrqRate>, CoreError> {
        match self {
            IrqRateHint::EachVcpu(rate) => {
                let rate = IrqRate::try_from(*rate).map_err(|e| {
                    CoreError::invalid("expected_irq_rate.each_vcpu", e.to_string())
                })?;
                Ok(vec![rate; vcpus as usize])
            }
            IrqRateHint::PerVcpu(rates) => per_vcpu_list(rates, vcpus),
        }
    }
}

fn per_vcpu_list(rates: &[f64], vcpus: u32) -> Result<Vec<IrqRate>, CoreError> {
    let field = "expected_irq_rate.per_vcpu.rates";
    if rates.len() != vcpus as usize {
        return Err(CoreError::invalid(
            field,
            format!("{} rates for {vcpus} vCPUs: give one per vCPU", rates.len()),
        ));
    }
    rates
        .iter()
        .enumerate()
        .map(|(i, &rate)| {
            IrqRate::try_from(rate)
                .map_err(|e| CoreError::invalid(field, format!("rates[{i}]: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(hint: IrqRateHint, vcpus: u32) -> (&'static str, String) {
        match hint.per_vcpu(vcpus) {
            Err(CoreError::InvalidArgument { field, reason }) => (field, reason),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn each_vcpu_gives_every_vcpu_the_rate() {
        let rates = IrqRateHint::EachVcpu(2500.0).per_vcpu(3).unwrap();
        let rates: Vec<f64> = rates.into_iter().map(IrqRate::per_second).collect();
        assert_eq!(rates, [2500.0; 3]);
    }

    #[test]
    fn per_vcpu_keeps_vcpu_order_and_takes_the_bounds() {
        let rates = IrqRateHint::PerVcpu(vec![0.0, MAX_IRQ_RATE, 1.5])
            .per_vcpu(3)
            .unwrap();
        let rates: Vec<f64> = rates.into_iter().map(IrqRate::per_second).collect();
        assert_eq!(rates, [0.0, MAX_IRQ_RATE, 1.5]);
    }

    #[test]
    fn a_bad_each_vcpu_rate_names_each_vcpu() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, MAX_IRQ_RATE * 1.000_001] {
            let (field, _) = refusal(IrqRateHint::EachVcpu(bad), 2);
            assert_eq!(field, "expected_irq_rate.each_vcpu", "{bad}");
        }
    }

    #[test]
    fn a_bad_per_vcpu_rate_names_the_list_and_its_index() {
        let (field, reason) = refusal(IrqRateHint::PerVcpu(vec![1.0, 2.0, 3.0, -4.0]), 4);
        assert_eq!(field, "expected_irq_rate.per_vcpu.rates");
        assert!(reason.starts_with("rates[3]: "), "{reason}");
        let (_, reason) = refusal(IrqRateHint::PerVcpu(vec![f64::NEG_INFINITY, 1.0]), 2);
        assert!(reason.starts_with("rates[0]: "), "{reason}");
    }

    #[test]
    fn per_vcpu_needs_exactly_one_rate_per_vcpu() {
        for rates in [vec![], vec![1.0], vec![1.0, 2.0, 3.0]] {
            let (field, reason) = refusal(IrqRateHint::PerVcpu(rates), 2);
            assert_eq!(field, "expected_irq_rate.per_vcpu.rates");
            assert!(reason.contains("for 2 vCPUs"), "{reason}");
        }
    }

    #[test]
    fn negative_zero_is_stored_as_zero() {
        let rate = IrqRate::try_from(-0.0).unwrap();
        assert!(rate.per_second().is_sign_positive());
    }

    #[test]
    fn a_state_file_cannot_smuggle_in_a_bad_rate() {
        assert!(serde_json::from_str::<IrqRate>("-1.0").is_err());
        assert!(serde_json::from_str::<IrqRate>("1e300").is_err());
        let back: IrqRate = serde_json::from_str("12.5").unwrap();
        assert_eq!(back.per_second(), 12.5);
    }
}
