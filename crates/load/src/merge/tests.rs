use std::collections::BTreeMap;

use sluice_core::schema::type_code as tc;
use sluice_core::Column;

use super::*;

/// splitmix64: a deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn col(name: &str, type_code: u8, collation: Option<u16>) -> Column {
    Column {
        name: name.into(),
        type_code,
        meta: 0,
        nullable: false,
        unsigned: false,
        collation,
        labels: None,
    }
}

/// `name(k1 INT, [k2 INT,] v VARCHAR [, extra INT])`, keyed on k1[,k2] or not.
fn table(name: &str, key_cols: usize, keyed: bool, extra: bool) -> Arc<TableSchema> {
    let mut columns = vec![col("k1", tc::LONG, None)];
    if key_cols == 2 {
        columns.push(col("k2", tc::LONG, None));
    }
    columns.push(col("v", tc::VARCHAR, Some(45)));
    if extra {
        columns.push(col("extra", tc::LONG, None));
    }
    Arc::new(TableSchema {
        schema: "db".into(),
        table: name.into(),
        columns,
        primary_key: if keyed {
            (0..key_cols).collect()
        } else {
            vec![]
        },
        has_names: true,
    })
}

fn pk(t: &TableSchema) -> Option<Vec<usize>> {
    Some(t.primary_key.clone()).filter(|k| !k.is_empty())
}

fn ins(t: &Arc<TableSchema>, after: Row) -> RowChange {
    RowChange {
        table: t.clone(),
        kind: ChangeKind::Insert,
        before: None,
        after: Some(after),
    }
}

fn upd(t: &Arc<TableSchema>, before: Row, after: Row) -> RowChange {
    RowChange {
        table: t.clone(),
        kind: ChangeKind::Update,
        before: Some(before),
        after: Some(after),
    }
}

fn del(t: &Arc<TableSchema>, before: Row) -> RowChange {
    RowChange {
        table: t.clone(),
        kind: ChangeKind::Delete,
        before: Some(before),
        after: None,
    }
}

fn r(k: i64, v: &str) -> Row {
    vec![Value::Int(k), Value::Text(v.into())]
}

/// The whole target, as the model sees it: per table name, either keyed
/// rows or a multiset of rows.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    keyed: BTreeMap<String, BTreeMap<Vec<u8>, Row>>,
    unkeyed: BTreeMap<String, Vec<Row>>,
}

fn kb(row: &Row, key: &[usize]) -> Vec<u8> {
    let mut b = Vec::new();
    key_bytes(&mut b, row, key).to_vec()
}

impl Model {
    /// Source semantics, one change at a time.
    fn apply_raw(&mut self, c: &RowChange) {
        let name = c.table.table.clone();
        match pk(&c.table) {
            Some(key) => {
                let t = self.keyed.entry(name).or_default();
                if let Some(b) = &c.before {
                    assert!(
                        t.remove(&kb(b, &key)).is_some(),
                        "source removes a present row"
                    );
                }
                if let Some(a) = &c.after {
                    assert!(
                        t.insert(kb(a, &key), a.clone()).is_none(),
                        "source inserts an absent key"
                    );
                }
            }
            None => {
                let t = self.unkeyed.entry(name).or_default();
                if let Some(b) = &c.before {
                    let i = t.iter().position(|x| x == b).expect("row to delete exists");
                    t.remove(i);
                }
                if let Some(a) = &c.after {
                    t.push(a.clone());
                }
            }
        }
    }

    /// Target semantics of merged operations (upsert/delete by key).
    fn apply_plans(&mut self, plans: &[TablePlan<'_>]) {
        for p in plans {
            let name = p.table.table.clone();
            match &p.body {
                PlanBody::Keyed {
                    key,
                    deletes,
                    upserts,
                } => {
                    let t = self.keyed.entry(name).or_default();
                    for d in deletes {
                        t.remove(&kb(d.row, &key.columns));
                    }
                    for u in upserts {
                        t.insert(kb(u.row, &key.columns), u.row.clone());
                    }
                }
                PlanBody::Unkeyed(ops) => {
                    let t = self.unkeyed.entry(name).or_default();
                    for op in ops {
                        match op {
                            SerialOp::Insert(a) => t.push((*a).clone()),
                            SerialOp::DeleteOne(b) => {
                                if let Some(i) = t.iter().position(|x| x == *b) {
                                    t.remove(i);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn normalized(mut self) -> Self {
        for rows in self.unkeyed.values_mut() {
            rows.sort_by_key(|r| format!("{r:?}"));
        }
        self
    }
}

/// A random valid source history over several tables: inserts of absent
/// keys, updates (same key or a key change to an absent key), deletes of
/// present rows, from a random initial state.
fn workload(rng: &mut Rng, tables: &[Arc<TableSchema>], n: usize) -> (Model, Vec<RowChange>) {
    let mut initial = Model::default();
    let mut state = Model::default();
    let key_space = 12; // small: many collisions, merges and key changes
    let mut counter = 0;
    let mut value = |rng: &mut Rng| {
        counter += 1;
        format!("v{counter}-{}", rng.below(1000))
    };
    let make = |t: &TableSchema, k1: i64, k2: i64, v: String| -> Row {
        let mut row = vec![Value::Int(k1)];
        if t.columns.len() > 2 && t.columns[1].name == "k2" {
            row.push(Value::Int(k2));
        }
        row.push(Value::Text(v));
        if t.columns.last().is_some_and(|c| c.name == "extra") {
            row.push(Value::Int(k1 * 7));
        }
        row
    };
    // Initial rows.
    for t in tables {
        for _ in 0..rng.below(8) {
            let (k1, k2) = (rng.below(key_space) as i64, rng.below(2) as i64);
            let row = make(t, k1, k2, value(rng));
            let c = ins(t, row);
            match pk(t) {
                Some(key) => {
                    let m = state.keyed.entry(t.table.clone()).or_default();
                    let k = kb(c.after.as_ref().unwrap(), &key);
                    if m.contains_key(&k) {
                        continue;
                    }
                    m.insert(k, c.after.clone().unwrap());
                }
                None => state
                    .unkeyed
                    .entry(t.table.clone())
                    .or_default()
                    .push(c.after.clone().unwrap()),
            }
            initial = state.clone();
        }
    }
    let mut changes = Vec::new();
    while changes.len() < n {
        let t = &tables[rng.below(tables.len() as u64) as usize];
        let present: Vec<Row> = match pk(t) {
            Some(_) => state
                .keyed
                .get(&t.table)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
            None => state.unkeyed.get(&t.table).cloned().unwrap_or_default(),
        };
        let is_absent = |state: &Model, row: &Row| match pk(t) {
            Some(key) => !state
                .keyed
                .get(&t.table)
                .is_some_and(|m| m.contains_key(&kb(row, &key))),
            None => true,
        };
        let pick = rng.below(10);
        let change = if present.is_empty() || pick < 3 {
            let row = make(
                t,
                rng.below(key_space) as i64,
                rng.below(2) as i64,
                value(rng),
            );
            if !is_absent(&state, &row) {
                continue;
            }
            ins(t, row)
        } else {
            let before = present[rng.below(present.len() as u64) as usize].clone();
            if pick < 6 {
                // Same key, new value.
                let mut after = before.clone();
                let v = after
                    .iter()
                    .position(|x| matches!(x, Value::Text(_)))
                    .unwrap();
                after[v] = Value::Text(value(rng));
                upd(t, before, after)
            } else if pick < 8 {
                // Key change.
                let after = make(
                    t,
                    rng.below(key_space) as i64,
                    rng.below(2) as i64,
                    value(rng),
                );
                if !is_absent(&state, &after) {
                    continue;
                }
                upd(t, before, after)
            } else {
                del(t, before)
            }
        };
        state.apply_raw(&change);
        changes.push(change);
    }
    (initial, changes)
}

#[test]
fn randomized_model_check_merged_equals_raw() {
    // The workload must exercise what it claims to.
    let (mut key_changes, mut merged_away, mut unkeyed_ops) = (0, 0, 0);
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let tables = vec![
            table("a", 1, true, false),
            table("b", 2, true, false),
            table("c", 1, false, false),
        ];
        let n = 1 + rng.below(60) as usize;
        let (initial, changes) = workload(&mut rng, &tables, n);

        let mut raw = initial.clone();
        for c in &changes {
            raw.apply_raw(c);
        }
        let plans = merge(&changes, pk).unwrap();
        key_changes += changes
            .iter()
            .filter(|c| {
                c.kind == ChangeKind::Update
                    && pk(&c.table).is_some()
                    && c.before.as_ref().unwrap()[0] != c.after.as_ref().unwrap()[0]
            })
            .count();
        let keyed_changes = changes.iter().filter(|c| pk(&c.table).is_some()).count();
        let keyed_ops: usize = plans
            .iter()
            .filter(|p| matches!(p.body, PlanBody::Keyed { .. }))
            .map(TablePlan::op_count)
            .sum();
        merged_away += keyed_changes.saturating_sub(keyed_ops);
        unkeyed_ops += plans
            .iter()
            .filter(|p| matches!(p.body, PlanBody::Unkeyed(_)))
            .map(TablePlan::op_count)
            .sum::<usize>();
        let mut merged = initial.clone();
        merged.apply_plans(&plans);
        assert_eq!(
            merged.clone().normalized(),
            raw.clone().normalized(),
            "seed {seed}: merged ops differ from raw changes"
        );

        // Replay: applying the keyed ops again, or to any mix of before
        // and after rows for the touched keys, converges.
        let keyed_only = |m: &Model| m.keyed.clone();
        let mut twice = merged.clone();
        twice.apply_plans(&plans);
        assert_eq!(keyed_only(&twice), keyed_only(&raw), "seed {seed}: replay");
        let mut mixed = initial.clone();
        for (i, c) in changes.iter().enumerate() {
            if pk(&c.table).is_some() && (i as u64 + seed) % 3 == 0 {
                // Some changes "already applied", out of order, as
                // absolute operations.
                let key = pk(&c.table).unwrap();
                let t = mixed.keyed.entry(c.table.table.clone()).or_default();
                if let Some(b) = &c.before {
                    t.remove(&kb(b, &key));
                }
                if let Some(a) = &c.after {
                    t.insert(kb(a, &key), a.clone());
                }
            }
        }
        mixed.apply_plans(&plans);
        assert_eq!(
            keyed_only(&mixed),
            keyed_only(&raw),
            "seed {seed}: mixed replay"
        );

        // One final operation per key.
        for p in &plans {
            if let PlanBody::Keyed {
                key,
                deletes,
                upserts,
            } = &p.body
            {
                let mut seen = std::collections::HashSet::new();
                for op in deletes.iter().chain(upserts) {
                    assert!(
                        seen.insert(kb(op.row, &key.columns)),
                        "seed {seed}: key twice"
                    );
                }
            }
        }
    }
    assert!(key_changes > 500, "{key_changes} key changes");
    assert!(merged_away > 1000, "{merged_away} changes merged away");
    assert!(unkeyed_ops > 1000, "{unkeyed_ops} unkeyed ops");
}

#[test]
fn schema_change_inside_a_batch_starts_a_new_segment() {
    for seed in 0..100u64 {
        let mut rng = Rng(1000 + seed);
        let v1 = table("s", 1, true, false);
        let v2 = table("s", 1, true, true);
        let (initial, mut changes) = workload(&mut rng, std::slice::from_ref(&v1), 20);
        // Continue the same table's history under the new table map.
        let mut state = initial.clone();
        for c in &changes {
            state.apply_raw(c);
        }
        let present: Vec<Row> = state
            .keyed
            .get("s")
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for row in present.iter().take(3) {
            let mut before = row.clone();
            before.push(Value::Int(0));
            let mut after = before.clone();
            after[1] = Value::Text("after-ddl".into());
            changes.push(upd(&v2, before, after));
        }
        let mut raw = initial.clone();
        for c in &changes {
            raw.apply_raw(c);
        }
        let plans = merge(&changes, pk).unwrap();
        let mut merged = initial.clone();
        merged.apply_plans(&plans);
        assert_eq!(merged, raw, "seed {seed}");
        if !present.is_empty() {
            assert_eq!(plans.len(), 2);
            // Both segments share one worker.
            let hashes: std::collections::HashSet<u64> = plans
                .iter()
                .flat_map(|p| match &p.body {
                    PlanBody::Keyed {
                        deletes, upserts, ..
                    } => deletes
                        .iter()
                        .chain(upserts)
                        .map(|o| o.hash)
                        .collect::<Vec<_>>(),
                    PlanBody::Unkeyed(_) => vec![],
                })
                .collect();
            assert!(hashes.len() <= 1, "seed {seed}: {hashes:?}");
        }
    }
}

fn ops(plans: &[TablePlan<'_>]) -> (Vec<Row>, Vec<Row>) {
    let mut d = Vec::new();
    let mut u = Vec::new();
    for p in plans {
        if let PlanBody::Keyed {
            deletes, upserts, ..
        } = &p.body
        {
            d.extend(deletes.iter().map(|o| o.row.clone()));
            u.extend(upserts.iter().map(|o| o.row.clone()));
        }
    }
    (d, u)
}

#[test]
fn merge_rules() {
    let t = table("t", 1, true, false);
    // I + U → upsert(last after)
    let c = vec![ins(&t, r(1, "a")), upd(&t, r(1, "a"), r(1, "b"))];
    assert_eq!(ops(&merge(&c, pk).unwrap()), (vec![], vec![r(1, "b")]));
    // U + U → upsert(last after)
    let c = vec![upd(&t, r(1, "a"), r(1, "b")), upd(&t, r(1, "b"), r(1, "c"))];
    assert_eq!(ops(&merge(&c, pk).unwrap()), (vec![], vec![r(1, "c")]));
    // I + D → delete (not nothing: a replay may have applied the insert)
    let c = vec![ins(&t, r(1, "a")), del(&t, r(1, "a"))];
    assert_eq!(ops(&merge(&c, pk).unwrap()), (vec![r(1, "a")], vec![]));
    // D + I → upsert
    let c = vec![del(&t, r(1, "a")), ins(&t, r(1, "z"))];
    assert_eq!(ops(&merge(&c, pk).unwrap()), (vec![], vec![r(1, "z")]));
    // U + D → delete
    let c = vec![upd(&t, r(1, "a"), r(1, "b")), del(&t, r(1, "b"))];
    assert_eq!(ops(&merge(&c, pk).unwrap()), (vec![r(1, "b")], vec![]));
    // Key chain 1 → 2 → 3, then a new row at 1.
    let c = vec![
        upd(&t, r(1, "a"), r(2, "a")),
        upd(&t, r(2, "a"), r(3, "a")),
        ins(&t, r(1, "new")),
    ];
    assert_eq!(
        ops(&merge(&c, pk).unwrap()),
        (vec![r(2, "a")], vec![r(3, "a"), r(1, "new")])
    );
    // Swap of two keys through a temporary one.
    let c = vec![
        upd(&t, r(1, "x"), r(9, "x")),
        upd(&t, r(2, "y"), r(1, "y")),
        upd(&t, r(9, "x"), r(2, "x")),
    ];
    assert_eq!(
        ops(&merge(&c, pk).unwrap()),
        (vec![r(9, "x")], vec![r(1, "y"), r(2, "x")])
    );
}

#[test]
fn tables_without_a_key_keep_source_order() {
    let t = table("n", 1, false, false);
    let c = vec![
        ins(&t, r(1, "a")),
        upd(&t, r(1, "a"), r(1, "b")),
        del(&t, r(1, "b")),
    ];
    let plans = merge(&c, pk).unwrap();
    let PlanBody::Unkeyed(ops) = &plans[0].body else {
        panic!("unkeyed expected");
    };
    assert_eq!(
        ops,
        &vec![
            SerialOp::Insert(&r(1, "a")),
            SerialOp::DeleteOne(&r(1, "a")),
            SerialOp::Insert(&r(1, "b")),
            SerialOp::DeleteOne(&r(1, "b")),
        ]
    );
}

#[test]
fn partitioning_hash_is_per_key_or_per_table() {
    let exact = table("e", 1, true, false);
    let mut text = (*table("x", 1, true, false)).clone();
    text.primary_key = vec![1]; // the VARCHAR column (collation 45, _ci)
    let text = Arc::new(text);
    let mut c = Vec::new();
    for k in 0..50 {
        c.push(ins(&exact, r(k, "v")));
        c.push(ins(&text, r(k, &format!("k{k}"))));
    }
    let plans = merge(&c, pk).unwrap();
    let hashes = |p: &TablePlan<'_>| -> std::collections::HashSet<u64> {
        match &p.body {
            PlanBody::Keyed { upserts, .. } => upserts.iter().map(|o| o.hash).collect(),
            PlanBody::Unkeyed(_) => Default::default(),
        }
    };
    let PlanBody::Keyed { key, .. } = &plans[0].body else {
        panic!()
    };
    assert!(key.exact);
    assert!(
        hashes(&plans[0]).len() > 10,
        "exact keys spread over workers"
    );
    let PlanBody::Keyed { key, .. } = &plans[1].body else {
        panic!()
    };
    assert!(!key.exact);
    assert_eq!(
        hashes(&plans[1]).len(),
        1,
        "collation keys stay on one worker"
    );
}

#[test]
fn refusals_name_table_key_and_column() {
    let t = table("t", 1, true, false);
    let bad = vec![Value::Int(5), Value::Absent];
    let e = merge(&[ins(&t, bad)], pk).unwrap_err();
    assert_eq!(e.table, "`db`.`t`");
    assert_eq!(e.key, "(k1=5)");
    assert!(
        e.reason.contains("column `v` is not in the row image"),
        "{e:?}"
    );

    let diff = vec![Value::Int(6), Value::JsonDiff("[]".into())];
    let e = merge(&[upd(&t, r(6, "a"), diff)], pk).unwrap_err();
    assert!(e.reason.contains("partial JSON update"), "{e:?}");

    let e = merge(&[ins(&t, vec![Value::Null, Value::Text("a".into())])], pk).unwrap_err();
    assert!(e.reason.contains("key column `k1` is NULL"), "{e:?}");

    let missing = RowChange {
        table: t.clone(),
        kind: ChangeKind::Update,
        before: Some(r(1, "a")),
        after: None,
    };
    let e = merge(&[missing], pk).unwrap_err();
    assert!(e.reason.contains("update without its after image"), "{e:?}");

    let e = merge(&[ins(&t, vec![Value::Int(1)])], pk).unwrap_err();
    assert!(e.reason.contains("1 values for 2 columns"), "{e:?}");

    let mut nameless = (*t).clone();
    nameless.has_names = false;
    let e = merge(&[ins(&Arc::new(nameless), r(1, "a"))], pk).unwrap_err();
    assert!(e.reason.contains("binlog_row_metadata=FULL"), "{e:?}");

    // Before images of keyed tables only need their key.
    let before = vec![Value::Int(1), Value::Absent];
    assert!(merge(&[del(&t, before)], pk).is_ok());
}

/// A delete expects the target to hold its key exactly when the source held
/// it before the batch: not after an insert in the same batch, nor for an
/// intermediate key of a chain of key changes.
#[test]
fn deletes_know_whether_the_source_held_the_key() {
    let t = table("t", 1, true, false);
    let changes = vec![
        del(&t, r(1, "a")), // held before the batch
        ins(&t, r(2, "b")), // I+D: a precaution
        del(&t, r(2, "b")),
        upd(&t, r(3, "c"), r(4, "c")), // key change 3 → 4 → 5
        upd(&t, r(4, "c"), r(5, "c")),
        upd(&t, r(6, "d"), r(6, "e")), // U+D of a held key
        del(&t, r(6, "e")),
    ];
    let plans = merge(&changes, pk).expect("merge");
    let PlanBody::Keyed {
        deletes, upserts, ..
    } = &plans[0].body
    else {
        panic!("keyed")
    };
    let expect: Vec<(i64, bool)> = deletes
        .iter()
        .map(|d| match d.row[0] {
            Value::Int(k) => (k, d.expect_row),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        expect,
        [(1, true), (2, false), (3, true), (4, false), (6, true)]
    );
    assert_eq!(upserts.len(), 1);
}
