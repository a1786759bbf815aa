//! SVG charts of the scale curves: for one dimension, rows/s (left) and
//! p50/p99 latency (right) against the dimension's value on a log axis.
//!
//! Drawn with `plotters`' SVG backend only (no bitmap backend, no font
//! rasteriser: text goes into the SVG as `<text>` and the viewer renders it).

use plotters::prelude::*;

use crate::report::Point;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 360;

/// One chart for `dimension`'s points (in x order).
pub fn svg(dimension: &str, points: &[&Point]) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let xs = || points.iter().map(|p| p.x as f64);
        let lo = xs().fold(f64::INFINITY, f64::min).max(1.0);
        let hi = xs().fold(1.0, f64::max).max(lo * 2.0);
        let x_range = (lo / 1.5..hi * 1.5).log_scale();
        let label = match dimension {
            "row_bytes" => "payload bytes per row",
            "columns" => "columns per row",
            "workers" => "load workers",
            _ => "tables",
        };

        let top = points.iter().map(|p| p.rows_per_s).fold(0.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(&left)
            .caption(format!("rows/s by {label}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(x_range.clone(), 0.0..top.max(1.0))
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc(label)
            .y_desc("rows/s")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
            .draw()
            .map_err(draw)?;
        let series = points.iter().map(|p| (p.x as f64, p.rows_per_s));
        chart
            .draw_series(LineSeries::new(series.clone(), &BLUE))
            .map_err(draw)?;
        chart
            .draw_series(series.map(|c| Circle::new(c, 3, BLUE.filled())))
            .map_err(draw)?;

        let top = points.iter().map(|p| p.p99_ms).fold(0.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(&right)
            .caption(format!("latency by {label}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, 0.0..top.max(1.0))
            .map_err(draw)?;
        chart
            .configure_mesh()
            .x_desc(label)
            .y_desc("ms")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(draw)?;
        for (name, colour, pick) in [
            ("p99", RED, (|p: &Point| p.p99_ms) as fn(&Point) -> f64),
            ("p50", GREEN, |p: &Point| p.p50_ms),
        ] {
            let series = points.iter().map(|p| (p.x as f64, pick(p)));
            chart
                .draw_series(LineSeries::new(series.clone(), &colour))
                .map_err(draw)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            chart
                .draw_series(series.map(|c| Circle::new(c, 3, colour.filled())))
                .map_err(draw)?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(draw)?;
        root.present().map_err(draw)?;
    }
    Ok(out)
}

fn draw(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}
