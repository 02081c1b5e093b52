//! Pictures of a replay, as SVG (plotters): MRIF exposure over time for
//! every policy, and VS-files held per hart over time for each.

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::figures::{Figures, Series};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Draw { path: PathBuf, reason: String },
}

const SIZE: (u32, u32) = (960, 420);
/// Steps averaged into one point of the exposure curve (30 s of 0.5 s steps):
/// a step alone is too noisy to read.
const WINDOW: usize = 60;

/// Writes `exposure.svg` and `occupancy-<policy>.svg` into `dir`; returns
/// the files written.
pub fn write(dir: &Path, runs: &[(Figures, Series)]) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = vec![dir.join("exposure.svg")];
    draw(&written[0], |root| exposure(root, runs))?;
    for (f, s) in runs {
        let path = dir.join(format!("occupancy-{}.svg", f.policy));
        draw(&path, |root| occupancy(root, &f.policy, s))?;
        written.push(path);
    }
    Ok(written)
}

type Root<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(path: &Path, f: impl FnOnce(&Root) -> DrawResult) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let drawn = root
        .fill(&WHITE)
        .map_err(Into::into)
        .and_then(|()| f(&root))
        .and_then(|()| root.present().map_err(Into::into));
    drawn.map_err(|e| PlotError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A short stroke of a series' colour, for its legend entry.
fn legend_mark(color: RGBAColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color)
}

/// The legend, boxed, where it hides the least of the curves.
fn draw_legend<'a>(chart: &mut Chart<'a>, at: SeriesLabelPosition) -> DrawResult {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// The mean of each window of `WINDOW` values, at the window's start time.
fn smoothed(t: &[f64], v: &[f64]) -> Vec<(f64, f64)> {
    t.chunks(WINDOW)
        .zip(v.chunks(WINDOW))
        .map(|(t, v)| (t[0], v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

fn end_of(series: &Series) -> f64 {
    series.t.last().copied().unwrap_or(0.0).max(1.0)
}

fn exposure(root: &Root, runs: &[(Figures, Series)]) -> DrawResult {
    let end = runs.iter().map(|(_, s)| end_of(s)).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "interrupt-weighted MRIF exposure (30 s means)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("exposure")
        .draw()?;
    for (i, (f, s)) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                smoothed(&s.t, &s.exposure),
                color.stroke_width(2),
            ))?
            .label(format!("{} ({:.3})", f.policy, f.mrif_exposure))
            .legend(legend_mark(color));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn occupancy(root: &Root, policy: &str, s: &Series) -> DrawResult {
    let harts = s.used.first().map_or(0, Vec::len);
    let top = s.used.iter().flatten().copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{policy}: VS-files held per hart"),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(40)
        .build_cartesian_2d(0.0..end_of(s), 0.0..f64::from(top) + 0.5)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("VS-files held")
        .draw()?;
    for h in 0..harts {
        let points = s.t.iter().zip(&s.used).map(|(t, u)| (*t, f64::from(u[h])));
        let color = Palette99::pick(h).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color))?
            .label(format!("hart {h}"))
            .legend(legend_mark(color));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_averages_whole_windows_and_keeps_the_tail() {
        let t: Vec<f64> = (0..WINDOW + 2).map(|i| i as f64).collect();
        let mut v = vec![1.0; WINDOW];
        v.extend([0.0, 0.5]);
        assert_eq!(smoothed(&t, &v), [(0.0, 1.0), (WINDOW as f64, 0.25)]);
    }
}
