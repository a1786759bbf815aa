//! The console's charts: one series over the last hour as inline SVG.
//!
//! Server-rendered (no script, no library): a polyline per run of
//! consecutive samples, broken where a value is unknown or samples are
//! missing (the node was down or not measuring), an isolated point as a dot,
//! a y scale rounded up to 1/2/5×10ⁿ, and an optional dashed threshold.
//! The time axis ends now and spans the history there is, rounded up to 5,
//! 10, 15, 30 or 60 minutes ([`span_ms`]), so a young node's few minutes
//! are not squeezed into the right edge of an hour.
//! Element ids and classes are stable: the e2e test counts the points.

use std::fmt::Write as _;

use super::history::{Sample, SAMPLE_EVERY, SPAN};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 712.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 156.0;

/// One chart.
pub struct Chart {
    /// The `<svg>` element's id (a literal of the caller: not escaped).
    pub id: &'static str,
    /// Accessible title, e.g. "Lag (seconds)" (a literal too).
    pub title: &'static str,
    /// The value of a sample, `None` when unknown.
    pub value: fn(&Sample) -> Option<f64>,
    /// A dashed line at this value (the lag alarm's threshold).
    pub threshold: Option<f64>,
}

impl Chart {
    /// The `<svg>` for `samples` (oldest first) ending at `now_ms`.
    pub fn svg(&self, samples: &[Sample], now_ms: u64) -> String {
        let span = span_ms(samples, now_ms);
        let span_ms = span as f64;
        let start_ms = now_ms as f64 - span_ms;
        let points: Vec<(u64, f64)> = samples
            .iter()
            .filter_map(|s| (self.value)(s).map(|v| (s.unix_ms, v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        let max = points.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
        let top = nice_ceiling(max);
        let x =
            |ms: u64| LEFT + ((ms as f64 - start_ms) / span_ms).clamp(0.0, 1.0) * (RIGHT - LEFT);
        let y = |v: f64| BOTTOM - (v / top).clamp(0.0, 1.0) * (BOTTOM - TOP);

        let mut out = String::with_capacity(512 + points.len() * 14);
        let _ = write!(
            out,
            r#"<svg id="{id}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" data-points="{n}" data-max="{top}"><title>{title}</title>"#,
            id = self.id,
            title = self.title,
            n = points.len(),
        );
        for (i, v) in [(0, 0.0), (1, top / 2.0), (2, top)] {
            let _ = write!(
                out,
                r#"<line class="grid" x1="{LEFT}" x2="{RIGHT}" y1="{yy:.1}" y2="{yy:.1}"/><text x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
                yy = y(v),
                lx = LEFT - 4.0,
                ty = y(v) + if i == 0 { 0.0 } else { 3.5 },
                label = axis_label(v),
            );
        }
        let step = span / 60_000 / 5;
        for i in (0..=5).rev() {
            let minutes = step * i;
            let anchor = match i {
                5 => "start",
                0 => "end",
                _ => "middle",
            };
            let at = now_ms.saturating_sub(minutes * 60_000);
            let label = if minutes == 0 {
                "now".to_string()
            } else {
                format!("−{minutes} min")
            };
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{}" text-anchor="{anchor}">{label}</text>"#,
                x(at),
                HEIGHT - 8.0
            );
        }
        if let Some(t) = self.threshold.filter(|t| *t > 0.0 && *t <= top) {
            let _ = write!(
                out,
                r#"<line class="threshold" x1="{LEFT}" x2="{RIGHT}" y1="{yy:.1}" y2="{yy:.1}"><title>alarm threshold {t}</title></line>"#,
                yy = y(t),
            );
        }
        // Runs of consecutive samples: a gap longer than 2.5 periods (or an
        // unknown value, already filtered out) breaks the line.
        let max_gap = SAMPLE_EVERY.as_millis() as u64 * 5 / 2;
        let mut runs: Vec<&[(u64, f64)]> = Vec::new();
        let mut from = 0;
        for i in 1..=points.len() {
            if i == points.len() || points[i].0.saturating_sub(points[i - 1].0) > max_gap {
                runs.push(&points[from..i]);
                from = i;
            }
        }
        // A sample whose value was unknown also breaks the run.
        let runs = split_at_unknown(runs, samples, self.value);
        for run in runs {
            match run {
                [] => {}
                [(t, v)] => {
                    let _ = write!(
                        out,
                        r#"<circle class="series" cx="{:.1}" cy="{:.1}" r="1.5"/>"#,
                        x(*t),
                        y(*v)
                    );
                }
                _ => {
                    out.push_str(r#"<polyline class="series" points=""#);
                    for (i, (t, v)) in run.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        let _ = write!(out, "{:.1},{:.1}", x(*t), y(*v));
                    }
                    out.push_str(r#""/>"#);
                }
            }
        }
        if points.is_empty() {
            let _ = write!(
                out,
                r#"<text class="empty" x="{}" y="{}" text-anchor="middle">no samples yet (one every {} s)</text>"#,
                (LEFT + RIGHT) / 2.0,
                (TOP + BOTTOM) / 2.0,
                SAMPLE_EVERY.as_secs()
            );
        }
        out.push_str("</svg>");
        out
    }
}

/// The time axis' length (ms): the age of the oldest sample, rounded up to
/// 5, 10, 15, 30 or 60 minutes (at most [`SPAN`]).
pub fn span_ms(samples: &[Sample], now_ms: u64) -> u64 {
    let age = samples
        .first()
        .map_or(0, |s| now_ms.saturating_sub(s.unix_ms));
    let max = u64::try_from(SPAN.as_millis()).unwrap_or(u64::MAX);
    [5, 10, 15, 30, 60]
        .into_iter()
        .map(|m| m * 60_000)
        .find(|&m| m >= age)
        .unwrap_or(max)
        .min(max)
}

/// Splits each run where a sample in between had no value.
fn split_at_unknown<'p>(
    runs: Vec<&'p [(u64, f64)]>,
    samples: &[Sample],
    value: fn(&Sample) -> Option<f64>,
) -> Vec<&'p [(u64, f64)]> {
    let unknown: Vec<u64> = samples
        .iter()
        .filter(|s| value(s).is_none_or(|v| !v.is_finite()))
        .map(|s| s.unix_ms)
        .collect();
    if unknown.is_empty() {
        return runs;
    }
    let mut out = Vec::new();
    for run in runs {
        let mut from = 0;
        for i in 1..run.len() {
            let (a, b) = (run[i - 1].0, run[i].0);
            if unknown.iter().any(|&u| u > a && u < b) {
                out.push(&run[from..i]);
                from = i;
            }
        }
        out.push(&run[from..]);
    }
    out
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (at least 1).
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 1.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * base >= v {
            return m * base;
        }
    }
    10.0 * base
}

fn axis_label(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", trim(v / 1_000_000.0))
    } else if v >= 1_000.0 {
        format!("{}k", trim(v / 1_000.0))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let text = format!("{v:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::history::Basis;

    fn sample(unix_ms: u64, lag: Option<u64>) -> Sample {
        Sample {
            unix_ms,
            lag_seconds: lag,
            rows_per_second: None,
            basis: Basis::ThisNode,
        }
    }

    fn lag_chart() -> Chart {
        Chart {
            id: "chart-lag",
            title: "Lag (seconds)",
            value: |s| s.lag_seconds.map(|v| v as f64),
            threshold: Some(60.0),
        }
    }

    #[test]
    fn scale_is_rounded_up() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(axis_label(2000.0), "2k");
        assert_eq!(axis_label(2.5), "2.5");
    }

    #[test]
    fn gaps_and_unknown_values_break_the_line() {
        let now = 10_000_000;
        let samples = vec![
            sample(now - 40_000, Some(1)),
            sample(now - 35_000, Some(2)),
            sample(now - 30_000, None),
            sample(now - 25_000, Some(3)),
            sample(now - 20_000, Some(4)),
            // 20 s without a sample: a gap, then a lone point.
            sample(now, Some(5)),
        ];
        let svg = lag_chart().svg(&samples, now);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains(r#"data-points="5""#), "{svg}");
        // The threshold (60) is above the data's scale (5): not drawn.
        assert!(!svg.contains("threshold"), "{svg}");
    }

    #[test]
    fn the_time_axis_spans_the_history_there_is() {
        let at = |ms| [sample(ms, Some(1))];
        assert_eq!(span_ms(&[], 1_000), 300_000);
        assert_eq!(span_ms(&at(10_000_000 - 20_000), 10_000_000), 300_000);
        assert_eq!(span_ms(&at(10_000_000 - 301_000), 10_000_000), 600_000);
        assert_eq!(span_ms(&at(10_000_000 - 1_000_000), 10_000_000), 1_800_000);
        assert_eq!(span_ms(&at(0), 10_000_000), 3_600_000);
        let svg = lag_chart().svg(&at(10_000_000 - 400_000), 10_000_000);
        assert!(
            svg.contains(">−10 min<") && svg.contains(">−2 min<"),
            "{svg}"
        );
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = lag_chart().svg(&[], 1_000);
        assert!(svg.contains("no samples yet"));
        assert!(svg.starts_with(r#"<svg id="chart-lag""#));
        let high: Vec<Sample> = (0..3)
            .map(|i| sample(1_000 + i * 5_000, Some(90)))
            .collect();
        assert!(lag_chart()
            .svg(&high, 11_000)
            .contains(r#"class="threshold""#));
    }
}
