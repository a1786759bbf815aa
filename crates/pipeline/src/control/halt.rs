//! What a halt records: the failed batch (reported by Load through a
//! [`FailedSlot`]) and the failing change as exactly as the error names it.

use std::sync::{Arc, Mutex};

use sluice_coord::{ChangeFailure, ColumnValue, HaltRecord, HaltedBatch, ServerMessage};
use sluice_core::time::unix_ms;
use sluice_load::LoadError;

use crate::batch::{Batch, BatchBody};
use crate::error::PipelineError;

/// Where Load leaves the batch it failed on, for the halt record.
#[derive(Clone, Default)]
pub struct FailedSlot(Arc<Mutex<Option<HaltedBatch>>>);

impl FailedSlot {
    /// Records `batch` as the one that failed.
    pub fn set(&self, batch: &Batch) {
        let ddl = match &batch.body {
            BatchBody::Ddl(d) => Some(match &d.decision {
                Some(crate::ddl::DdlDecision::Apply(routed)) => routed.sql.clone(),
                _ => d.sql.clone(),
            }),
            BatchBody::Rows(_) => None,
        };
        let failed = HaltedBatch {
            id: batch.id,
            start: (!batch.start.file.is_empty()).then(|| batch.start.clone()),
            end: batch.end.clone(),
            through: batch.through.clone(),
            rows: batch.rows() as u64,
            ddl,
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(failed);
    }

    /// The failed batch, once (the slot is emptied).
    pub fn take(&self) -> Option<HaltedBatch> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The halt record for `error` of `stage`.
pub fn halt_record(
    stage: &str,
    error: &PipelineError,
    batch: Option<HaltedBatch>,
    node: &str,
    term: Option<i64>,
    distributed: bool,
) -> HaltRecord {
    HaltRecord {
        stage: stage.to_string(),
        message: error.to_string(),
        class: "definite".into(),
        batch,
        failure: failure(error),
        node: node.to_string(),
        term,
        halted_at_unix_ms: unix_ms(),
        distributed,
    }
}

/// The stage a term's error comes from, for the halt record.
pub fn stage_of(error: &PipelineError) -> &'static str {
    match error {
        PipelineError::Source(_) | PipelineError::Refused { .. } => "select",
        PipelineError::Load(_)
        | PipelineError::Ddl { .. }
        | PipelineError::DdlRefused { .. }
        | PipelineError::Remote { .. } => "load",
        PipelineError::Transform { .. } => "transform",
        PipelineError::Stage { stage, .. } => stage,
        _ => "runtime",
    }
}

fn server(s: &sluice_load::ServerError) -> ServerMessage {
    ServerMessage {
        code: s.code,
        sqlstate: s.sqlstate.clone(),
        message: s.message.clone(),
    }
}

/// The failing change, as far as `error` names it.
fn failure(error: &PipelineError) -> Option<ChangeFailure> {
    match error {
        PipelineError::Load(e) => Some(match e {
            LoadError::Rejected {
                table,
                detail,
                server: s,
                ..
            } => ChangeFailure {
                table: Some(table.clone()),
                key: Some(detail.key.clone()),
                key_values: detail.key_values.as_ref().map(|kv| {
                    kv.iter()
                        .map(|(column, value)| ColumnValue {
                            column: column.clone(),
                            value: value.clone(),
                        })
                        .collect()
                }),
                statement: Some(detail.statement.clone()),
                server: Some(server(s)),
            },
            LoadError::Conflict {
                table, key, row, ..
            } => ChangeFailure {
                table: Some(table.clone()),
                key: Some(key.clone()),
                key_values: Some(
                    row.key_values
                        .iter()
                        .map(|(column, value)| ColumnValue {
                            column: column.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                ),
                ..ChangeFailure::default()
            },
            LoadError::Refused { table, key, .. } => ChangeFailure {
                table: Some(table.clone()),
                key: Some(key.clone()),
                ..ChangeFailure::default()
            },
            LoadError::Ddl { sql, .. } => ChangeFailure {
                statement: Some(sql.clone()),
                server: e.server_error().as_ref().map(server),
                ..ChangeFailure::default()
            },
            other => ChangeFailure {
                server: other.server_error().as_ref().map(server),
                ..ChangeFailure::default()
            },
        }),
        PipelineError::Ddl { sql, message, .. } => Some(ChangeFailure {
            statement: Some(sql.clone()),
            server: parse_server(message),
            ..ChangeFailure::default()
        }),
        PipelineError::DdlRefused { sql, .. } => Some(ChangeFailure {
            statement: Some(sql.clone()),
            ..ChangeFailure::default()
        }),
        PipelineError::Transform { table, .. } => Some(ChangeFailure {
            table: Some(table.clone()),
            ..ChangeFailure::default()
        }),
        _ => None,
    }
}

/// `error 1050 (42S01): Table 'x' already exists` as sqlx prints a server
/// error (DDL errors reach the pipeline as text).
fn parse_server(message: &str) -> Option<ServerMessage> {
    let rest = message.split("error returned from database: ").nth(1)?;
    let (code, text) = rest.split_once(' ')?;
    let code: u16 = code.trim_end_matches(':').parse().ok()?;
    let (sqlstate, text) = match text.strip_prefix('(') {
        Some(t) => match t.split_once(')') {
            Some((state, rest)) => (Some(state.to_string()), rest.trim_start_matches(':').trim()),
            None => (None, text),
        },
        None => (None, text),
    };
    Some(ServerMessage {
        code,
        sqlstate,
        message: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{ErrorClass, Position, Value};

    #[test]
    fn a_rejected_row_is_named_exactly() {
        let e = PipelineError::Load(LoadError::Rejected {
            batch_id: 3,
            table: "`shop`.`events`".into(),
            detail: Box::new(sluice_load::RejectedDetail {
                key: "(id=5)".into(),
                key_values: Some(vec![("id".into(), Value::Int(5))]),
                statement: "INSERT INTO …".into(),
            }),
            server: sluice_load::ServerError {
                code: 1406,
                sqlstate: Some("22001".into()),
                message: "Data too long for column 'v' at row 1".into(),
            },
            class: ErrorClass::Definite,
            attempts: 1,
            unique_conflict: false,
        });
        let batch = HaltedBatch {
            id: 3,
            start: Some(Position::new("b.000001", 4)),
            end: Position::new("b.000001", 90),
            through: Position::new("b.000001", 90),
            rows: 1,
            ddl: None,
        };
        let h = halt_record(stage_of(&e), &e, Some(batch), "n", Some(9), false);
        assert_eq!(h.stage, "load");
        let f = h.failure.expect("failure");
        assert_eq!(f.table.as_deref(), Some("`shop`.`events`"));
        assert_eq!(f.key_values.expect("exact")[0].value, Value::Int(5));
        assert_eq!(f.server.expect("server").code, 1406);
        assert!(h.message.contains("Data too long"), "{}", h.message);
    }

    #[test]
    fn a_conflict_names_its_row_exactly() {
        let e = PipelineError::Load(LoadError::Conflict {
            batch_id: 4,
            table: "`app`.`t`".into(),
            key: "(id=7)".into(),
            row: Box::new(sluice_load::ConflictRow {
                key_values: vec![("id".into(), Value::Int(7))],
                target: "{}".into(),
                before: "a row".into(),
            }),
        });
        assert!(
            e.to_string()
                .contains("target row: {}, source before image: a row"),
            "{e}"
        );
        let h = halt_record(stage_of(&e), &e, None, "n", None, false);
        assert_eq!(h.stage, "load");
        let f = h.failure.expect("failure");
        assert_eq!(f.table.as_deref(), Some("`app`.`t`"));
        assert_eq!(f.key.as_deref(), Some("(id=7)"));
        let kv = f.key_values.expect("exact");
        assert_eq!(
            (kv[0].column.as_str(), &kv[0].value),
            ("id", &Value::Int(7))
        );
    }

    #[test]
    fn sqlx_server_text_is_parsed() {
        let s =
            parse_server("error returned from database: 1050 (42S01): Table 't' already exists")
                .expect("parsed");
        assert_eq!(s.code, 1050);
        assert_eq!(s.sqlstate.as_deref(), Some("42S01"));
        assert_eq!(s.message, "Table 't' already exists");
        assert!(parse_server("something else").is_none());
    }
}
