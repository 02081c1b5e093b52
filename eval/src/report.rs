//! The figures side by side: a table for people, JSON for programs.

use serde::Serialize;

use crate::figures::Figures;

#[derive(Serialize)]
struct Report<'a> {
    policies: &'a [Figures],
}

pub fn json(figures: &[Figures]) -> String {
    serde_json::to_string_pretty(&Report { policies: figures }).expect("figures serialize")
}

/// A row of the table: its name, and how to show one policy's value.
type Row = (&'static str, fn(&Figures) -> String);

/// One row per figure, one column per policy.
pub fn table(figures: &[Figures]) -> String {
    let rows: [Row; 12] = [
        ("MRIF EXPOSURE (irq-weighted)", |f| {
            format!("{:.4}", f.mrif_exposure)
        }),
        ("VCPU-TIME ON MRIF", |f| format!("{:.4}", f.mrif_vcpu_time)),
        ("HWACCEL ENTRY FAILURES", |f| {
            f.hwaccel_entry_failures.to_string()
        }),
        ("REFUSED GUARANTEED", |f| f.refusals.guaranteed.to_string()),
        ("REFUSED BURSTABLE", |f| f.refusals.burstable.to_string()),
        ("REFUSED BEST-EFFORT", |f| {
            f.refusals.best_effort.to_string()
        }),
        ("DEMOTIONS", |f| f.demotions.to_string()),
        ("MIGRATIONS", |f| f.migrations.to_string()),
        ("THREADS/HART MAX", |f| f.max_threads_per_hart.to_string()),
        ("THREADS/HART P99", |f| f.p99_threads_per_hart.to_string()),
        ("MAX IMBALANCE (threads)", |f| {
            format!("{:.1}", f.max_imbalance)
        }),
        ("DECISION P50/P99 (us)", |f| {
            format!("{:.1}/{:.1}", f.decision_p50_us, f.decision_p99_us)
        }),
    ];
    let mut cells: Vec<Vec<String>> = vec![
        std::iter::once("FIGURE".to_string())
            .chain(figures.iter().map(|f| f.policy.to_uppercase()))
            .collect(),
    ];
    for (name, value) in rows {
        cells.push(
            std::iter::once(name.to_string())
                .chain(figures.iter().map(value))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..cells[0].len())
        .map(|c| cells.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    cells
        .iter()
        .map(|r| {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            line.join("  ").trim_end().to_string() + "\n"
        })
        .collect()
}
