//! Printing measured figures.

use std::time::Duration;

/// p50, p99 and max of `samples`.
pub fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    format!(
        "p50 {:>7.2?}  p99 {:>7.2?}  max {:>7.2?}  (n={})",
        at(0.50),
        at(0.99),
        samples[samples.len() - 1],
        samples.len()
    )
}
