//! Routing of DDL statements from the binlog to the target.
//!
//! A binlog `Query` event carries a DDL statement as SQL text plus the
//! session's default schema (`USE db`). [`route_ddl`] decides whether the
//! statement concerns replicated tables and, if so, rewrites every table
//! reference in it to the fully qualified, backquoted *target* name
//! (`` `tschema`.`ttable` ``, backquotes in names doubled), so the statement
//! runs on the target with no default database. Everything else of the text —
//! column definitions, comments, executable comments, string literals — is
//! kept byte for byte.
//!
//! # Recognised statements
//!
//! - `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] name ...`,
//!   including `... LIKE other` and `... (LIKE other)`;
//! - `ALTER [ONLINE|OFFLINE] [IGNORE] TABLE [IF EXISTS] name ...`, with
//!   `RENAME [TO|AS] new` clauses (not `RENAME COLUMN|INDEX|KEY x TO y`) and
//!   MariaDB/MySQL partition clauses naming a table
//!   (`EXCHANGE PARTITION p WITH TABLE t`, `CONVERT PARTITION p TO TABLE t`,
//!   `CONVERT TABLE t TO PARTITION p`);
//! - `DROP [TEMPORARY] TABLE[S] [IF EXISTS] a[, b ...] [RESTRICT|CASCADE]`;
//! - `RENAME TABLE[S] [IF EXISTS] a [WAIT n|NOWAIT] TO b[, c TO d ...]`;
//! - `TRUNCATE [TABLE] name`;
//! - `CREATE [OR REPLACE] [ONLINE|OFFLINE] [UNIQUE|FULLTEXT|SPATIAL] INDEX
//!   [IF NOT EXISTS] idx [USING ...] ON name ...`;
//! - `DROP [ONLINE|OFFLINE] INDEX [IF EXISTS] idx ON name`.
//!
//! In `CREATE TABLE` and `ALTER TABLE` bodies, `REFERENCES name` (foreign
//! keys) and the MERGE engine's `UNION [=] (a, b, ...)` are references too.
//! Every other statement (databases, views, triggers, routines, events,
//! users, grants, sequences, `SET`, `ANALYZE`, `OPTIMIZE`, `FLUSH`, `XA`, ...)
//! is ignored, with a reason naming the statement kind.
//!
//! # Why a lexer is enough
//!
//! Table names in these statements appear only at a few fixed places: right
//! after the leading keywords, after `LIKE`, `REFERENCES`, `RENAME [TO]`,
//! `TO` (in `RENAME TABLE`), `ON` (indexes) and in comma lists. The rest of a
//! statement (column types, defaults, partitioning, options) never needs to
//! be understood, only skipped — and skipping correctly only requires knowing
//! where comments, strings and quoted identifiers start and end, so a word
//! like `REFERENCES` or `shop.users` inside `COMMENT 'shop.users'` is never
//! mistaken for a reference. A small lexer over the text, keeping byte spans,
//! does exactly that and lets us replace only the name tokens. The lexer
//! knows `-- `, `#` and `/* */` comments; the *contents* of executable
//! comments (`/*!NNNNN ... */`, `/*M!NNNNNN ... */`) are lexed as SQL, since
//! the server executes them (MySQL writes e.g.
//! `DROP /*!40005 TEMPORARY */ TABLE ...`), and their markers are kept in the
//! output; backquoted identifiers (`` `a``b` `` is ``a`b``); single- and
//! double-quoted strings with backslash and doubled-quote escapes
//! (`ANSI_QUOTES` is not assumed: a double-quoted token is a string). Input
//! the lexer or the statement grammar cannot follow (unterminated strings or
//! comments, a missing table name) is ignored with a "cannot parse" reason;
//! nothing here panics on arbitrary input.
//!
//! # Filter and route rules
//!
//! - An unqualified name means the default schema; if there is none, the
//!   statement is ignored (the server could not have run it either).
//! - `CREATE TABLE`, `ALTER TABLE`, `TRUNCATE`, `CREATE INDEX`, `DROP INDEX`
//!   are decided on their *subject* (the first name): ignored when the
//!   filter excludes it. Other names in the statement (`LIKE`,
//!   `REFERENCES`, `ALTER ... RENAME TO`, exchanged partitions) are routed
//!   whatever the filter says of them: the statement is about the subject,
//!   and a reference to a table the target lacks fails loudly there rather
//!   than being silently dropped.
//! - `DROP TABLE a, b, c` is decided per name: the statement is rewritten to
//!   drop only the replicated tables (keeping `IF EXISTS` and the rest), and
//!   ignored if there are none.
//! - `RENAME TABLE a TO b, ...` is decided per pair: a pair is kept when its
//!   source *or* its destination is replicated, and both names are routed.
//!   A rename across the filter boundary changes which name holds the
//!   replicated data: a table renamed out of the replicated set must also
//!   move on the target (or a later table under the old name would collide
//!   with it), and a table renamed into it must be there under the new name
//!   for its row events. The common case is a swap through a scratch name
//!   the filter excludes (`RENAME TABLE t TO tmp_t, t2 TO t, tmp_t TO t2`),
//!   which only works if every pair is kept. Pairs with neither side
//!   replicated are removed; if none remains, the statement is ignored.
//! - Temporary tables are never replicated (`CREATE/DROP TEMPORARY TABLE` is
//!   ignored): their rows are not in a row-based binlog, and a temporary
//!   table created on a pooled target connection would shadow the real
//!   table of the same name for that connection's later writes.
//! - Tables in the system schemas are excluded by [`Filter::includes`].
//!
//! # Limitations
//!
//! - Backslash escapes in strings are assumed (no `NO_BACKSLASH_ESCAPES`).
//! - Table references inside a `SELECT` of `CREATE TABLE ... SELECT` are not
//!   rewritten; with row-based logging the server writes such a statement as
//!   a plain `CREATE TABLE` followed by row events.
//! - Where `DROP TABLE` or `RENAME TABLE` lists are shortened, the kept items
//!   are re-joined with `", "`, so comments between list items are lost.

mod lex;
mod parse;
mod route;
mod types;

pub use route::route_ddl;
pub use types::{DdlDecision, DdlKind, RoutedDdl};

#[cfg(test)]
mod tests;
