//! One scenario's result, and the Markdown table / JSON rendering of all;
//! the points of the scale curves.

/// The result of one scenario: sluice's figure, the reference's, their
/// ratio oriented so that **higher is better for sluice**, and the target
/// the issue sets for that ratio.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: String,
    pub metric: String,
    pub sluice: f64,
    pub reference: f64,
    pub reference_tool: String,
    /// sluice / reference for throughputs; reference / sluice for costs
    /// (latency, memory), so ≥ target means "met" either way.
    pub ratio: f64,
    /// The ratio the issue asks for.
    pub target: f64,
    pub note: String,
}

impl Outcome {
    pub fn met(&self) -> bool {
        self.ratio >= self.target
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "sluice": self.sluice,
            "reference": self.reference,
            "reference_tool": self.reference_tool,
            "ratio": self.ratio,
            "target_ratio": (self.target > 0.0).then_some(self.target),
            "met": (self.target > 0.0).then(|| self.met()),
            "note": self.note,
        })
    }
}

/// Figures keep about three significant digits.
fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| scenario | metric | sluice | reference | ratio | target | met | reference tool |\n\
         |---|---|---:|---:|---:|---:|---|---|\n",
    );
    for o in outcomes {
        // A target of 0 means the issue sets none: the figures are reported.
        let (target, met) = if o.target > 0.0 {
            (
                format!("≥ {:.2}", o.target),
                if o.met() { "yes" } else { "**no**" },
            )
        } else {
            ("—".to_string(), "n/a")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {target} | {met} | {} |\n",
            o.scenario,
            o.metric,
            figure(o.sluice),
            figure(o.reference),
            o.ratio,
            o.reference_tool
        ));
    }
    for o in outcomes {
        if !o.note.is_empty() {
            out.push_str(&format!("\n- {}: {}", o.scenario, o.note));
        }
    }
    out.push('\n');
    out
}

/// One point's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub tables: u64,
    /// Columns per row, including the key and the payload.
    pub columns: u64,
    /// Payload bytes per row.
    pub row_bytes: u64,
    pub workers: usize,
}

/// A measured point.
#[derive(Debug, Clone)]
pub struct Point {
    pub dimension: &'static str,
    pub x: u64,
    pub shape: Shape,
    pub rows: u64,
    pub rows_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub peak_rss_mib: f64,
}
