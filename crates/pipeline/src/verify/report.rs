//! Verify's output: the JSON document (`--json`) and the text report.
//!
//! JSON, one object, these field names are stable:
//!
//! ```text
//! equal        bool     no table differs (after --repair: nothing remains)
//!                       and every table could be verified
//! repaired     number   rows written or deleted by --repair (only then)
//! tables       [table]  in source name order:
//!   table      string   source schema.table
//!   target     string   target schema.table (after routes)
//!   chunks     number   key ranges compared (1 for a keyless table)
//!   rows       number   source rows compared
//!   differences [diff]  what persisted through every re-check:
//!     kind     "missing_on_target" | "extra_on_target" | "different"
//!     key      {column: value} | null   (null for a keyless table)
//!     row      {column: value}          keyless tables only: the row
//!     columns  [string]                 "different" only: differing columns
//!   remaining  [diff]   --repair only: what still differs afterwards
//!   error      string   only when the table could not be verified
//! ```
//!
//! Column names are the source's; values are in the JSON Lines encoding of
//! `sluice binlog decode` as far as the canonical text allows: integers and
//! BIT as numbers, FLOAT/DOUBLE as numbers, DECIMAL, temporal values and
//! text as strings, binary strings as `{"base64": ..}`, JSON embedded,
//! NULL as null.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use sluice_core::verify::read::BytesRow;
use sluice_core::verify::{differing_columns, Canonical, ColumnKind, DiffKind, VerifyTable};

use super::{Finding, TableOutcome};

/// A canonical value in the JSON Lines encoding.
pub fn json_value(kind: ColumnKind, v: &Canonical) -> Value {
    let Some(bytes) = v else {
        return Value::Null;
    };
    if kind == ColumnKind::Binary {
        return json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) });
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    let number = match kind {
        ColumnKind::Signed => text.parse::<i64>().ok().map(Value::from),
        ColumnKind::Unsigned | ColumnKind::Bit | ColumnKind::Year => {
            text.parse::<u64>().ok().map(Value::from)
        }
        ColumnKind::Float => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        ColumnKind::Json => serde_json::from_str(&text).ok(),
        _ => None,
    };
    number.unwrap_or(Value::String(text))
}

fn object(t: &VerifyTable, idx: impl Iterator<Item = usize>, values: &[Canonical]) -> Value {
    let mut m = Map::new();
    for i in idx {
        let c = &t.columns[i];
        m.insert(
            c.source.clone(),
            json_value(c.kind, values.get(i).unwrap_or(&None)),
        );
    }
    Value::Object(m)
}

/// One difference as JSON.
pub fn finding_json(t: &VerifyTable, f: &Finding) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), f.kind.name().into());
    match &f.key {
        Some(key) => {
            let mut k = Map::new();
            for (c, v) in t.key_columns().zip(key) {
                k.insert(c.source.clone(), json_value(c.kind, v));
            }
            m.insert("key".into(), Value::Object(k));
        }
        None => {
            m.insert("key".into(), Value::Null);
            let row = f.source_row.as_ref().or(f.target_row.as_ref());
            let row = row.map_or(Value::Null, |r| object(t, 0..t.columns.len(), r));
            m.insert("row".into(), row);
        }
    }
    if f.kind == DiffKind::Different {
        m.insert("columns".into(), differing_names(t, f).into());
    }
    Value::Object(m)
}

fn differing_names(t: &VerifyTable, f: &Finding) -> Vec<String> {
    let empty = BytesRow::new();
    let s = f.source_row.as_ref().unwrap_or(&empty);
    let g = f.target_row.as_ref().unwrap_or(&empty);
    differing_columns(s, g)
        .into_iter()
        .filter_map(|i| t.columns.get(i).map(|c| c.source.clone()))
        .collect()
}

/// Whether every table was verified and nothing (now) differs.
pub fn is_equal(outcomes: &[TableOutcome]) -> bool {
    outcomes
        .iter()
        .all(|o| o.error.is_none() && o.current().is_empty())
}

/// The JSON document (see the module docs).
pub fn to_json(outcomes: &[TableOutcome], repaired: Option<u64>) -> Value {
    let tables: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("table".into(), o.table.clone().into());
            m.insert("target".into(), o.target.clone().into());
            m.insert("chunks".into(), o.chunks.into());
            m.insert("rows".into(), o.rows.into());
            let list = |fs: &[Finding]| -> Value {
                match &o.plan {
                    Some(t) => fs
                        .iter()
                        .map(|f| finding_json(t, f))
                        .collect::<Vec<_>>()
                        .into(),
                    None => Value::Array(Vec::new()),
                }
            };
            m.insert("differences".into(), list(&o.differences));
            if let Some(r) = &o.remaining {
                m.insert("remaining".into(), list(r));
            }
            if let Some(e) = &o.error {
                m.insert("error".into(), e.clone().into());
            }
            Value::Object(m)
        })
        .collect();
    let mut doc = Map::new();
    doc.insert("equal".into(), is_equal(outcomes).into());
    if let Some(n) = repaired {
        doc.insert("repaired".into(), n.into());
    }
    doc.insert("tables".into(), tables.into());
    Value::Object(doc)
}

/// The text report: a line per table, a line per difference, a verdict.
pub fn to_text(outcomes: &[TableOutcome], repaired: Option<u64>) -> String {
    let mut out = String::new();
    for o in outcomes {
        if let Some(e) = &o.error {
            out.push_str(&format!("{} → {}  NOT VERIFIED: {e}\n", o.table, o.target));
            continue;
        }
        out.push_str(&format!(
            "{} → {}  chunks {}  rows {}  differences {}\n",
            o.table,
            o.target,
            o.chunks,
            o.rows,
            o.differences.len()
        ));
        if let Some(t) = &o.plan {
            for f in &o.differences {
                out.push_str(&format!("  {}\n", finding_json(t, f)));
            }
            if let Some(r) = &o.remaining {
                out.push_str(&format!("  after repair: {} remain\n", r.len()));
                for f in r {
                    out.push_str(&format!("    {}\n", finding_json(t, f)));
                }
            }
        }
    }
    if let Some(n) = repaired {
        out.push_str(&format!("repaired {n} rows\n"));
    }
    let unverified = outcomes.iter().filter(|o| o.error.is_some()).count();
    let differing: usize = outcomes.iter().map(|o| o.current().len()).sum();
    out.push_str(&if unverified > 0 {
        format!("NOT VERIFIED: {unverified} table(s) could not be compared\n")
    } else if differing > 0 {
        format!("DIFFERENT: {differing} row(s) differ\n")
    } else {
        format!("EQUAL: {} table(s)\n", outcomes.len())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_use_the_json_lines_encoding() {
        let v = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(json_value(ColumnKind::Signed, &v("-3")), json!(-3));
        assert_eq!(
            json_value(ColumnKind::Unsigned, &v("18446744073709551615")),
            json!(18446744073709551615u64)
        );
        assert_eq!(json_value(ColumnKind::Decimal, &v("1.50")), json!("1.50"));
        assert_eq!(
            json_value(ColumnKind::Binary, &v("ab")),
            json!({"base64": "YWI="})
        );
        assert_eq!(
            json_value(ColumnKind::Json, &v("{\"a\":1}")),
            json!({"a": 1})
        );
        assert_eq!(json_value(ColumnKind::Text, &None), Value::Null);
        assert_eq!(json_value(ColumnKind::Float, &v("0.5")), json!(0.5));
    }
}
