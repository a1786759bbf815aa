//! The DDL side (`d_*`, `extra_N` tables): a fixed cycle of schema changes
//! (add, widen, drop and rename columns, rename, truncate, create and drop
//! tables), each followed by rows written into the changed table; and the
//! DML side's transaction generator.

use crate::sql::{q, qt};

use super::rng::Rng;
use super::schema::{col, key, KeyKind, KeyStyle, StepStats, TableState};
use super::values::{bytes_gen, dec, int_gen, str_gen, Cs, Gen, FLAG_LABELS};

pub(super) const EVOLVE: usize = 0;
pub(super) const RENAMED: usize = 1;
pub(super) const TRUNCATED: usize = 2;
/// `tables[FIRST_EXTRA..]` are the `extra_N` tables, oldest first.
pub(super) const FIRST_EXTRA: usize = 3;
pub(super) const REN_A: &str = "d_ren_a";
pub(super) const REN_B: &str = "d_ren_b";

pub(super) fn ddl_tables() -> Vec<TableState> {
    use KeyStyle::*;
    vec![
        TableState::new(
            "d_evolve",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), AltSign),
                col("v", "VARCHAR(50)", str_gen(50, Cs::Utf8)),
                col("n", "INT", int_gen(32, false)),
            ],
        ),
        TableState::new(
            REN_A,
            KeyKind::Primary,
            vec![
                key("id", "BIGINT", int_gen(64, false), Seq),
                col("label", "VARCHAR(30)", str_gen(30, Cs::Utf8)),
                col("at", "DATETIME(6)", Gen::DateTime(6)),
            ],
        ),
        TableState::new(
            "d_trunc",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), Seq),
                col("v", "VARCHAR(30)", str_gen(30, Cs::Latin1)),
                col("amount", "DECIMAL(10,2)", dec(8, 2)),
            ],
        ),
    ]
}

pub(super) fn extra_table(name: &str) -> TableState {
    TableState::new(
        name,
        KeyKind::Primary,
        vec![
            key("id", "BIGINT", int_gen(64, false), KeyStyle::Seq),
            col("label", "VARCHAR(30)", str_gen(30, Cs::Utf8)),
            col("amount", "DECIMAL(12,2)", dec(10, 2)),
            col("created", "DATETIME(6)", Gen::DateTime(6)),
            col("payload", "VARBINARY(64)", bytes_gen(64, 0)),
            col("flags", "SET('x','y','z')", Gen::Set(FLAG_LABELS)),
        ],
    )
}

/// Column types ADD COLUMN picks from.
pub(super) fn added_type(rng: &mut Rng) -> (&'static str, Gen) {
    match rng.below(9) {
        0 => ("INT", int_gen(32, false)),
        1 => ("SMALLINT UNSIGNED", int_gen(16, true)),
        2 => ("VARCHAR(16)", str_gen(16, Cs::Utf8)),
        3 => ("VARCHAR(16) CHARACTER SET latin1", str_gen(16, Cs::Latin1)),
        4 => ("DECIMAL(10,2)", dec(8, 2)),
        5 => ("DATETIME", Gen::DateTime(0)),
        6 => ("TEXT", str_gen(200, Cs::Utf8)),
        7 => ("DOUBLE", Gen::Double),
        _ => ("VARBINARY(16)", bytes_gen(16, 0)),
    }
}

/// What MODIFY COLUMN turns an added column's type into (always a widening,
/// so existing values survive unchanged).
pub(super) fn widened(sql: &str) -> Option<(&'static str, Gen)> {
    Some(match sql {
        "INT" => ("BIGINT", int_gen(64, false)),
        "SMALLINT UNSIGNED" => ("INT UNSIGNED", int_gen(32, true)),
        "VARCHAR(16)" => ("VARCHAR(64)", str_gen(64, Cs::Utf8)),
        // Widens and converts the stored bytes to another charset.
        "VARCHAR(16) CHARACTER SET latin1" => ("VARCHAR(64)", str_gen(64, Cs::Utf8)),
        "DECIMAL(10,2)" => ("DECIMAL(20,4)", dec(16, 4)),
        "DATETIME" => ("DATETIME(6)", Gen::DateTime(6)),
        "TEXT" => ("MEDIUMTEXT", str_gen(200, Cs::Utf8)),
        "VARBINARY(16)" => ("VARBINARY(64)", bytes_gen(64, 0)),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DdlOp {
    AddColumn,
    CreateTable,
    ModifyColumn,
    RenameTable,
    DropColumn,
    TruncateTable,
    DropTable,
}

pub(super) const DDL_CYCLE: &[DdlOp] = &[
    DdlOp::AddColumn,
    DdlOp::CreateTable,
    DdlOp::ModifyColumn,
    DdlOp::RenameTable,
    DdlOp::AddColumn,
    DdlOp::DropColumn,
    DdlOp::TruncateTable,
    DdlOp::DropTable,
];

pub(super) const MAX_ADDED_COLUMNS: usize = 6;

/// The DML side: fixed-schema tables.
#[derive(Debug, Clone)]
pub(super) struct DmlState {
    pub(super) rng: Rng,
    pub(super) tables: Vec<TableState>,
}

/// The DDL side: tables whose schema changes, written only by this side.
#[derive(Debug, Clone)]
pub(super) struct DdlState {
    pub(super) rng: Rng,
    pub(super) tables: Vec<TableState>,
    pub(super) added: Vec<String>,
    pub(super) next_col: u64,
    pub(super) next_extra: u64,
    pub(super) cycle: usize,
    pub(super) stats: StepStats,
}

/// Statements per random transaction: 1..=MAX_TXN_STATEMENTS.
pub(super) const MAX_TXN_STATEMENTS: usize = 6;

impl DmlState {
    pub(super) fn next_transaction(&mut self, schema: &str) -> (Vec<String>, StepStats) {
        let mut st = StepStats {
            transactions: 1,
            ..StepStats::default()
        };
        let n = self.rng.between(1, MAX_TXN_STATEMENTS);
        let stmts = (0..n)
            .map(|_| {
                let t = self.rng.below(self.tables.len() as u64) as usize;
                self.tables[t].statement(&mut self.rng, schema, &mut st)
            })
            .collect();
        (stmts, st)
    }
}

impl DdlState {
    /// The next schema change and a transaction of rows around it.
    pub(super) fn next(&mut self, schema: &str) -> (String, Vec<String>) {
        let mut op = DDL_CYCLE[self.cycle % DDL_CYCLE.len()];
        self.cycle += 1;
        // Fall back when an operation has nothing to work on.
        let modifiable = self
            .added
            .iter()
            .filter(|n| {
                self.tables[EVOLVE]
                    .cols
                    .iter()
                    .any(|c| &c.name == *n && widened(&c.sql).is_some())
            })
            .count();
        op = match op {
            DdlOp::AddColumn if self.added.len() >= MAX_ADDED_COLUMNS => DdlOp::DropColumn,
            DdlOp::DropColumn if self.added.is_empty() => DdlOp::AddColumn,
            DdlOp::ModifyColumn if modifiable == 0 => DdlOp::AddColumn,
            DdlOp::DropTable if self.tables.len() == FIRST_EXTRA => DdlOp::CreateTable,
            op => op,
        };
        let rng = &mut self.rng;
        let mut st = StepStats::default();
        let mut follow = Vec::new();
        let (ddl, target) = match op {
            DdlOp::AddColumn => {
                let (ty, gen) = added_type(rng);
                let name = format!("c{}", self.next_col);
                self.next_col += 1;
                let default = if rng.chance(50) {
                    format!(" DEFAULT {}", gen.random(rng))
                } else {
                    String::new()
                };
                let t = &mut self.tables[EVOLVE];
                let r = rng.below(10);
                let (pos, at) = if r < 2 {
                    (" FIRST".to_string(), 0)
                } else if r < 5 {
                    let j = rng.below(t.cols.len() as u64) as usize;
                    (format!(" AFTER {}", q(&t.cols[j].name)), j + 1)
                } else {
                    (String::new(), t.cols.len())
                };
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN {} {ty} NULL{default}{pos}",
                    qt(schema, &t.name),
                    q(&name)
                );
                t.cols.insert(at, col(&name, ty, gen));
                self.added.push(name);
                (sql, Some(EVOLVE))
            }
            DdlOp::DropColumn => {
                let i = rng.below(self.added.len() as u64) as usize;
                let name = self.added.swap_remove(i);
                let t = &mut self.tables[EVOLVE];
                t.cols.retain(|c| c.name != name);
                (
                    format!(
                        "ALTER TABLE {} DROP COLUMN {}",
                        qt(schema, &t.name),
                        q(&name)
                    ),
                    Some(EVOLVE),
                )
            }
            DdlOp::ModifyColumn => {
                let t = &mut self.tables[EVOLVE];
                let candidates: Vec<usize> = (0..t.cols.len())
                    .filter(|&i| {
                        self.added.contains(&t.cols[i].name) && widened(&t.cols[i].sql).is_some()
                    })
                    .collect();
                let i = *rng.pick(&candidates);
                let (ty, gen) = widened(&t.cols[i].sql).unwrap_or(("INT", int_gen(32, false)));
                t.cols[i].sql = ty.to_string();
                t.cols[i].gen = gen;
                (
                    format!(
                        "ALTER TABLE {} MODIFY COLUMN {} {ty} NULL",
                        qt(schema, &t.name),
                        q(&t.cols[i].name)
                    ),
                    Some(EVOLVE),
                )
            }
            DdlOp::RenameTable => {
                let t = &mut self.tables[RENAMED];
                let new = if t.name == REN_A { REN_B } else { REN_A };
                let sql = format!(
                    "RENAME TABLE {} TO {}",
                    qt(schema, &t.name),
                    qt(schema, new)
                );
                t.name = new.to_string();
                (sql, Some(RENAMED))
            }
            DdlOp::CreateTable => {
                let t = extra_table(&format!("extra_{}", self.next_extra));
                self.next_extra += 1;
                let sql = t.create_sql(schema);
                self.tables.push(t);
                (sql, Some(self.tables.len() - 1))
            }
            DdlOp::DropTable => {
                let t = self.tables.remove(FIRST_EXTRA);
                (format!("DROP TABLE {}", qt(schema, &t.name)), None)
            }
            DdlOp::TruncateTable => {
                let t = &mut self.tables[TRUNCATED];
                t.live.clear();
                (
                    format!("TRUNCATE TABLE {}", qt(schema, &t.name)),
                    Some(TRUNCATED),
                )
            }
        };
        if let Some(i) = target {
            let n = self.rng.between(1, 8);
            let (sql, keys) = self.tables[i].insert_sql(&mut self.rng, schema, n);
            self.tables[i].live.extend(keys);
            st.statements += 1;
            st.rows_inserted += n;
            follow.push(sql);
            follow.push(self.tables[i].statement(&mut self.rng, schema, &mut st));
        }
        for _ in 0..self.rng.between(1, 3) {
            let i = self.rng.below(self.tables.len() as u64) as usize;
            follow.push(self.tables[i].statement(&mut self.rng, schema, &mut st));
        }
        st.transactions += 1;
        self.stats += st;
        (ddl, follow)
    }
}
