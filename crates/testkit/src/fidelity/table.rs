//! Random tables of random column kinds, their DDL, transactions and the
//! SELECT that reads them back.

use super::expect::expected_value;
use super::kind::*;
use super::Rng;

/// A generated column (computed from `id`).
#[derive(Debug, Clone, PartialEq)]
pub enum Generated {
    No,
    Virtual,
    Stored,
}

/// One column of a random table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: Kind,
    pub nullable: bool,
    pub generated: Generated,
    pub invisible: bool,
}

/// How a random table is keyed.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySpec {
    /// `PRIMARY KEY (id)`.
    Id,
    /// `PRIMARY KEY (k, id)`: a character (or binary) column first.
    Composite,
    /// No key at all.
    None,
}

/// A random table: `id INT NOT NULL` first, a key column `k` for
/// composite keys, then the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    pub key: KeySpec,
}

/// The SQL mode of a generated transaction's session.
pub const SESSION_MODES: &[&str] = &[
    "STRICT_ALL_TABLES",
    "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
    "",
    "ANSI",
    "ALLOW_INVALID_DATES",
];

impl TableSpec {
    /// A random table of 1–40 columns.
    pub fn random(rng: &mut Rng, schema: &str, name: &str) -> TableSpec {
        let key = match rng.below(5) {
            0..=2 => KeySpec::Id,
            3 => KeySpec::Composite,
            _ => KeySpec::None,
        };
        let total = rng.between(1, 40);
        let mut columns = vec![ColumnSpec {
            name: "id".into(),
            kind: Kind::Int {
                bits: 32,
                unsigned: false,
            },
            nullable: false,
            generated: Generated::No,
            invisible: false,
        }];
        if key == KeySpec::Composite {
            let kind = loop {
                let k = Kind::random(rng);
                if k.keyable() && !matches!(k, Kind::Int { .. } | Kind::Date) {
                    break match k {
                        // Room for the unique `k<id>-` prefix.
                        Kind::VarChar(n, cs) => Kind::VarChar(n.max(16), cs),
                        Kind::Char(n, cs) => Kind::Char(n.max(16), cs),
                        Kind::VarBinary(n) => Kind::VarBinary(n.max(16)),
                        other => other,
                    };
                }
            };
            columns.push(ColumnSpec {
                name: "k".into(),
                kind,
                nullable: false,
                generated: Generated::No,
                invisible: false,
            });
        }
        let mut budget = 5000usize;
        while columns.len() < total {
            let kind = Kind::random(rng);
            if kind.row_bytes() > budget {
                continue;
            }
            budget -= kind.row_bytes();
            let n = columns.len();
            // An invisible column needs a default: it is nullable.
            let invisible = rng.chance(4);
            columns.push(ColumnSpec {
                name: format!("c{n}"),
                kind,
                nullable: invisible || rng.chance(80),
                generated: Generated::No,
                invisible,
            });
        }
        if rng.chance(25) {
            columns.push(ColumnSpec {
                name: "gv".into(),
                kind: Kind::Int {
                    bits: 64,
                    unsigned: false,
                },
                nullable: true,
                generated: Generated::Virtual,
                invisible: false,
            });
        }
        if rng.chance(25) {
            columns.push(ColumnSpec {
                name: "gs".into(),
                kind: Kind::VarChar(24, Cs::Utf8mb4),
                nullable: true,
                generated: Generated::Stored,
                invisible: false,
            });
        }
        TableSpec {
            schema: schema.into(),
            name: name.into(),
            columns,
            key,
        }
    }

    pub fn qualified(&self) -> String {
        format!("`{}`.`{}`", self.schema, self.name)
    }

    /// `CREATE TABLE …`.
    pub fn create_sql(&self) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let mut s = format!("`{}` {}", c.name, c.kind.sql());
                match c.generated {
                    Generated::Virtual => s.push_str(" AS (`id` * 3) VIRTUAL"),
                    Generated::Stored => s.push_str(" AS (CONCAT('g', `id`)) PERSISTENT"),
                    Generated::No => {
                        s.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
                    }
                }
                if c.invisible {
                    s.push_str(" INVISIBLE");
                }
                s
            })
            .collect();
        match self.key {
            KeySpec::Id => parts.push("PRIMARY KEY (`id`)".into()),
            KeySpec::Composite => parts.push("PRIMARY KEY (`k`, `id`)".into()),
            KeySpec::None => {}
        }
        format!("CREATE TABLE {} ({})", self.qualified(), parts.join(", "))
    }

    /// Columns a statement writes (not the generated ones).
    fn written(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns.iter().filter(|c| c.generated == Generated::No)
    }

    /// The key columns (the columns a row is matched by when comparing).
    pub fn key_columns(&self) -> Vec<&str> {
        match self.key {
            KeySpec::Id => vec!["id"],
            KeySpec::Composite => vec!["k", "id"],
            KeySpec::None => Vec::new(),
        }
    }

    /// A value for the composite key's `k` that no other row has, under
    /// any collation: `k<n>-` is unique by its digits.
    fn key_value(&self, rng: &mut Rng, n: u64) -> String {
        let k = &self.columns[1].kind;
        let suffix_len = rng.between(0, 3);
        match k {
            Kind::VarChar(_, cs) | Kind::Char(_, cs) => {
                let s: String = (0..suffix_len)
                    .map(|_| {
                        let c = cs.char(rng);
                        if c.is_ascii_digit() || c == '-' || c.is_whitespace() {
                            'x'
                        } else {
                            c
                        }
                    })
                    .collect();
                utf8_literal(&format!("k{n}-{s}"))
            }
            _ => {
                let mut b = format!("k{n}-").into_bytes();
                b.extend((0..suffix_len).map(|_| rng.next_u64() as u8));
                hex_literal(&b)
            }
        }
    }

    /// One row's values, in [`Self::written`] order (`id` given).
    fn row_values(&self, rng: &mut Rng, id: u64, lax: bool) -> Vec<String> {
        self.written()
            .map(|c| match c.name.as_str() {
                "id" => id.to_string(),
                "k" if self.key == KeySpec::Composite => self.key_value(rng, id),
                _ if c.nullable && rng.chance(15) => "NULL".to_string(),
                _ => c.kind.value(rng, lax),
            })
            .collect()
    }

    /// A multi-statement transaction under a random session sql_mode, from
    /// `live` (the ids of the rows that exist; updated) and `next_id`.
    /// Returns its SQL, session settings first.
    pub fn transaction(
        &self,
        rng: &mut Rng,
        live: &mut Vec<u64>,
        next_id: &mut u64,
    ) -> Vec<String> {
        let mode = *rng.pick(SESSION_MODES);
        let lax = !mode.contains("STRICT");
        let mut out = vec![format!("SET SESSION sql_mode = '{mode}'")];
        let names: Vec<String> = self.written().map(|c| format!("`{}`", c.name)).collect();
        let statements = rng.between(1, 4);
        for _ in 0..statements {
            match rng.below(10) {
                // INSERT of 1–5 rows (keyless tables: now and then the same
                // row twice).
                0..=4 => {
                    let n = rng.between(1, 5);
                    let mut rows = Vec::new();
                    for _ in 0..n {
                        let id = *next_id;
                        *next_id += 1;
                        live.push(id);
                        let values = self.row_values(rng, id, lax);
                        if self.key == KeySpec::None && rng.chance(20) {
                            rows.push(format!("({})", values.join(", ")));
                        }
                        rows.push(format!("({})", values.join(", ")));
                    }
                    out.push(format!(
                        "INSERT INTO {} ({}) VALUES {}",
                        self.qualified(),
                        names.join(", "),
                        rows.join(", ")
                    ));
                }
                // UPDATE of some columns of 1–3 rows.
                5..=7 if !live.is_empty() => {
                    let ids: Vec<u64> = (0..rng.between(1, 3)).map(|_| *rng.pick(live)).collect();
                    let settable: Vec<&ColumnSpec> = self
                        .written()
                        .filter(|c| c.name != "id" && c.name != "k")
                        .collect();
                    let mut sets: Vec<String> = Vec::new();
                    for c in &settable {
                        if rng.chance(40) {
                            let v = if c.nullable && rng.chance(15) {
                                "NULL".to_string()
                            } else {
                                c.kind.value(rng, lax)
                            };
                            sets.push(format!("`{}` = {v}", c.name));
                        }
                    }
                    if self.key == KeySpec::Composite && rng.chance(30) {
                        // A key change: each row gets a new unique `k`.
                        let n = *next_id;
                        *next_id += 1;
                        sets.push(format!("`k` = CONCAT({}, `id`)", self.key_value(rng, n)));
                        out.push(format!(
                            "UPDATE {} SET {} WHERE `id` = {}",
                            self.qualified(),
                            sets.join(", "),
                            ids[0]
                        ));
                        continue;
                    }
                    if sets.is_empty() {
                        if let Some(c) = settable.first() {
                            sets.push(format!("`{0}` = `{0}`", c.name));
                        } else {
                            continue;
                        }
                    }
                    out.push(format!(
                        "UPDATE {} SET {} WHERE `id` IN ({})",
                        self.qualified(),
                        sets.join(", "),
                        ids.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                // DELETE of 1–3 rows.
                _ if !live.is_empty() => {
                    let n = rng.between(1, 3).min(live.len());
                    let mut ids = Vec::new();
                    for _ in 0..n {
                        let i = rng.below(live.len() as u64) as usize;
                        ids.push(live.swap_remove(i));
                    }
                    out.push(format!(
                        "DELETE FROM {} WHERE `id` IN ({})",
                        self.qualified(),
                        ids.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                _ => {}
            }
        }
        out
    }

    /// `SELECT` of every column (invisible ones by name), with the
    /// expressions [`Self::expected`] reads; run it over the binary
    /// protocol with `time_zone = '+00:00'`.
    pub fn select_sql(&self) -> String {
        let exprs: Vec<String> = self
            .columns
            .iter()
            .map(|c| match c.kind {
                Kind::Uuid | Kind::Inet4 | Kind::Inet6 => format!("HEX(`{}`)", c.name),
                _ => format!("`{}`", c.name),
            })
            .collect();
        format!("SELECT {} FROM {}", exprs.join(", "), self.qualified())
    }

    /// One row of [`Self::select_sql`] as the JSON object `sluice binlog
    /// decode` prints for it (see `sluice_binlog::output`).
    pub fn expected(&self, row: &[mysql_async::Value]) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (c, v) in self.columns.iter().zip(row) {
            map.insert(c.name.clone(), expected_value(&c.kind, v));
        }
        serde_json::Value::Object(map)
    }
}
