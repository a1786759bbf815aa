//! Values a non-strict source session can hold that a strict target session
//! refuses, and how each reaches the target exactly.
//!
//! The target session is strict ([`crate::apply::SESSION_SQL_MODE`]): a
//! value that does not fit its column is an error, never silently changed.
//! But the source may have stored values under a laxer session, and
//! MariaDB's own row replication applies them as they are (the replica
//! writes the logged record images through the storage engine; sql_mode
//! plays no part). The complete list, with what the loader does for each:
//!
//! | value on the source | written how | strict session | here |
//! |---|---|---|---|
//! | ENUM's error value, index 0 (`''`), from an invalid label under a non-strict mode | any non-strict `INSERT`/`UPDATE` | refused, 1265 | written as the number 0 in a statement run with this module's relaxed sql_mode; the statement's warnings must be exactly those 1265s for those columns, else the batch stops |
//! | zero dates `0000-00-00`, zero-in-date parts (`2021-00-15`) in DATE/DATETIME, the zero TIMESTAMP | sql_mode without NO_ZERO_DATE / NO_ZERO_IN_DATE | refused only with those modes | the target session has neither |
//! | invalid dates (`2021-02-30`) | ALLOW_INVALID_DATES | refused without it | the target session has it |
//! | AUTO_INCREMENT column holding 0 | NO_AUTO_VALUE_ON_ZERO, or an ALTER | takes a new number | the target session has NO_AUTO_VALUE_ON_ZERO |
//! | rows violating a CHECK constraint, invalid JSON in MariaDB's JSON (a `json_valid` CHECK) | `check_constraint_checks=0` | refused, 4025 | the target session sets `check_constraint_checks=0` on MariaDB (the source enforced, or chose not to) |
//! | rows violating a FOREIGN KEY | `foreign_key_checks=0` | refused, 1452 | `foreign_key_checks=0` |
//! | bytes not valid in the column's charset (e.g. 0x80–0xFF in an `ascii` column, written by a binary client; sjis 0x5C) | a binary string literal, `SET NAMES binary`, a sjis client | conversion error, 1366 | decoded as bytes and sent as binary, which the server stores without conversion |
//!
//! Out-of-range numbers, too-long strings and impossible dates cannot be in
//! a table whose definition the target shares: every server stores them
//! clipped or zeroed, and every narrowing ALTER rewrites (and clips) the
//! rows it keeps. A value that does not fit the target's column is
//! therefore schema drift, and stops the pipeline with the server's error
//! naming the table, key and column — also inside a relaxed statement,
//! where it shows as a warning this module does not expect.
//!
//! The relaxed mode is the session's mode without STRICT_ALL_TABLES, set
//! for one statement only: MariaDB `SET STATEMENT sql_mode=… FOR …` (10.1.2+),
//! MySQL `INSERT /*+ SET_VAR(sql_mode=…) */` (8.0.3+), so no connection is
//! ever left in it. Rows that need it are rare (only non-strict writes of
//! invalid labels make them) and go one row per statement, which keeps the
//! warnings attributable to one row.

use sluice_core::{Row, TableSchema, Value};

use crate::sql::{Kind, Statement};

/// [`crate::apply::SESSION_SQL_MODE`] without STRICT_ALL_TABLES.
pub const RELAXED_SQL_MODE: &str =
    "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES";

/// The target's server family, for the per-statement syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetFlavour {
    Mariadb,
    Mysql,
}

impl TargetFlavour {
    /// Asks the server (`SELECT VERSION()`).
    pub async fn of_connection(conn: &mut sqlx::MySqlConnection) -> Result<Self, sqlx::Error> {
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(conn)
            .await?;
        Ok(TargetFlavour::of_version(&version))
    }

    /// From `SELECT VERSION()`.
    pub fn of_version(version: &str) -> TargetFlavour {
        if version.contains("MariaDB") {
            TargetFlavour::Mariadb
        } else {
            TargetFlavour::Mysql
        }
    }
}

/// Whether writing `row` needs the relaxed mode: it holds an ENUM error
/// value.
pub fn needs_relaxed(row: &Row) -> bool {
    row.iter()
        .any(|v| matches!(v, Value::Enum { index: 0, .. }))
}

/// Splits the rows of a statement kind into those written normally and
/// those needing the relaxed mode; `None` when none does (the usual case).
pub fn split<'a>(kind: Kind<'_>, rows: &[&'a Row]) -> Option<(Vec<&'a Row>, Vec<&'a Row>)> {
    if !matches!(kind, Kind::Upsert(_) | Kind::Replace | Kind::Insert) {
        return None;
    }
    if !rows.iter().any(|r| needs_relaxed(r)) {
        return None;
    }
    Some(rows.iter().partition(|r| !needs_relaxed(r)))
}

/// `sql` (an `INSERT …` or `REPLACE …`) run with the relaxed sql_mode.
pub fn relaxed_sql(sql: &str, flavour: TargetFlavour) -> String {
    match flavour {
        TargetFlavour::Mariadb => {
            format!("SET STATEMENT sql_mode='{RELAXED_SQL_MODE}', max_error_count=65535 FOR {sql}")
        }
        TargetFlavour::Mysql => {
            let keyword_end = sql.find(' ').unwrap_or(sql.len());
            format!(
                "{} /*+ SET_VAR(sql_mode='{RELAXED_SQL_MODE}') */{}",
                &sql[..keyword_end],
                &sql[keyword_end..]
            )
        }
    }
}

/// Runs a one-row `INSERT`/`REPLACE` under the relaxed sql_mode and returns
/// the warnings the server gave it.
pub async fn execute(
    conn: &mut sqlx::MySqlConnection,
    flavour: TargetFlavour,
    stmt: Statement,
) -> Result<Vec<Warning>, sqlx::Error> {
    use sqlx::{Executor as _, Row as _};
    sqlx::query_with(&relaxed_sql(&stmt.sql, flavour), stmt.args)
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    // A plain string runs over the text protocol: preparing SHOW WARNINGS
    // would be a statement of its own, which clears them.
    let rows = conn.fetch_all("SHOW WARNINGS").await?;
    rows.iter()
        .map(|r| {
            Ok(Warning {
                level: r.try_get(0)?,
                code: r.try_get(1)?,
                message: r.try_get(2)?,
            })
        })
        .collect()
}

/// One row of `SHOW WARNINGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub level: String,
    pub code: u32,
    pub message: String,
}

/// MySQL's deprecation warning for `VALUES()` in `ON DUPLICATE KEY UPDATE`.
const ER_WARN_DEPRECATED_SYNTAX: u32 = 1287;
/// "Data truncated for column 'x' at row n".
const WARN_DATA_TRUNCATED: u32 = 1265;

/// The warnings of a relaxed one-row statement writing `row` that its ENUM
/// error values do not explain: anything but a 1265 naming a column that
/// holds one (notes and MySQL's `VALUES()` deprecation aside).
pub fn unexpected<'w>(warnings: &'w [Warning], table: &TableSchema, row: &Row) -> Vec<&'w Warning> {
    let expected: Vec<String> = table
        .columns
        .iter()
        .zip(row)
        .filter(|(_, v)| matches!(v, Value::Enum { index: 0, .. }))
        .map(|(c, _)| format!("Data truncated for column '{}' at row ", c.name))
        .collect();
    warnings
        .iter()
        .filter(|w| {
            let harmless = w.level.eq_ignore_ascii_case("Note")
                || w.code == ER_WARN_DEPRECATED_SYNTAX
                || (w.code == WARN_DATA_TRUNCATED
                    && expected.iter().any(|e| w.message.starts_with(e.as_str())));
            !harmless
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::schema::type_code as tc;
    use sluice_core::Column;

    fn table() -> TableSchema {
        let col = |name: &str, type_code| Column {
            name: name.into(),
            type_code,
            meta: 0,
            nullable: true,
            unsigned: false,
            collation: None,
            labels: None,
        };
        TableSchema {
            schema: "d".into(),
            table: "t".into(),
            columns: vec![
                col("id", tc::LONG),
                col("e", tc::ENUM),
                col("v", tc::VARCHAR),
            ],
            primary_key: vec![0],
            has_names: true,
        }
    }

    #[test]
    fn the_relaxed_mode_is_the_session_mode_without_strictness() {
        let session: Vec<&str> = crate::apply::SESSION_SQL_MODE
            .split(',')
            .filter(|m| *m != "STRICT_ALL_TABLES")
            .collect();
        assert_eq!(session.join(","), RELAXED_SQL_MODE);
    }

    #[test]
    fn statements_per_flavour() {
        let sql = "INSERT INTO `d`.`t` (`id`) VALUES (?)";
        assert_eq!(
            relaxed_sql(sql, TargetFlavour::Mariadb),
            format!("SET STATEMENT sql_mode='{RELAXED_SQL_MODE}', max_error_count=65535 FOR {sql}")
        );
        assert_eq!(
            relaxed_sql(sql, TargetFlavour::Mysql),
            format!("INSERT /*+ SET_VAR(sql_mode='{RELAXED_SQL_MODE}') */ INTO `d`.`t` (`id`) VALUES (?)")
        );
        assert_eq!(
            TargetFlavour::of_version("10.11.6-MariaDB-log"),
            TargetFlavour::Mariadb
        );
        assert_eq!(TargetFlavour::of_version("8.4.3"), TargetFlavour::Mysql);
    }

    #[test]
    fn only_the_enum_error_value_splits_rows() {
        let zero = Value::Enum {
            index: 0,
            label: Some("".into()),
        };
        let one = Value::Enum {
            index: 1,
            label: Some("".into()),
        };
        let a: Row = vec![Value::Int(1), one, Value::Null];
        let b: Row = vec![Value::Int(2), zero, Value::Null];
        let rows = [&a, &b];
        assert!(split(Kind::Delete(&[0]), &rows).is_none());
        assert!(split(Kind::Insert, &rows[..1]).is_none());
        let (normal, relaxed) = split(Kind::Upsert(&[0]), &rows).expect("split");
        assert_eq!((normal.len(), relaxed.len()), (1, 1));
        assert_eq!(relaxed[0][0], Value::Int(2));
    }

    #[test]
    fn warnings_other_than_the_enum_columns_are_unexpected() {
        let t = table();
        let row: Row = vec![
            Value::Int(1),
            Value::Enum {
                index: 0,
                label: None,
            },
            Value::Text("x".into()),
        ];
        let w = |level: &str, code, message: &str| Warning {
            level: level.into(),
            code,
            message: message.into(),
        };
        let fine = [
            w("Warning", 1265, "Data truncated for column 'e' at row 1"),
            w("Warning", 1265, "Data truncated for column 'e' at row 1"),
            w("Warning", 1287, "'VALUES function' is deprecated"),
            w("Note", 1003, "anything"),
        ];
        assert!(unexpected(&fine, &t, &row).is_empty());
        let drift = [
            w("Warning", 1265, "Data truncated for column 'e' at row 1"),
            w("Warning", 1265, "Data truncated for column 'v' at row 1"),
            w(
                "Warning",
                1264,
                "Out of range value for column 'id' at row 1",
            ),
        ];
        let bad = unexpected(&drift, &t, &row);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].message.contains("'v'"));
    }
}
