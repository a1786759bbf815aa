//! The workload's model of its schema: columns with their generators, the
//! keys of the rows that exist now, and the DML tables (`t_*`) with the SQL
//! that changes them.

use crate::sql::{q, qt, sql_str};

use super::rng::Rng;
use super::values::{
    bytes_gen, dec, int_gen, long_str, str_gen, udec, Cs, Gen, ENUM_LABELS, KEY_CHARS, SET_LABELS,
    TAG_LABELS, WORDS,
};

/// How a key column's values are made unique (from the table's counter `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyStyle {
    /// `n`: 1, 2, 3, ... (consecutive: ranges are easy to update).
    Seq,
    /// -1, 1, -2, 2, ...
    AltSign,
    /// `n`, and `2^63 + n` for every third `n` (unsigned BIGINT above i64).
    Spread,
    /// A random value of the column's type: only for leading columns of a
    /// composite key (the last column makes the key unique).
    Random,
    /// `'k{n}-{random suffix}'`.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Primary,
    /// A UNIQUE key over NOT NULL columns, no primary key.
    Unique,
    /// No key at all: duplicate rows are allowed.
    None,
}

#[derive(Debug, Clone)]
pub(super) struct Col {
    pub(super) name: String,
    /// The type as written in DDL, e.g. `VARCHAR(16) CHARACTER SET latin1`.
    pub(super) sql: String,
    pub(super) gen: Gen,
    pub(super) nullable: bool,
    pub(super) key: Option<KeyStyle>,
}

pub(super) fn col(name: &str, sql: &str, gen: Gen) -> Col {
    Col {
        name: name.into(),
        sql: sql.into(),
        gen,
        nullable: true,
        key: None,
    }
}

pub(super) fn key(name: &str, sql: &str, gen: Gen, style: KeyStyle) -> Col {
    Col {
        name: name.into(),
        sql: sql.into(),
        gen,
        nullable: false,
        key: Some(style),
    }
}

impl Col {
    pub(super) fn value(&self, rng: &mut Rng) -> String {
        if self.nullable && rng.chance(10) {
            "NULL".into()
        } else {
            self.gen.random(rng)
        }
    }
}

/// Counts of what the generator sent (statements as generated, rows as
/// intended; UPDATE/DELETE count statements, not affected rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepStats {
    pub transactions: usize,
    pub statements: usize,
    pub rows_inserted: usize,
    pub updates: usize,
    pub key_changes: usize,
    pub deletes: usize,
}

impl std::ops::AddAssign for StepStats {
    fn add_assign(&mut self, o: Self) {
        self.transactions += o.transactions;
        self.statements += o.statements;
        self.rows_inserted += o.rows_inserted;
        self.updates += o.updates;
        self.key_changes += o.key_changes;
        self.deletes += o.deletes;
    }
}

#[derive(Debug, Clone)]
pub(super) struct TableState {
    pub(super) name: String,
    pub(super) cols: Vec<Col>,
    pub(super) key: KeyKind,
    /// Key literals (in key-column order) of the rows that exist now.
    pub(super) live: Vec<Vec<String>>,
    /// Counter behind new keys.
    pub(super) next: u64,
}

impl TableState {
    pub(super) fn new(name: &str, key: KeyKind, cols: Vec<Col>) -> Self {
        Self {
            name: name.into(),
            cols,
            key,
            live: Vec::new(),
            next: 0,
        }
    }

    pub(super) fn create_sql(&self, schema: &str) -> String {
        let mut parts: Vec<String> = self
            .cols
            .iter()
            .map(|c| {
                let null = if c.nullable { "NULL" } else { "NOT NULL" };
                format!("{} {} {null}", q(&c.name), c.sql)
            })
            .collect();
        let keys: Vec<String> = self
            .key_cols()
            .iter()
            .map(|&i| q(&self.cols[i].name))
            .collect();
        match self.key {
            KeyKind::Primary => parts.push(format!("PRIMARY KEY ({})", keys.join(", "))),
            KeyKind::Unique => parts.push(format!("UNIQUE KEY `uk` ({})", keys.join(", "))),
            KeyKind::None => {}
        }
        format!(
            "CREATE TABLE {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            qt(schema, &self.name),
            parts.join(",\n  ")
        )
    }

    pub(super) fn key_cols(&self) -> Vec<usize> {
        (0..self.cols.len())
            .filter(|&i| self.cols[i].key.is_some())
            .collect()
    }

    pub(super) fn nonkey_cols(&self) -> Vec<usize> {
        (0..self.cols.len())
            .filter(|&i| self.cols[i].key.is_none())
            .collect()
    }

    pub(super) fn new_key(&mut self, rng: &mut Rng) -> Vec<String> {
        self.next += 1;
        let n = self.next;
        self.key_cols()
            .into_iter()
            .map(|i| {
                let c = &self.cols[i];
                match c.key.unwrap_or(KeyStyle::Seq) {
                    KeyStyle::Seq => n.to_string(),
                    KeyStyle::AltSign => {
                        let h = i128::from(n / 2);
                        match n % 2 {
                            0 => h,
                            _ => -h - 1,
                        }
                        .to_string()
                    }
                    KeyStyle::Spread => match n % 3 {
                        0 => ((1u128 << 63) + u128::from(n)).to_string(),
                        _ => n.to_string(),
                    },
                    KeyStyle::Random => c.gen.random(rng),
                    KeyStyle::Text => {
                        let len = rng.below(6);
                        let suffix: String = (0..len).map(|_| *rng.pick(KEY_CHARS)).collect();
                        sql_str(&format!("k{n}-{suffix}"))
                    }
                }
            })
            .collect()
    }

    pub(super) fn where_key(&self, key: &[String]) -> String {
        self.key_cols()
            .iter()
            .zip(key)
            .map(|(&i, v)| format!("{} = {v}", q(&self.cols[i].name)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    pub(super) fn where_keys(&self, keys: &[Vec<String>]) -> String {
        keys.iter()
            .map(|k| format!("({})", self.where_key(k)))
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    pub(super) fn insert_prefix(&self, schema: &str) -> String {
        let names: Vec<String> = self.cols.iter().map(|c| q(&c.name)).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ",
            qt(schema, &self.name),
            names.join(", ")
        )
    }

    /// A row with the given key and non-key values from `value`.
    pub(super) fn row(&self, key: &[String], mut value: impl FnMut(&Col) -> String) -> String {
        let mut k = key.iter();
        let vals: Vec<String> = self
            .cols
            .iter()
            .map(|c| match c.key {
                Some(_) => k.next().cloned().unwrap_or_else(|| "NULL".into()),
                None => value(c),
            })
            .collect();
        format!("({})", vals.join(", "))
    }

    /// A multi-row INSERT of `n` random rows with new keys (not yet in `live`).
    pub(super) fn insert_sql(
        &mut self,
        rng: &mut Rng,
        schema: &str,
        n: usize,
    ) -> (String, Vec<Vec<String>>) {
        let mut sql = self.insert_prefix(schema);
        let mut keys = Vec::with_capacity(n);
        let mut prev: Option<String> = None;
        for i in 0..n {
            if i > 0 {
                sql.push_str(", ");
            }
            if self.key == KeyKind::None {
                // Keyless: sometimes an exact duplicate of the previous row.
                let row = match &prev {
                    Some(p) if rng.chance(25) => p.clone(),
                    _ => self.row(&[], |c| c.value(rng)),
                };
                sql.push_str(&row);
                prev = Some(row);
            } else {
                let k = self.new_key(rng);
                sql.push_str(&self.row(&k, |c| c.value(rng)));
                keys.push(k);
            }
        }
        (sql, keys)
    }

    /// One random DML statement against this table; updates the live keys.
    pub(super) fn statement(&mut self, rng: &mut Rng, schema: &str, st: &mut StepStats) -> String {
        st.statements += 1;
        let t = qt(schema, &self.name);
        let nonkey = self.nonkey_cols();
        if self.key == KeyKind::None {
            return self.keyless_statement(rng, schema, st);
        }
        let r = rng.below(100);
        if self.live.is_empty() || nonkey.is_empty() || r < 35 {
            let n = if rng.chance(70) {
                1
            } else {
                rng.between(2, 20)
            };
            let (sql, keys) = self.insert_sql(rng, schema, n);
            self.live.extend(keys);
            st.rows_inserted += n;
            return sql;
        }
        let idx = rng.below(self.live.len() as u64) as usize;
        if r < 65 {
            // Non-key columns of one row.
            let mut pool = nonkey.clone();
            let k = rng.between(1, 3.min(pool.len()));
            let sets: Vec<String> = (0..k)
                .map(|_| {
                    let i = pool.swap_remove(rng.below(pool.len() as u64) as usize);
                    format!("{} = {}", q(&self.cols[i].name), self.cols[i].value(rng))
                })
                .collect();
            st.updates += 1;
            format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                self.where_key(&self.live[idx])
            )
        } else if r < 73 {
            // The key itself (and sometimes a value with it).
            let new = self.new_key(rng);
            let old = std::mem::replace(&mut self.live[idx], new.clone());
            let mut sets: Vec<String> = self
                .key_cols()
                .iter()
                .zip(&new)
                .map(|(&i, v)| format!("{} = {v}", q(&self.cols[i].name)))
                .collect();
            if rng.chance(50) {
                let i = *rng.pick(&nonkey);
                sets.push(format!(
                    "{} = {}",
                    q(&self.cols[i].name),
                    self.cols[i].value(rng)
                ));
            }
            st.key_changes += 1;
            format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                self.where_key(&old)
            )
        } else if r < 80 {
            // One column of several rows.
            let keys = self.some_live(rng, 5);
            let i = *rng.pick(&nonkey);
            st.updates += 1;
            format!(
                "UPDATE {t} SET {} = {} WHERE {}",
                q(&self.cols[i].name),
                self.cols[i].value(rng),
                self.where_keys(&keys)
            )
        } else if r < 95 {
            let k = self.live.swap_remove(idx);
            st.deletes += 1;
            format!("DELETE FROM {t} WHERE {}", self.where_key(&k))
        } else {
            let keys = self.some_live(rng, 5);
            self.live.retain(|k| !keys.contains(k));
            st.deletes += 1;
            format!("DELETE FROM {t} WHERE {}", self.where_keys(&keys))
        }
    }

    /// Up to `max` distinct live keys.
    pub(super) fn some_live(&mut self, rng: &mut Rng, max: usize) -> Vec<Vec<String>> {
        let n = rng.between(1, max);
        let mut keys: Vec<Vec<String>> = (0..n)
            .map(|_| self.live[rng.below(self.live.len() as u64) as usize].clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub(super) fn keyless_statement(
        &mut self,
        rng: &mut Rng,
        schema: &str,
        st: &mut StepStats,
    ) -> String {
        let t = qt(schema, &self.name);
        let small: Vec<usize> = (0..self.cols.len())
            .filter(|&i| self.cols[i].gen.is_small_domain())
            .collect();
        let r = rng.below(100);
        if small.is_empty() || r < 45 {
            let n = rng.between(1, 5);
            let (sql, _) = self.insert_sql(rng, schema, n);
            st.rows_inserted += n;
            return sql;
        }
        let w = *rng.pick(&small);
        let cond = format!(
            "{} = {}",
            q(&self.cols[w].name),
            self.cols[w].gen.random(rng)
        );
        if r < 75 {
            st.deletes += 1;
            let limit = if rng.chance(80) { 1 } else { 2 };
            format!("DELETE FROM {t} WHERE {cond} LIMIT {limit}")
        } else {
            let others: Vec<usize> = (0..self.cols.len()).filter(|&i| i != w).collect();
            let k = rng.between(1, 2.min(others.len()));
            let sets: Vec<String> = (0..k)
                .map(|_| {
                    let i = *rng.pick(&others);
                    format!("{} = {}", q(&self.cols[i].name), self.cols[i].value(rng))
                })
                .collect();
            st.updates += 1;
            format!("UPDATE {t} SET {} WHERE {cond}", sets.join(", "))
        }
    }

    /// Setup rows: boundary values (keys too, for single integer keys), an
    /// all-NULL row (twice for a keyless table), and `random` random rows.
    pub(super) fn setup_rows(&mut self, rng: &mut Rng, schema: &str, random: usize) -> Vec<String> {
        let keys = self.key_cols();
        let int_key = match keys.as_slice() {
            [i] if matches!(self.cols[*i].gen, Gen::Int { .. }) => Some(*i),
            _ => None,
        };
        let mut rows = Vec::new();
        for j in 0..3 {
            let k = match (j, int_key, self.key) {
                (_, _, KeyKind::None) => vec![],
                (0 | 1, Some(i), _) => vec![self.cols[i].gen.edges()[j].clone()],
                _ => self.new_key(rng),
            };
            rows.push(self.row(&k, |c| {
                let e = c.gen.edges();
                e[j % e.len()].clone()
            }));
            if !k.is_empty() {
                self.live.push(k);
            }
        }
        let null_rows = if self.key == KeyKind::None { 2 } else { 1 };
        for _ in 0..null_rows {
            let k = if self.key == KeyKind::None {
                vec![]
            } else {
                self.new_key(rng)
            };
            rows.push(self.row(&k, |_| "NULL".into()));
            if !k.is_empty() {
                self.live.push(k);
            }
        }
        let mut out = vec![format!("{}{}", self.insert_prefix(schema), rows.join(", "))];
        if random > 0 {
            let (sql, keys) = self.insert_sql(rng, schema, random);
            self.live.extend(keys);
            out.push(sql);
        }
        out
    }
}

pub(super) fn dml_tables() -> Vec<TableState> {
    use Cs::*;
    use KeyStyle::*;
    vec![
        TableState::new(
            "t_int",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), AltSign),
                col("ti", "TINYINT", int_gen(8, false)),
                col("tu", "TINYINT UNSIGNED", int_gen(8, true)),
                col("si", "SMALLINT", int_gen(16, false)),
                col("su", "SMALLINT UNSIGNED", int_gen(16, true)),
                col("mi", "MEDIUMINT", int_gen(24, false)),
                col("mu", "MEDIUMINT UNSIGNED", int_gen(24, true)),
                col("ii", "INT", int_gen(32, false)),
                col("iu", "INT UNSIGNED", int_gen(32, true)),
                col("bi", "BIGINT", int_gen(64, false)),
                col("bu", "BIGINT UNSIGNED", int_gen(64, true)),
                col("bo", "BOOLEAN", Gen::Int { min: 0, max: 1 }),
            ],
        ),
        TableState::new(
            "t_num",
            KeyKind::Primary,
            vec![
                key("region", "SMALLINT UNSIGNED", int_gen(16, true), Random),
                key("seq", "BIGINT", int_gen(64, false), AltSign),
                col("d21", "DECIMAL(2,1)", dec(1, 1)),
                col("d104u", "DECIMAL(10,4) UNSIGNED", udec(6, 4)),
                col("d55", "DECIMAL(5,5)", dec(0, 5)),
                col("d2010", "DECIMAL(20,10)", dec(10, 10)),
                col("d650", "DECIMAL(65,0)", dec(65, 0)),
                col("d6530", "DECIMAL(65,30)", dec(35, 30)),
                col("f", "FLOAT", Gen::Float),
                col("d", "DOUBLE", Gen::Double),
                col(
                    "f105",
                    "FLOAT(10,5)",
                    Gen::FixedFloat {
                        int_digits: 5,
                        frac: 5,
                    },
                ),
            ],
        ),
        TableState::new(
            "t_time",
            KeyKind::Primary,
            vec![
                key("id", "BIGINT UNSIGNED", int_gen(64, true), Spread),
                col("d", "DATE", Gen::Date),
                col("dt", "DATETIME", Gen::DateTime(0)),
                col("dt3", "DATETIME(3)", Gen::DateTime(3)),
                col("dt6", "DATETIME(6)", Gen::DateTime(6)),
                col("ts", "TIMESTAMP", Gen::Timestamp(0)),
                col("ts6", "TIMESTAMP(6)", Gen::Timestamp(6)),
                col("t", "TIME", Gen::Time(0)),
                col("t6", "TIME(6)", Gen::Time(6)),
                col("y", "YEAR", Gen::Year),
            ],
        ),
        TableState::new(
            "t_str",
            KeyKind::Primary,
            vec![
                key("k", "VARCHAR(64)", str_gen(64, Utf8), Text),
                col("c", "CHAR(12) CHARACTER SET latin1", str_gen(12, Latin1)),
                col("cu", "CHAR(10)", str_gen(10, Utf8)),
                col(
                    "vl",
                    "VARCHAR(100) CHARACTER SET latin1",
                    str_gen(100, Latin1),
                ),
                col("vu", "VARCHAR(100)", str_gen(100, Utf8)),
                col("vbin", "VARCHAR(40) COLLATE utf8mb4_bin", str_gen(40, Utf8)),
                col("va", "VARCHAR(30) CHARACTER SET ascii", str_gen(30, Ascii)),
                col("tt", "TINYTEXT", str_gen(60, Utf8)),
                col(
                    "tl",
                    "TEXT CHARACTER SET latin1",
                    long_str(5000, Latin1, 5000),
                ),
                col("tx", "TEXT", long_str(3000, Utf8, 3000)),
                col("mt", "MEDIUMTEXT", long_str(20000, Utf8, 20000)),
            ],
        ),
        TableState::new(
            "t_bin",
            KeyKind::Primary,
            vec![
                key("id", "INT", int_gen(32, false), AltSign),
                col("b4", "BINARY(4)", bytes_gen(4, 0)),
                col("b16", "BINARY(16)", bytes_gen(16, 0)),
                col("vb", "VARBINARY(64)", bytes_gen(64, 0)),
                col("tb", "TINYBLOB", bytes_gen(255, 255)),
                col("bl", "BLOB", bytes_gen(2000, 2000)),
                col("mb", "MEDIUMBLOB", bytes_gen(70000, 70000)),
                col("lb", "LONGBLOB", bytes_gen(300, 0)),
            ],
        ),
        TableState::new(
            "t_misc",
            KeyKind::Primary,
            vec![
                key("id", "INT UNSIGNED", int_gen(32, true), Seq),
                col("e", "ENUM('a','ba','c','ü','x y')", Gen::Enum(ENUM_LABELS)),
                col("s", "SET('a','b','c','ü')", Gen::Set(SET_LABELS)),
                col("b1", "BIT(1)", Gen::Bit(1)),
                col("b10", "BIT(10)", Gen::Bit(10)),
                col("b64", "BIT(64)", Gen::Bit(64)),
                col("j", "JSON", Gen::Json),
                col("pt", "POINT", Gen::Point),
                col("g", "GEOMETRY", Gen::Geometry),
            ],
        ),
        TableState::new(
            "t_uniq",
            KeyKind::Unique,
            vec![
                key("code", "VARCHAR(40)", str_gen(40, Utf8), Text),
                col("qty", "INT", int_gen(32, false)),
                col("price", "DECIMAL(12,2)", dec(10, 2)),
                col(
                    "note",
                    "VARCHAR(60) CHARACTER SET latin1",
                    str_gen(60, Latin1),
                ),
                col("seen", "DATETIME(6)", Gen::DateTime(6)),
                col("tag", "ENUM('new','old','gone')", Gen::Enum(TAG_LABELS)),
            ],
        ),
        TableState::new(
            "t_nokey",
            KeyKind::None,
            vec![
                col("grp", "TINYINT", Gen::Int { min: 0, max: 9 }),
                col(
                    "label",
                    "VARCHAR(20) CHARACTER SET latin1",
                    Gen::Word(WORDS),
                ),
                col("val", "DECIMAL(10,2)", dec(8, 2)),
                col("n", "BIGINT UNSIGNED", int_gen(64, true)),
                col("note", "TEXT", str_gen(200, Utf8)),
                col("at", "DATETIME(6)", Gen::DateTime(6)),
            ],
        ),
        TableState::new(
            "t_bulk",
            KeyKind::Primary,
            vec![
                key("id", "BIGINT", int_gen(64, false), Seq),
                col("grp", "INT", Gen::Int { min: 0, max: 99 }),
                col("name", "VARCHAR(40)", str_gen(40, Utf8)),
                col("amount", "DECIMAL(12,3)", dec(9, 3)),
                col("at", "DATETIME(6)", Gen::DateTime(6)),
                col("flag", "TINYINT", Gen::Int { min: 0, max: 1 }),
                col(
                    "note",
                    "VARCHAR(100) CHARACTER SET latin1",
                    str_gen(100, Latin1),
                ),
            ],
        ),
    ]
}
