//! Generated data: the `bench.orders` table, its rows a pure function of
//! the row number (the "seed" is the formula), so any server given the same
//! range holds byte-identical rows.

use mysql_async::prelude::Queryable;

pub const ORDERS: &str = "bench.orders";

/// Creates `bench` and an empty `bench.orders`.
pub const ORDERS_DDL: &str = "CREATE DATABASE IF NOT EXISTS bench;
    CREATE TABLE bench.orders (
      id BIGINT UNSIGNED PRIMARY KEY, customer INT NOT NULL, sku VARCHAR(32) NOT NULL,
      qty SMALLINT NOT NULL, price DECIMAL(10,2) NOT NULL, weight DOUBLE,
      note VARCHAR(64) CHARACTER SET utf8mb4, created DATETIME(3) NOT NULL,
      status ENUM('new','paid','shipped','done') NOT NULL)";

/// Inserts rows `first..=last` into `bench.orders`, `per_txn` rows per
/// transaction (one `INSERT … SELECT` from the sequence engine each).
pub async fn insert_orders(
    conn: &mut mysql_async::Conn,
    first: u64,
    last: u64,
    per_txn: u64,
) -> anyhow::Result<()> {
    insert_rows(conn, ORDERS, first, last, per_txn).await
}

/// As [`insert_orders`], into `table` (`schema.table`, created with the
/// orders columns, e.g. from [`ORDERS_DDL`] renamed).
pub async fn insert_rows(
    conn: &mut mysql_async::Conn,
    table: &str,
    first: u64,
    last: u64,
    per_txn: u64,
) -> anyhow::Result<()> {
    let mut from = first;
    while from <= last {
        let to = last.min(from + per_txn - 1);
        conn.query_drop(format!(
            "INSERT INTO {table} SELECT seq, seq % 100003, CONCAT('SKU-', seq % 9973),
               seq % 50, (seq % 100000) / 100, (seq % 977) * 0.125,
               IF(seq % 7 = 0, NULL, CONCAT('note ', seq, ' ✓')),
               '2024-01-01 00:00:00.000' + INTERVAL seq SECOND,
               1 + seq % 4
             FROM bench.seq_{from}_to_{to}"
        ))
        .await?;
        from = to + 1;
    }
    Ok(())
}
