//! A deterministic workload for a source server: what the pipeline's
//! acceptance tests drive a source with (and what a benchmark can drive one
//! with); [`crate::compare`] checks the replica against it.
//!
//! * [`Workload`] owns a model of its schema (tables, current columns, the
//!   keys of live rows) and generates SQL from a seeded PRNG, so every run is
//!   reproducible: [`seed_from_env`] prints the seed and `SLUICE_SEED=<seed>`
//!   replays it. Generation is pure (`setup_sql`, `next_transaction`,
//!   `next_ddl`); the `async` methods generate and execute.
//! * DML tables (`t_*`) and DDL tables (`d_*`, `extra_N`) are disjoint: the
//!   DDL side only alters, renames, truncates, creates and drops its own
//!   tables (and writes rows into them around each change), so
//!   [`Workload::run_concurrently`] runs both on separate connections without
//!   either making the other fail, and the binlog still sees rows of a table
//!   before and after each of its schema changes.
//!
//! Each generated transaction sets `time_zone='+00:00'`, so TIMESTAMP text is
//! comparable across servers.
//!
//! Layout: `rng` (the PRNG and seed), `values` (value generators per column
//! type), `schema` (the table model and the DML tables), `ddl` (the DDL
//! cycle and both sides' transaction generators); this module runs them.

mod ddl;
mod rng;
mod schema;
mod values;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::sql::{q, qt, truncate};
use crate::{Context as _, KitError, MariaDb, Result};

use ddl::{ddl_tables, DdlState, DmlState, DDL_CYCLE};
use schema::{dml_tables, KeyKind};

pub use rng::{seed_from_env, Rng};
pub use schema::StepStats;

/// Schema changes in one cycle of [`Workload::ddl_step`]: that many steps
/// exercise every kind of change once.
pub const DDL_CYCLE_LEN: usize = DDL_CYCLE.len();

/// What [`Workload::run_concurrently`] did.
#[derive(Debug, Clone, Default)]
pub struct ConcurrentStats {
    pub dml: StepStats,
    pub ddl: Vec<String>,
    pub elapsed: Duration,
}

/// A reproducible workload on one schema of a source server.
#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    schema: String,
    dml: DmlState,
    ddl: DdlState,
}

impl Workload {
    pub fn new(seed: u64, schema: &str) -> Self {
        let mut rng = Rng::new(seed);
        let dml_rng = rng.fork();
        let ddl_rng = rng.fork();
        Self {
            seed,
            schema: schema.into(),
            dml: DmlState {
                rng: dml_rng,
                tables: dml_tables(),
            },
            ddl: DdlState {
                rng: ddl_rng,
                tables: ddl_tables(),
                added: Vec::new(),
                next_col: 1,
                next_extra: 1,
                cycle: 0,
                stats: StepStats::default(),
            },
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Current table names, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dml
            .tables
            .iter()
            .chain(&self.ddl.tables)
            .map(|t| t.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Current column names of a table, in table order.
    pub fn columns(&self, table: &str) -> Option<Vec<String>> {
        self.dml
            .tables
            .iter()
            .chain(&self.ddl.tables)
            .find(|t| t.name == table)
            .map(|t| t.cols.iter().map(|c| c.name.clone()).collect())
    }

    /// Rows the model believes exist in a keyed table (None: keyless/unknown).
    pub fn live_rows(&self, table: &str) -> Option<usize> {
        self.dml
            .tables
            .iter()
            .chain(&self.ddl.tables)
            .find(|t| t.name == table && t.key != KeyKind::None)
            .map(|t| t.live.len())
    }

    /// CREATE DATABASE, the tables, and their first rows (pure: no I/O).
    pub fn setup_sql(&mut self) -> Vec<String> {
        let schema = self.schema.clone();
        let mut out = vec![format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
            q(&schema)
        )];
        for t in self.dml.tables.iter().chain(&self.ddl.tables) {
            out.push(t.create_sql(&schema));
        }
        for t in &mut self.dml.tables {
            out.extend(t.setup_rows(&mut self.dml.rng, &schema, 12));
        }
        for t in &mut self.ddl.tables {
            out.extend(t.setup_rows(&mut self.ddl.rng, &schema, 5));
        }
        out
    }

    /// Creates the schema (which must not exist yet) and fills it.
    pub async fn setup(&mut self, conn: &mut Conn) -> Result<()> {
        conn.query_drop("SET time_zone = '+00:00'").await?;
        for sql in self.setup_sql() {
            conn.query_drop(&sql)
                .await
                .with_context(|| format!("setup statement failed: {}", truncate(&sql, 2000)))?;
        }
        Ok(())
    }

    /// The next random transaction's statements (pure: no I/O).
    pub fn next_transaction(&mut self) -> (Vec<String>, StepStats) {
        self.dml.next_transaction(&self.schema)
    }

    /// One random committed transaction of 1..=6 statements over the DML tables.
    pub async fn step(&mut self, conn: &mut Conn) -> Result<StepStats> {
        let (stmts, st) = self.next_transaction();
        exec_transaction(conn, &stmts).await?;
        Ok(st)
    }

    /// `n` [`step`](Self::step)s.
    pub async fn steps(&mut self, conn: &mut Conn, n: usize) -> Result<StepStats> {
        let mut total = StepStats::default();
        for _ in 0..n {
            total += self.step(conn).await?;
        }
        Ok(total)
    }

    /// One transaction inserting `rows` rows into `t_bulk` with 1000-row
    /// INSERTs, updating half of every tenth chunk and deleting a few of its
    /// own rows before COMMIT. Rows come from a cheap per-row generator (one
    /// PRNG draw each), so 100k rows take about as long as the server needs.
    pub async fn big_transaction(&mut self, conn: &mut Conn, rows: usize) -> Result<StepStats> {
        const CHUNK: u64 = 1000;
        let schema = self.schema.clone();
        let t = self
            .dml
            .tables
            .iter()
            .position(|t| t.name == "t_bulk")
            .ok_or_else(|| KitError::Failed("no t_bulk table".into()))?;
        let mut st = StepStats {
            transactions: 1,
            ..StepStats::default()
        };
        let tq = qt(&schema, "t_bulk");
        conn.query_drop("SET time_zone = '+00:00'; BEGIN").await?;
        let res: Result<()> = async {
            let rows = rows as u64;
            let mut done = 0;
            let mut chunk_no = 0;
            while done < rows {
                let n = CHUNK.min(rows - done);
                let table = &mut self.dml.tables[t];
                // Seq keys: the table's counter is the last id used.
                let first = table.next + 1;
                table.next += n;
                let mut sql = format!(
                    "INSERT INTO {tq} (`id`, `grp`, `name`, `amount`, `at`, `flag`, `note`) VALUES "
                );
                for id in first..first + n {
                    if id > first {
                        sql.push_str(", ");
                    }
                    bulk_row(&mut sql, id, self.dml.rng.next_u64());
                }
                conn.query_drop(&sql).await.context("bulk INSERT")?;
                st.statements += 1;
                st.rows_inserted += n as usize;
                let mut deleted = 0..0;
                if chunk_no % 10 == 0 && n >= 10 {
                    let mid = first + n / 2;
                    conn.query_drop(format!(
                        "UPDATE {tq} SET amount = IFNULL(amount, 0) / 2, note = 'bulk update' \
                         WHERE id BETWEEN {first} AND {mid}"
                    ))
                    .await
                    .context("bulk UPDATE")?;
                    deleted = first + n - 3..first + n;
                    conn.query_drop(format!(
                        "DELETE FROM {tq} WHERE id >= {} AND id < {}",
                        deleted.start, deleted.end
                    ))
                    .await
                    .context("bulk DELETE")?;
                    st.statements += 2;
                    st.updates += 1;
                    st.deletes += 1;
                }
                table.live.extend(
                    (first..first + n)
                        .filter(|id| !deleted.contains(id))
                        .map(|id| vec![id.to_string()]),
                );
                done += n;
                chunk_no += 1;
            }
            conn.query_drop("COMMIT").await?;
            Ok(())
        }
        .await;
        if res.is_err() {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        res.map(|()| st)
    }

    /// The next schema change and the transaction that follows it (pure).
    pub fn next_ddl(&mut self) -> (String, Vec<String>) {
        self.ddl.next(&self.schema)
    }

    /// Runs the next schema change, then a transaction writing rows into the
    /// DDL tables (the changed one first). Returns the DDL statement.
    pub async fn ddl_step(&mut self, conn: &mut Conn) -> Result<String> {
        let (ddl, follow) = self.next_ddl();
        ddl_step_exec(conn, &ddl, &follow).await?;
        Ok(ddl)
    }

    /// Totals of the rows written by the DDL side so far.
    pub fn ddl_dml_stats(&self) -> StepStats {
        self.ddl.stats
    }

    /// `dml_steps` random transactions and `ddl_steps` schema changes at the
    /// same time, on two connections to `source`. Both sides are bounded and
    /// write disjoint tables, so neither makes the other fail.
    pub async fn run_concurrently(
        &mut self,
        source: &MariaDb,
        dml_steps: usize,
        ddl_steps: usize,
    ) -> Result<ConcurrentStats> {
        let start = Instant::now();
        let mut c1 = source.conn().await?;
        let mut c2 = source.conn().await?;
        let schema = self.schema.as_str();
        let (dml, ddl) = (&mut self.dml, &mut self.ddl);
        let dml_side = async {
            let mut total = StepStats::default();
            for _ in 0..dml_steps {
                let (stmts, st) = dml.next_transaction(schema);
                exec_transaction(&mut c1, &stmts).await?;
                total += st;
            }
            Ok::<_, KitError>(total)
        };
        let ddl_side = async {
            let mut done = Vec::new();
            for _ in 0..ddl_steps {
                let (sql, follow) = ddl.next(schema);
                ddl_step_exec(&mut c2, &sql, &follow).await?;
                done.push(sql);
            }
            Ok::<_, KitError>(done)
        };
        let (a, b) = tokio::join!(dml_side, ddl_side);
        let _ = c1.disconnect().await;
        let _ = c2.disconnect().await;
        Ok(ConcurrentStats {
            dml: a.context("DML side")?,
            ddl: b.context("DDL side")?,
            elapsed: start.elapsed(),
        })
    }
}

/// Pre-escaped strings for bulk rows (utf8mb4 names, latin1-safe notes).
const BULK_NAMES: &[&str] = &[
    "plain",
    "élan",
    "中文",
    "😀smile",
    "O''Brien",
    "back\\\\slash",
    "",
];
const BULK_NOTES: &[&str] = &["note", "café", "€ 5", "naïve", "Ÿ"];

/// One `t_bulk` row (id, grp, name, amount, at, flag, note) from one draw.
fn bulk_row(out: &mut String, id: u64, r: u64) {
    let name = BULK_NAMES[(r >> 8) as usize % BULK_NAMES.len()];
    let sign = if r & (1 << 20) != 0 { "-" } else { "" };
    let _ = write!(
        out,
        "({id}, {}, 'n{id}-{name}', {sign}{}.{:03}, '20{:02}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}', {}, ",
        r % 100,
        (r >> 21) % 1_000_000_000,
        (r >> 51) % 1000,
        (r >> 12) % 38,
        1 + (r >> 18) % 12,
        1 + (r >> 22) % 28,
        (r >> 27) % 24,
        (r >> 32) % 60,
        (r >> 38) % 60,
        (r >> 13) % 1_000_000,
        (r >> 44) & 1,
    );
    match r % 7 {
        0 => out.push_str("NULL)"),
        _ => {
            let note = BULK_NOTES[(r >> 4) as usize % BULK_NOTES.len()];
            let _ = write!(out, "'{note}')");
        }
    }
}

async fn exec_transaction(conn: &mut Conn, stmts: &[String]) -> Result<()> {
    let mut sql = String::from("SET time_zone = '+00:00'; BEGIN");
    for s in stmts {
        sql.push_str(";\n");
        sql.push_str(s);
    }
    sql.push_str(";\nCOMMIT");
    if let Err(e) = conn.query_drop(&sql).await {
        let _ = conn.query_drop("ROLLBACK").await;
        return Err(e).with_context(|| format!("transaction failed:\n{}", truncate(&sql, 4000)));
    }
    Ok(())
}

async fn ddl_step_exec(conn: &mut Conn, ddl: &str, follow: &[String]) -> Result<()> {
    conn.query_drop(ddl)
        .await
        .with_context(|| format!("DDL failed: {ddl}"))?;
    exec_transaction(conn, follow).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_is_reproducible_from_its_seed() {
        let run = |seed: u64| {
            let mut w = Workload::new(seed, "s");
            let mut out = w.setup_sql();
            for i in 0..200 {
                out.extend(w.next_transaction().0);
                if i % 10 == 0 {
                    let (ddl, follow) = w.next_ddl();
                    out.push(ddl);
                    out.extend(follow);
                }
            }
            out
        };
        let a = run(42);
        assert_eq!(a, run(42), "same seed, same SQL");
        assert_ne!(a, run(43), "another seed, other SQL");
    }
}
