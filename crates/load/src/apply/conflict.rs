//! Conflicts of bidirectional pipelines: detection and policy.
//!
//! Two sites writing the same row between two replications diverge
//! silently under plain upserts: each side's change overwrites the other's.
//! With [`LoaderOptions::conflicts`](super::LoaderOptions::conflicts) set,
//! the loader therefore checks every keyed row it writes against what the
//! source held **before** the batch changed it:
//!
//! * the *expected* state of a key is its first change's before image in
//!   the batch (an update or delete), or "absent" (an insert);
//! * the *final* state is what the merged batch writes: the last after
//!   image, or "absent" for a delete.
//!
//! Inside the worker's transaction, before the key's statements, the target
//! row is read with `SELECT … FOR UPDATE` (so no local writer changes it
//! between the check and the write) and compared **on the server** with
//! both images, column by column with `<=>` on the same bound values the
//! writes use (so every type compares as the server stores it; a known
//! limit: strings compare under the column's collation, so a change of
//! letter case only is not a conflict in a `_ci` column). A target row equal
//! to the expected state is the normal case; equal to the final state means
//! the change is already there (a replayed batch, or both sites made the
//! same change) — neither is a conflict. Anything else is a conflict, and
//! the policy decides:
//!
//! * `source_wins`: the source's change is applied;
//! * `target_wins`: the key's operations are left out, the target row stays;
//! * `newer_wins: COLUMN`: the target row stays when its `COLUMN` is greater
//!   (`>` on the server) than the source image's (the final image, or the
//!   before image of a delete); else the source's change is applied;
//!   A keyed table without `COLUMN` is refused with a definite
//!   [`LoadError::NewerWinsColumn`] when a batch first touches it
//!   ([`check_newer_wins`]), before anything of the batch is written;
//! * `stop`: a definite [`LoadError::Conflict`] naming table and key; the
//!   transaction rolls back and the pipeline halts.
//!
//! Every conflict is written to `sluice_meta.conflicts` in the same
//! transaction (both images and the target row as JSON objects, binary
//! values as `0x…` hex; policy, winner, batch, time) and returned in
//! [`ApplyStats::conflicts`](super::ApplyStats::conflicts) for the metrics
//! and the `conflict` event. Keys of tables without a key are not checked
//! (their deletes already match the whole before image).
//!
//! Replays are judged too (a batch in flight at a crash, a batch retried
//! after a `stop` halt): otherwise the source would win every conflict of
//! the replayed batch silently. Rows a first attempt already committed equal
//! the final state and pass. A known limit: when the replay cuts the
//! in-flight range into smaller batches than the first attempt, a key
//! changed in two of them holds the later state on the target while the
//! earlier batch is replayed, which is judged a conflict. `target_wins` and
//! `newer_wins` then keep that later state, which the later batch writes
//! anyway, and `source_wins` rewrites it, so the rows converge; such a
//! conflict is recorded like any other, and under `stop` halts the pipeline
//! (`sluice errors skip --scope change` drops that row; its later change
//! follows).
//!
//! The source-order fallback after a unique-key collision (see
//! [`super`]) applies its rows without judging them: it rewrites each
//! change one by one, where the expected/final images of a key no longer
//! describe a single statement.
//!
//! It costs one round trip per keyed row, only for bidirectional pipelines.

use std::collections::{HashMap, HashSet};

use sluice_core::{ChangeKind, Row, RowChange, TableSchema, Value};
use sqlx::mysql::{MySqlArguments, MySqlConnection};
use sqlx::Row as _;

use super::catalog::{replication_key, TargetKeys};
use super::options::{ConflictPolicy, ConflictRules, ConflictSeen};
use super::partition::{Piece, PieceOp};
use crate::error::{ConflictRow, LoadError};
use crate::key::{describe_key, key_bytes};
use crate::merge::qualified;
use crate::sql::{encode_value, push_ident};

/// The expected state of every key a batch changes: its first change's
/// before image, `None` for an insert.
#[derive(Default)]
pub(super) struct Expected<'a> {
    by_key: HashMap<(String, String, Vec<u8>), Option<&'a Row>>,
}

impl<'a> Expected<'a> {
    pub(super) fn of(changes: &'a [RowChange], keys: &TargetKeys) -> Self {
        let mut by_key = HashMap::new();
        let mut buf = Vec::new();
        for c in changes {
            let t: &TableSchema = &c.table;
            let Some(key) = replication_key(t, keys) else {
                continue;
            };
            let mut note = |row: &'a Row, before: Option<&'a Row>| {
                if key.iter().all(|&i| i < row.len()) {
                    let kb = key_bytes(&mut buf, row, &key).to_vec();
                    by_key
                        .entry((t.schema.clone(), t.table.clone(), kb))
                        .or_insert(before);
                }
            };
            match (c.kind, &c.before, &c.after) {
                (ChangeKind::Insert, _, Some(a)) => note(a, None),
                (ChangeKind::Delete, Some(b), _) => note(b, Some(b)),
                (ChangeKind::Update, Some(b), Some(a)) => {
                    note(b, Some(b));
                    // A key-changing update: the new key did not exist.
                    note(a, None);
                }
                _ => {}
            }
        }
        Expected { by_key }
    }

    fn get(&self, table: &TableSchema, kb: &[u8]) -> Option<Option<&'a Row>> {
        self.by_key
            .get(&(table.schema.clone(), table.table.clone(), kb.to_vec()))
            .copied()
    }
}

/// The `newer_wins` column of `table` (column names compare as MySQL's
/// do: without regard to case).
fn newer_column(table: &TableSchema, name: &str) -> Option<usize> {
    table
        .columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

/// Under `newer_wins: COLUMN`, every keyed table of `changes` has `COLUMN`
/// (keyless tables are never judged); see the module docs.
pub(super) fn check_newer_wins(
    rules: &ConflictRules,
    batch_id: u64,
    changes: &[RowChange],
    keys: &TargetKeys,
) -> Result<(), LoadError> {
    let ConflictPolicy::NewerWins(column) = &rules.policy else {
        return Ok(());
    };
    let mut checked: HashSet<(&str, &str)> = HashSet::new();
    for c in changes {
        let t: &TableSchema = &c.table;
        if !checked.insert((&t.schema, &t.table)) {
            continue;
        }
        if replication_key(t, keys).is_some() && newer_column(t, column).is_none() {
            return Err(LoadError::NewerWinsColumn {
                batch_id,
                table: qualified(t),
                column: column.clone(),
            });
        }
    }
    Ok(())
}

/// Per transaction: keys already judged, and whether their changes go on.
pub(super) type Judged = HashMap<(String, String, Vec<u8>), bool>;

/// The rows of `piece` whose changes are applied; records conflicts in the
/// transaction and in `seen`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn judge<'a>(
    conn: &mut MySqlConnection,
    batch_id: u64,
    rules: &ConflictRules,
    expected: &Expected<'_>,
    judged: &mut Judged,
    piece: &Piece<'a>,
    seen: &mut Vec<ConflictSeen>,
) -> Result<Vec<&'a Row>, LoadError> {
    let (Some(key), PieceOp::Upsert | PieceOp::Replace | PieceOp::Delete) =
        (piece.key.as_deref(), piece.op)
    else {
        return Ok(piece.rows.clone());
    };
    let table = piece.table;
    let cols: Vec<usize> = piece.target().cols().collect();
    let mut kept = Vec::with_capacity(piece.rows.len());
    let mut buf = Vec::new();
    for &row in &piece.rows {
        let kb = key_bytes(&mut buf, row, key).to_vec();
        let id = (table.schema.clone(), table.table.clone(), kb);
        if let Some(&go) = judged.get(&id) {
            if go {
                kept.push(row);
            }
            continue;
        }
        let Some(before) = expected.get(table, &id.2) else {
            kept.push(row);
            continue;
        };
        let after = (piece.op != PieceOp::Delete).then_some(row);
        if before.is_some_and(|b| b.len() != row.len()) {
            // Another shape of the table earlier in the batch: not comparable.
            kept.push(row);
            continue;
        }
        let go = judge_row(
            conn, batch_id, rules, table, key, &cols, row, before, after, seen,
        )
        .await?;
        judged.insert(id, go);
        if go {
            kept.push(row);
        }
    }
    Ok(kept)
}

/// The target row as the check reads it: its JSON image, and whether it
/// equals the expected image, the final image, and is newer (`1`/`0`, NULL
/// when not asked).
type TargetRow = (Option<Vec<u8>>, Option<i64>, Option<i64>, Option<i64>);

/// Judges one key (see the module docs); whether the source's change goes on.
#[allow(clippy::too_many_arguments)]
async fn judge_row(
    conn: &mut MySqlConnection,
    batch_id: u64,
    rules: &ConflictRules,
    table: &TableSchema,
    key: &[usize],
    cols: &[usize],
    row: &Row,
    before: Option<&Row>,
    after: Option<&Row>,
    seen: &mut Vec<ConflictSeen>,
) -> Result<bool, LoadError> {
    let failed = |e| {
        LoadError::target(
            Some(batch_id),
            "reading the target row to check for a conflict",
            e,
        )
    };
    let encode = |args: &mut MySqlArguments, v: &Value| {
        encode_value(args, v).map_err(|reason| LoadError::Refused {
            batch_id,
            table: qualified(table),
            key: describe_key(table, row, key),
            reason: format!("conflict check: {reason}"),
        })
    };
    let mut args = MySqlArguments::default();
    let mut sql = String::from("SELECT ");
    push_json_object(&mut sql, table, cols, row, None);
    for image in [before, after] {
        sql.push_str(", ");
        match image {
            Some(img) => {
                push_equal_all(&mut sql, table, cols);
                for &c in cols {
                    encode(&mut args, &img[c])?;
                }
            }
            None => sql.push_str("NULL"),
        }
    }
    let newer_col = match &rules.policy {
        ConflictPolicy::NewerWins(name) => newer_column(table, name),
        _ => None,
    };
    sql.push_str(", ");
    match (newer_col, after.or(before)) {
        (Some(c), Some(img)) => {
            push_ident(&mut sql, &table.columns[c].name);
            sql.push_str(" > ?");
            encode(&mut args, &img[c])?;
        }
        _ => sql.push_str("NULL"),
    }
    sql.push_str(" FROM ");
    sql.push_str(&qualified(table));
    sql.push_str(" WHERE ");
    for (n, &k) in key.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        push_ident(&mut sql, &table.columns[k].name);
        sql.push_str(" = ?");
        encode(&mut args, &row[k])?;
    }
    sql.push_str(" FOR UPDATE");
    let found = sqlx::query_with(&sql, args)
        .persistent(false)
        .fetch_optional(&mut *conn)
        .await
        .map_err(failed)?;
    let target: Option<TargetRow> = match &found {
        Some(r) => Some((
            r.try_get(0).map_err(failed)?,
            r.try_get(1).map_err(failed)?,
            r.try_get(2).map_err(failed)?,
            r.try_get(3).map_err(failed)?,
        )),
        None => None,
    };
    let equal = |image: Option<&Row>, flag: Option<i64>| match (&target, image) {
        (None, None) => true,
        (Some(_), Some(_)) => flag == Some(1),
        _ => false,
    };
    let (as_expected, as_final) = match &target {
        Some((_, e, f, _)) => (equal(before, *e), equal(after, *f)),
        None => (equal(before, None), equal(after, None)),
    };
    if as_expected || as_final {
        return Ok(true);
    }
    let key_text = describe_key(table, row, key);
    let target_json = target
        .as_ref()
        .and_then(|t| t.0.as_ref())
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let source_won = match &rules.policy {
        ConflictPolicy::SourceWins => true,
        ConflictPolicy::TargetWins => false,
        // A target row without a greater COLUMN (or none at all) loses.
        ConflictPolicy::NewerWins(_) => target.as_ref().and_then(|t| t.3) != Some(1),
        ConflictPolicy::Stop => {
            return Err(LoadError::Conflict {
                batch_id,
                table: qualified(table),
                key: key_text,
                row: Box::new(ConflictRow {
                    key_values: key
                        .iter()
                        .filter_map(|&k| {
                            Some((table.columns.get(k)?.name.clone(), row.get(k)?.clone()))
                        })
                        .collect(),
                    target: target_json.unwrap_or_else(|| "none".into()),
                    before: match before {
                        Some(_) => "a row".into(),
                        None => "none (an insert)".into(),
                    },
                }),
            })
        }
    };
    record(
        conn,
        batch_id,
        rules,
        table,
        cols,
        &key_text,
        before,
        after,
        target_json.as_deref(),
        source_won,
    )
    .await?;
    tracing::warn!(batch_id, table = %qualified(table), key = %key_text, policy = %rules.policy.name(), source_won, "conflict: the target row is not what the source held before the change");
    seen.push(ConflictSeen {
        table: qualified(table),
        key: key_text,
        source_won,
    });
    Ok(source_won)
}

/// Inserts the conflict's row into `sluice_meta.conflicts`.
#[allow(clippy::too_many_arguments)]
async fn record(
    conn: &mut MySqlConnection,
    batch_id: u64,
    rules: &ConflictRules,
    table: &TableSchema,
    cols: &[usize],
    key_text: &str,
    before: Option<&Row>,
    after: Option<&Row>,
    target_json: Option<&str>,
    source_won: bool,
) -> Result<(), LoadError> {
    let mut args = MySqlArguments::default();
    let mut sql = String::from(
        "INSERT INTO `sluice_meta`.`conflicts` (pipeline, table_name, row_key, source_before, \
         source_after, target_row, policy, winner, batch_id) VALUES (?, ?, ?, ",
    );
    let add = |args: &mut MySqlArguments, v: &Value| {
        encode_value(args, v).map_err(|reason| LoadError::Refused {
            batch_id,
            table: qualified(table),
            key: key_text.to_string(),
            reason: format!("conflict record: {reason}"),
        })
    };
    add(&mut args, &Value::Text(rules.pipeline.clone()))?;
    add(&mut args, &Value::Text(qualified(table)))?;
    add(&mut args, &Value::Text(key_text.to_string()))?;
    for image in [before, after] {
        match image {
            Some(img) => {
                push_json_object(&mut sql, table, cols, img, Some(()));
                for &c in cols {
                    add(&mut args, &img[c])?;
                }
            }
            None => sql.push_str("NULL"),
        }
        sql.push_str(", ");
    }
    sql.push_str("?, ?, ?, ?)");
    add(
        &mut args,
        &target_json.map_or(Value::Null, |t| Value::Text(t.to_string())),
    )?;
    add(&mut args, &Value::Text(rules.policy.name()))?;
    add(
        &mut args,
        &Value::Text(if source_won { "source" } else { "target" }.into()),
    )?;
    add(&mut args, &Value::UInt(batch_id))?;
    sqlx::query_with(&sql, args)
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| LoadError::target(Some(batch_id), "recording a conflict", e))
}

/// `JSON_OBJECT('c1', X1, …)` where `X` is the column itself (`params:
/// None`) or a placeholder; binary values as `0x…` hex (JSON is text).
fn push_json_object(
    sql: &mut String,
    table: &TableSchema,
    cols: &[usize],
    like: &Row,
    params: Option<()>,
) {
    sql.push_str("JSON_OBJECT(");
    for (n, &c) in cols.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        let name = &table.columns[c].name;
        sql.push('\'');
        sql.push_str(&name.replace('\\', "\\\\").replace('\'', "''"));
        sql.push_str("', ");
        let mut operand = String::new();
        match params {
            Some(()) => operand.push('?'),
            None => push_ident(&mut operand, name),
        }
        if matches!(like.get(c), Some(Value::Bytes(_) | Value::Geometry(_))) {
            sql.push_str(&format!("CONCAT('0x', HEX({operand}))"));
        } else {
            sql.push_str(&operand);
        }
    }
    sql.push(')');
}

/// `(c1 <=> ? AND c2 <=> ? …)`.
fn push_equal_all(sql: &mut String, table: &TableSchema, cols: &[usize]) {
    sql.push('(');
    for (n, &c) in cols.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        push_ident(sql, &table.columns[c].name);
        sql.push_str(" <=> ?");
    }
    sql.push(')');
}

#[cfg(test)]
mod tests {
    use sluice_core::schema::type_code as tc;
    use sluice_core::Column;

    use super::*;

    fn col(name: &str, type_code: u8) -> Column {
        Column {
            name: name.into(),
            type_code,
            meta: 0,
            nullable: false,
            unsigned: false,
            collation: None,
            labels: None,
        }
    }

    #[test]
    fn json_objects_hex_binary_values_and_quote_names() {
        let table = TableSchema {
            schema: "s".into(),
            table: "t".into(),
            columns: vec![col("id", tc::LONG), col("it's", tc::BLOB)],
            primary_key: vec![0],
            has_names: true,
        };
        let row = vec![Value::Int(1), Value::Bytes(vec![1, 2])];
        let mut sql = String::new();
        push_json_object(&mut sql, &table, &[0, 1], &row, None);
        assert_eq!(
            sql,
            "JSON_OBJECT('id', `id`, 'it''s', CONCAT('0x', HEX(`it's`)))"
        );
        let mut sql = String::new();
        push_json_object(&mut sql, &table, &[0, 1], &row, Some(()));
        assert_eq!(sql, "JSON_OBJECT('id', ?, 'it''s', CONCAT('0x', HEX(?)))");
        let mut sql = String::new();
        push_equal_all(&mut sql, &table, &[0, 1]);
        assert_eq!(sql, "(`id` <=> ? AND `it's` <=> ?)");
    }
}
