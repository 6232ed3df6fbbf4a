//! `switchboard bench --plot FILE.svg`: each path's p50 round trip as a
//! multiple of its floor, against the payload (both axes log scale), drawn
//! with plotters' SVG backend.
//!
//! plotters measures text to lay out axes and legends; with its `ab_glyph`
//! feature it needs no system font library, only font bytes. We bundle an
//! ASCII subset of DejaVu Sans (10 KB, `assets/`, Bitstream Vera licence)
//! so the plot looks the same on every machine and CI installs nothing.

use std::path::Path;

use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans-ascii.ttf");
const FAMILY: &str = "sans-serif";

/// One line of the chart: a path's (payload, ratio) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

fn register_font() -> anyhow::Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    anyhow::ensure!(ok, "the bundled plot font could not be read");
    Ok(())
}

fn bytes_label(x: f64) -> String {
    match x as u64 {
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// Draws `series` (ticks at `payloads`) into an SVG file at `path`.
pub fn draw(path: &Path, payloads: &[f64], series: &[Series]) -> anyhow::Result<()> {
    register_font()?;
    // Ratios span 0.003 (a zero-copy 16 MiB sample) to 50 (the same at
    // 64 B): a log scale keeps every line readable.
    let ratios = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|r| *r > 0.0);
    let top = ratios().fold(2.0f64, f64::max) * 1.3;
    let bottom = ratios().fold(0.5f64, f64::min) / 1.3;
    let right = payloads.iter().copied().fold(1.0f64, f64::max) * 1.4;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("switchboard bench: p50 round trip × its floor (lower is better)", (FAMILY, 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (6.0f64..right).log_scale().with_key_points(payloads.to_vec()),
            (bottom..top).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("payload")
        .y_desc("× floor")
        .x_label_formatter(&|x| bytes_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style((FAMILY, 13))
        .draw()?;
    chart.draw_series(LineSeries::new([(6.0, 1.0), (right, 1.0)], BLACK.mix(0.5).stroke_width(1)))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
