//! Random tables, values and transactions for fidelity property tests, and
//! the server's own view of a row in sluice's JSON Lines value encoding.
//!
//! A [`TableSpec`] is drawn from a seed: 1–40 columns of every column type
//! MariaDB has (signed and unsigned integers, DECIMAL, FLOAT/DOUBLE, every
//! temporal type with each fsp, YEAR, BIT, CHAR/VARCHAR/TEXT in every
//! charset family, BINARY/VARBINARY/BLOB, ENUM/SET with non-ASCII labels in
//! their column's charset, MariaDB's JSON, GEOMETRY, UUID, INET4, INET6),
//! NULLs, a virtual and a stored generated column and an invisible column
//! now and then, and a key that is an integer, a composite key with a
//! character column, or none. [`TableSpec::transaction`] draws multi-row
//! transactions of INSERT/UPDATE/DELETE (key changes included) from a
//! strict or a non-strict session; non-strict sessions also write the
//! values only they accept (invalid ENUM labels, zero and invalid dates,
//! out-of-range numbers, too-long strings, which the server clips).
//!
//! [`TableSpec::select_sql`] reads the table back so that
//! [`TableSpec::expected`] can turn each row into the value encoding of
//! `sluice binlog decode` (`sluice_binlog::output`), so a decoded row and
//! the server's own SELECT compare as JSON.
//!
//! The PRNG is a splitmix64 written out here: ten lines, the same sequence
//! on every platform and forever, so a printed seed always replays the same
//! case. `rand`'s `StdRng` explicitly may change its algorithm between
//! versions (a seed would stop reproducing after an upgrade), and
//! `rand_chacha` would be a dependency for nothing a test needs.

/// splitmix64 (see the module docs): the workload's generator, one
/// implementation for every seeded test.
pub use crate::workload::Rng;

mod expect;
mod kind;
mod table;

pub use kind::{hex, utf8_literal, Cs, Kind};
pub use table::{ColumnSpec, Generated, KeySpec, TableSpec, SESSION_MODES};

#[cfg(test)]
mod tests;
