//! What routing decided about one DDL statement.

/// What kind of statement (for logs and for the pipeline's decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DdlKind {
    CreateTable,
    AlterTable,
    DropTable,
    RenameTable,
    TruncateTable,
    CreateIndex,
    DropIndex,
}

impl DdlKind {
    /// The statement's leading keywords, e.g. `"CREATE TABLE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DdlKind::CreateTable => "CREATE TABLE",
            DdlKind::AlterTable => "ALTER TABLE",
            DdlKind::DropTable => "DROP TABLE",
            DdlKind::RenameTable => "RENAME TABLE",
            DdlKind::TruncateTable => "TRUNCATE TABLE",
            DdlKind::CreateIndex => "CREATE INDEX",
            DdlKind::DropIndex => "DROP INDEX",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutedDdl {
    pub kind: DdlKind,
    /// The statement with every table reference replaced by `` `tschema`.`ttable` `` (backticks in names doubled).
    pub sql: String,
    /// Source tables referenced, in order of appearance, as (schema, table), after qualifying with the default schema.
    pub source_tables: Vec<(String, String)>,
    /// The same references after routing.
    pub target_tables: Vec<(String, String)>,
    /// Target schemas that must exist before the statement runs (for CREATE TABLE, RENAME TABLE and ALTER TABLE .. RENAME: the schemas of the new names), deduplicated.
    pub create_schemas: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DdlDecision {
    Apply(RoutedDdl),
    /// Not replicated; `reason` is a short human phrase for a log line, e.g. "not a table statement (CREATE DATABASE)", "table shop.tmp_x is filtered out", "unqualified table name and no default schema".
    Ignore {
        reason: String,
    },
}
