//! Routing tests: every recognised statement shape, filter and route rule.

use super::route::*;
use super::types::*;
use sluice_config::{Filter, Route, Routes, TablePattern};

fn pat(p: &str) -> TablePattern {
    TablePattern::new(p).expect("pattern")
}

/// Replicates `shop.*` except `shop.tmp_*`, plus `crm.customers`.
fn filter() -> Filter {
    Filter::new(
        vec![pat(r"shop\..*"), pat(r"crm\.customers")],
        vec![pat(r"shop\.tmp_.*")],
    )
}

/// `shop.X` → `shop_copy.X`; everything else keeps its name.
fn routes() -> Routes {
    Routes::new(vec![
        Route::new(pat(r"shop\.(.*)"), "shop_copy.$1").expect("route")
    ])
}

fn apply(default_schema: &str, sql: &str) -> RoutedDdl {
    match route_ddl(default_schema, sql, &filter(), &routes()) {
        DdlDecision::Apply(r) => r,
        DdlDecision::Ignore { reason } => panic!("{sql:?} ignored: {reason}"),
    }
}

fn ignore(default_schema: &str, sql: &str) -> String {
    match route_ddl(default_schema, sql, &filter(), &routes()) {
        DdlDecision::Ignore { reason } => reason,
        DdlDecision::Apply(r) => panic!("{sql:?} applied: {r:?}"),
    }
}

fn t(schema: &str, table: &str) -> (String, String) {
    (schema.to_string(), table.to_string())
}

#[test]
fn create_table_unqualified_keeps_strings_and_comments() {
    let r = apply(
        "shop",
        "CREATE TABLE users (\n  id INT PRIMARY KEY, -- users.id\n  name VARCHAR(10) COMMENT 'shop.users' # x\n) COMMENT=\"REFERENCES shop.other\"",
    );
    assert_eq!(r.kind, DdlKind::CreateTable);
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`users` (\n  id INT PRIMARY KEY, -- users.id\n  name VARCHAR(10) COMMENT 'shop.users' # x\n) COMMENT=\"REFERENCES shop.other\""
    );
    assert_eq!(r.source_tables, vec![t("shop", "users")]);
    assert_eq!(r.target_tables, vec![t("shop_copy", "users")]);
    assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);
}

#[test]
fn create_table_options() {
    let r = apply(
        "",
        "create or replace table if not exists shop.orders (id int)",
    );
    assert_eq!(
        r.sql,
        "create or replace table if not exists `shop_copy`.`orders` (id int)"
    );
    let r = apply("crm", "CREATE TABLE IF NOT EXISTS customers (id int)");
    assert_eq!(
        r.sql,
        "CREATE TABLE IF NOT EXISTS `crm`.`customers` (id int)"
    );
    assert_eq!(r.create_schemas, vec!["crm".to_string()]);
    assert_eq!(
        ignore("shop", "CREATE TEMPORARY TABLE users (id int)"),
        TEMPORARY
    );
}

#[test]
fn create_table_like() {
    let r = apply("shop", "CREATE TABLE users2 LIKE users");
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`users2` LIKE `shop_copy`.`users`"
    );
    assert_eq!(
        r.source_tables,
        vec![t("shop", "users2"), t("shop", "users")]
    );
    assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);
    let r = apply("x", "CREATE TABLE shop.a ( LIKE `crm` . `customers` )");
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`a` ( LIKE `crm`.`customers` )"
    );
    // LIKE later in the body is an operator, not a reference.
    let r = apply(
        "shop",
        "CREATE TABLE a (b varchar(3), CHECK (b LIKE 'x%'), c int)",
    );
    assert_eq!(r.source_tables, vec![t("shop", "a")]);
}

#[test]
fn references_are_rewritten() {
    let r = apply(
        "shop",
        "CREATE TABLE orders (id INT, user_id INT REFERENCES users(id), crm_id INT,\
         CONSTRAINT fk FOREIGN KEY (crm_id) REFERENCES crm.customers (id) ON DELETE CASCADE)",
    );
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`orders` (id INT, user_id INT REFERENCES `shop_copy`.`users`(id), crm_id INT,\
         CONSTRAINT fk FOREIGN KEY (crm_id) REFERENCES `crm`.`customers` (id) ON DELETE CASCADE)"
    );
    assert_eq!(
        r.source_tables,
        vec![
            t("shop", "orders"),
            t("shop", "users"),
            t("crm", "customers")
        ]
    );
    // Only the created table's schema must exist.
    assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);

    let r = apply(
        "shop",
        "ALTER TABLE orders ADD CONSTRAINT fk2 FOREIGN KEY (x) REFERENCES `other`.`parent` (id)",
    );
    assert_eq!(
        r.sql,
        "ALTER TABLE `shop_copy`.`orders` ADD CONSTRAINT fk2 FOREIGN KEY (x) REFERENCES `other`.`parent` (id)"
    );
    assert!(r.create_schemas.is_empty());
}

#[test]
fn name_forms() {
    for (sql, expected) in [
        (
            "ALTER TABLE shop.users ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE shop . users ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE `shop`.`users` ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE `shop` .\n `users` ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE shop.`users` ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE `users` ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE users ADD c INT",
            "ALTER TABLE `shop_copy`.`users` ADD c INT",
        ),
        (
            "ALTER TABLE `we``ird` ADD c INT",
            "ALTER TABLE `shop_copy`.`we``ird` ADD c INT",
        ),
        (
            "ALTER TABLE `a b`.c ADD d INT",
            "ALTER TABLE `a b`.`c` ADD d INT",
        ),
        (
            "ALTER TABLE shop.$x_1 ADD c INT",
            "ALTER TABLE `shop_copy`.`$x_1` ADD c INT",
        ),
        (
            "ALTER TABLE shop.Ünïcode ADD c INT",
            "ALTER TABLE `shop_copy`.`Ünïcode` ADD c INT",
        ),
    ] {
        let everything = Filter::default();
        let got = match route_ddl("shop", sql, &everything, &routes()) {
            DdlDecision::Apply(r) => r.sql,
            DdlDecision::Ignore { reason } => panic!("{sql}: {reason}"),
        };
        assert_eq!(got, expected, "{sql}");
    }
    let r = apply("shop", "ALTER TABLE `we``ird` ADD c INT");
    assert_eq!(r.source_tables, vec![t("shop", "we`ird")]);
    // Bare identifiers are taken as written: no case folding.
    assert_eq!(
        ignore("shop", "ALTER TABLE Shop.users ADD c INT"),
        "table Shop.users is filtered out"
    );
}

#[test]
fn target_names_are_quoted() {
    let routes = Routes::new(vec![
        Route::new(pat(r"shop\.(.*)"), "we`ird.t_$1").expect("route")
    ]);
    let DdlDecision::Apply(r) = route_ddl("shop", "TRUNCATE users", &Filter::default(), &routes)
    else {
        panic!("ignored")
    };
    assert_eq!(r.sql, "TRUNCATE `we``ird`.`t_users`");
    assert_eq!(r.target_tables, vec![t("we`ird", "t_users")]);
}

#[test]
fn alter_rename_table_vs_column_and_index() {
    let r = apply("shop", "ALTER TABLE users RENAME TO archive.users_old");
    assert_eq!(
        r.sql,
        "ALTER TABLE `shop_copy`.`users` RENAME TO `archive`.`users_old`"
    );
    assert_eq!(r.kind, DdlKind::AlterTable);
    assert_eq!(r.create_schemas, vec!["archive".to_string()]);
    assert_eq!(
        r.target_tables,
        vec![t("shop_copy", "users"), t("archive", "users_old")]
    );

    let r = apply(
        "shop",
        "alter table users rename as users2, ALGORITHM=INPLACE",
    );
    assert_eq!(
        r.sql,
        "alter table `shop_copy`.`users` rename as `shop_copy`.`users2`, ALGORITHM=INPLACE"
    );
    let r = apply("shop", "ALTER TABLE users RENAME users2");
    assert_eq!(
        r.sql,
        "ALTER TABLE `shop_copy`.`users` RENAME `shop_copy`.`users2`"
    );
    assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);

    for sql in [
        "ALTER TABLE users RENAME COLUMN a TO b",
        "ALTER TABLE users RENAME INDEX a TO b",
        "ALTER TABLE users RENAME KEY a TO b, RENAME COLUMN c TO d",
    ] {
        let r = apply("shop", sql);
        assert_eq!(r.source_tables, vec![t("shop", "users")], "{sql}");
        assert!(r.create_schemas.is_empty(), "{sql}");
        assert_eq!(r.sql, sql.replacen("users", "`shop_copy`.`users`", 1));
    }

    let r = apply(
        "shop",
        "ALTER ONLINE IGNORE TABLE IF EXISTS users RENAME COLUMN a TO b, RENAME TO users_new",
    );
    assert_eq!(
        r.sql,
        "ALTER ONLINE IGNORE TABLE IF EXISTS `shop_copy`.`users` RENAME COLUMN a TO b, RENAME TO `shop_copy`.`users_new`"
    );
    // The subject decides.
    assert_eq!(
        ignore("shop", "ALTER TABLE tmp_x RENAME TO users"),
        "table shop.tmp_x is filtered out"
    );
}

#[test]
fn alter_partition_tables() {
    let r = apply(
        "shop",
        "ALTER TABLE orders EXCHANGE PARTITION p0 WITH TABLE orders_p0 WITHOUT VALIDATION",
    );
    assert_eq!(
        r.sql,
        "ALTER TABLE `shop_copy`.`orders` EXCHANGE PARTITION p0 WITH TABLE `shop_copy`.`orders_p0` WITHOUT VALIDATION"
    );
    assert!(r.create_schemas.is_empty());
    let r = apply(
        "shop",
        "ALTER TABLE orders CONVERT PARTITION p0 TO TABLE old.p0",
    );
    assert_eq!(
        r.sql,
        "ALTER TABLE `shop_copy`.`orders` CONVERT PARTITION p0 TO TABLE `old`.`p0`"
    );
    assert_eq!(r.create_schemas, vec!["old".to_string()]);
}

#[test]
fn merge_union() {
    let r = apply(
        "shop",
        "CREATE TABLE m (a INT) ENGINE=MERGE UNION=(t1, crm.customers) INSERT_METHOD=LAST",
    );
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`m` (a INT) ENGINE=MERGE UNION=(`shop_copy`.`t1`, `crm`.`customers`) INSERT_METHOD=LAST"
    );
}

#[test]
fn drop_table_mixed_filter() {
    let r = apply(
        "shop",
        "DROP TABLE IF EXISTS users, tmp_import, crm.customers, crm.notes RESTRICT",
    );
    assert_eq!(r.kind, DdlKind::DropTable);
    assert_eq!(
        r.sql,
        "DROP TABLE IF EXISTS `shop_copy`.`users`, `crm`.`customers` RESTRICT"
    );
    assert_eq!(
        r.source_tables,
        vec![t("shop", "users"), t("crm", "customers")]
    );
    assert!(r.create_schemas.is_empty());

    // All kept: rewritten in place, separators untouched.
    let r = apply("shop", "DROP TABLES a ,b");
    assert_eq!(r.sql, "DROP TABLES `shop_copy`.`a` ,`shop_copy`.`b`");

    assert_eq!(
        ignore("shop", "DROP TABLE tmp_a, crm.notes"),
        "tables shop.tmp_a, crm.notes are filtered out"
    );
    assert_eq!(
        ignore("shop", "DROP TABLE tmp_a"),
        "table shop.tmp_a is filtered out"
    );
}

#[test]
fn mariadb_generated_by_server() {
    let r = apply("shop", "DROP TABLE `users` /* generated by server */");
    assert_eq!(
        r.sql,
        "DROP TABLE `shop_copy`.`users` /* generated by server */"
    );
    let r = apply(
        "",
        "DROP TABLE IF EXISTS `shop`.`a`,`shop`.`tmp_b` /* generated by server */",
    );
    assert_eq!(
        r.sql,
        "DROP TABLE IF EXISTS `shop_copy`.`a` /* generated by server */"
    );
}

#[test]
fn temporary_tables_are_ignored() {
    assert_eq!(
        ignore("shop", "DROP TEMPORARY TABLE IF EXISTS users"),
        TEMPORARY
    );
    // MySQL's disconnect cleanup.
    assert_eq!(
        ignore(
            "shop",
            "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS `users` /* generated by server */"
        ),
        TEMPORARY
    );
}

#[test]
fn rename_table_pairs() {
    let r = apply(
        "shop",
        "RENAME TABLE users TO users_old, crm.notes TO crm.notes2, new_users TO users",
    );
    assert_eq!(r.kind, DdlKind::RenameTable);
    assert_eq!(
        r.sql,
        "RENAME TABLE `shop_copy`.`users` TO `shop_copy`.`users_old`, `shop_copy`.`new_users` TO `shop_copy`.`users`"
    );
    assert_eq!(
        r.source_tables,
        vec![
            t("shop", "users"),
            t("shop", "users_old"),
            t("shop", "new_users"),
            t("shop", "users")
        ]
    );
    assert_eq!(r.create_schemas, vec!["shop_copy".to_string()]);

    // A swap through an excluded scratch name keeps every pair.
    let r = apply("shop", "RENAME TABLE a TO tmp_a, b TO a, tmp_a TO b");
    assert_eq!(
        r.sql,
        "RENAME TABLE `shop_copy`.`a` TO `shop_copy`.`tmp_a`, `shop_copy`.`b` TO `shop_copy`.`a`, `shop_copy`.`tmp_a` TO `shop_copy`.`b`"
    );

    // Out of and into the replicated set: both kept, both routed.
    let r = apply(
        "",
        "RENAME TABLE shop.a TO archive.a, staging.c TO crm.customers",
    );
    assert_eq!(
        r.sql,
        "RENAME TABLE `shop_copy`.`a` TO `archive`.`a`, `staging`.`c` TO `crm`.`customers`"
    );
    assert_eq!(
        r.create_schemas,
        vec!["archive".to_string(), "crm".to_string()]
    );

    assert_eq!(
        ignore("shop", "RENAME TABLE tmp_a TO tmp_b, crm.x TO crm.y"),
        "tables shop.tmp_a, shop.tmp_b, crm.x, crm.y are filtered out"
    );
    // MariaDB's IF EXISTS and WAIT.
    let r = apply("shop", "RENAME TABLE IF EXISTS a WAIT 3 TO b");
    assert_eq!(
        r.sql,
        "RENAME TABLE IF EXISTS `shop_copy`.`a` WAIT 3 TO `shop_copy`.`b`"
    );
}

#[test]
fn truncate() {
    let r = apply("shop", "TRUNCATE TABLE users");
    assert_eq!(r.kind, DdlKind::TruncateTable);
    assert_eq!(r.sql, "TRUNCATE TABLE `shop_copy`.`users`");
    assert_eq!(
        apply("shop", "truncate users").sql,
        "truncate `shop_copy`.`users`"
    );
    assert_eq!(
        ignore("shop", "TRUNCATE tmp_x"),
        "table shop.tmp_x is filtered out"
    );
}

#[test]
fn create_and_drop_index() {
    let r = apply("shop", "CREATE UNIQUE INDEX idx_email ON users (email)");
    assert_eq!(r.kind, DdlKind::CreateIndex);
    assert_eq!(
        r.sql,
        "CREATE UNIQUE INDEX idx_email ON `shop_copy`.`users` (email)"
    );
    assert!(r.create_schemas.is_empty());
    let r = apply(
        "shop",
        "CREATE OR REPLACE ONLINE FULLTEXT INDEX IF NOT EXISTS `ft` USING BTREE ON shop.posts (body) COMMENT 'on users'",
    );
    assert_eq!(
        r.sql,
        "CREATE OR REPLACE ONLINE FULLTEXT INDEX IF NOT EXISTS `ft` USING BTREE ON `shop_copy`.`posts` (body) COMMENT 'on users'"
    );
    let r = apply("shop", "DROP INDEX IF EXISTS `PRIMARY` ON users");
    assert_eq!(r.kind, DdlKind::DropIndex);
    assert_eq!(
        r.sql,
        "DROP INDEX IF EXISTS `PRIMARY` ON `shop_copy`.`users`"
    );
    assert_eq!(
        ignore("shop", "DROP INDEX i ON tmp_x"),
        "table shop.tmp_x is filtered out"
    );
}

#[test]
fn executable_comments() {
    let r = apply("shop", "/*!40000 ALTER TABLE `users` DISABLE KEYS */");
    assert_eq!(
        r.sql,
        "/*!40000 ALTER TABLE `shop_copy`.`users` DISABLE KEYS */"
    );
    let r = apply(
        "shop",
        "CREATE TABLE t (a INT, b INT) /*!50100 PARTITION BY HASH (a) */ /*M!100301 COMMENT 'x' */",
    );
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`t` (a INT, b INT) /*!50100 PARTITION BY HASH (a) */ /*M!100301 COMMENT 'x' */"
    );
    // References inside executable comments are rewritten.
    let r = apply(
        "shop",
        "CREATE TABLE o (u INT /*!40101 REFERENCES users (id) */)",
    );
    assert_eq!(
        r.sql,
        "CREATE TABLE `shop_copy`.`o` (u INT /*!40101 REFERENCES `shop_copy`.`users` (id) */)"
    );
    // Without a version, and MariaDB-only.
    let r = apply("shop", "/*! TRUNCATE users */");
    assert_eq!(r.sql, "/*! TRUNCATE `shop_copy`.`users` */");
    let r = apply("shop", "/*M! DROP TABLE IF EXISTS users */");
    assert_eq!(r.sql, "/*M! DROP TABLE IF EXISTS `shop_copy`.`users` */");
    // A name split by a marker cannot be rewritten safely.
    assert!(
        ignore("shop", "ALTER TABLE /*!40000 shop */.users ADD c INT")
            .starts_with("cannot rewrite")
    );
}

#[test]
fn comments_everywhere() {
    let r = apply(
        "shop",
        "/* leading */ -- line\n# hash\nDROP /* a */ TABLE /* b */ users /* c */",
    );
    assert_eq!(
        r.sql,
        "/* leading */ -- line\n# hash\nDROP /* a */ TABLE /* b */ `shop_copy`.`users` /* c */"
    );
    // `--` not followed by whitespace is two minus signs.
    let r = apply("shop", "CREATE TABLE t (a INT DEFAULT 1--1)");
    assert_eq!(r.sql, "CREATE TABLE `shop_copy`.`t` (a INT DEFAULT 1--1)");
    assert_eq!(ignore("shop", "  /* nothing */ -- here"), "empty statement");
    let r = apply("shop", "TRUNCATE users;");
    assert_eq!(r.sql, "TRUNCATE `shop_copy`.`users`;");
}

#[test]
fn strings_are_not_names() {
    let sql = "ALTER TABLE users ADD c VARCHAR(9) DEFAULT 'it\\'s shop.users' COMMENT \"RENAME TO x\", ADD d CHAR(1) DEFAULT 'a''REFERENCES b'";
    let r = apply("shop", sql);
    assert_eq!(r.sql, sql.replacen("users", "`shop_copy`.`users`", 1));
    assert_eq!(r.source_tables, vec![t("shop", "users")]);
}

#[test]
fn unqualified_without_default_schema() {
    let reason = "unqualified table name and no default schema";
    assert_eq!(ignore("", "CREATE TABLE users (id INT)"), reason);
    assert_eq!(ignore("", "DROP TABLE shop.a, b"), reason);
    assert_eq!(ignore("", "CREATE TABLE shop.a LIKE b"), reason);
    // Fully qualified statements need no default schema.
    assert_eq!(
        apply("", "CREATE TABLE shop.a LIKE shop.b").sql,
        "CREATE TABLE `shop_copy`.`a` LIKE `shop_copy`.`b`"
    );
}

#[test]
fn system_schemas_are_filtered() {
    let all = Filter::default();
    let d = route_ddl("", "ALTER TABLE mysql.user ADD c INT", &all, &routes());
    assert_eq!(
        d,
        DdlDecision::Ignore {
            reason: "table mysql.user is filtered out".into()
        }
    );
}

#[test]
fn other_statements_are_ignored() {
    for (sql, reason) in [
        ("CREATE DATABASE shop", "CREATE DATABASE"),
        ("create schema if not exists shop", "CREATE SCHEMA"),
        ("DROP DATABASE shop", "DROP DATABASE"),
        (
            "ALTER DATABASE shop CHARACTER SET utf8mb4",
            "ALTER DATABASE",
        ),
        (
            "CREATE DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW v AS SELECT * FROM users",
            "CREATE VIEW",
        ),
        ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("ALTER ALGORITHM=MERGE VIEW v AS SELECT 1", "ALTER VIEW"),
        (
            "CREATE DEFINER='u'@'h' TRIGGER tr BEFORE INSERT ON users FOR EACH ROW SET NEW.a = 1",
            "CREATE TRIGGER",
        ),
        ("DROP TRIGGER IF EXISTS tr", "DROP TRIGGER"),
        ("CREATE PROCEDURE p() BEGIN END", "CREATE PROCEDURE"),
        (
            "CREATE AGGREGATE FUNCTION f RETURNS INT SONAME 'x'",
            "CREATE FUNCTION",
        ),
        ("DROP EVENT e", "DROP EVENT"),
        ("CREATE USER 'a'@'%'", "CREATE USER"),
        ("RENAME USER a TO b", "RENAME USER"),
        ("GRANT SELECT ON shop.* TO 'a'@'%'", "GRANT"),
        ("REVOKE ALL ON *.* FROM a", "REVOKE"),
        ("SET @x = 1", "SET"),
        ("ANALYZE TABLE users", "ANALYZE"),
        ("OPTIMIZE TABLE users", "OPTIMIZE"),
        ("FLUSH PRIVILEGES", "FLUSH"),
        ("SAVEPOINT s", "SAVEPOINT"),
        ("XA START 'x'", "XA"),
        ("BEGIN", "BEGIN"),
        ("CREATE TEMPORARY SEQUENCE s", "CREATE SEQUENCE"),
        ("CREATE SEQUENCE s START WITH 1", "CREATE SEQUENCE"),
        ("DROP TEMPORARY VIEW v", "DROP VIEW"),
        ("INSERT INTO users VALUES (1)", "INSERT"),
    ] {
        assert_eq!(
            ignore("shop", sql),
            format!("not a table statement ({reason})"),
            "{sql}"
        );
    }
    assert_eq!(ignore("shop", "(SELECT 1)"), "not a table statement");
}

#[test]
fn garbage_is_ignored_not_panicking() {
    for (sql, reason) in [
        (
            "CREATE TABLE `users",
            "cannot parse: unterminated quoted identifier",
        ),
        (
            "CREATE TABLE t (a CHAR(1) DEFAULT 'x",
            "cannot parse: unterminated string",
        ),
        (
            "CREATE TABLE t (a CHAR(1) DEFAULT 'x\\'",
            "cannot parse: unterminated string",
        ),
        ("DROP TABLE t /* oops", "cannot parse: unterminated comment"),
        (
            "/*!40000 ALTER TABLE t DISABLE KEYS",
            "cannot parse: unterminated executable comment",
        ),
        (
            "/*!40000 /*!40000 x */ */",
            "cannot parse: nested executable comment",
        ),
        (
            "CREATE TABLE",
            "cannot parse: expected a table name after CREATE TABLE",
        ),
        (
            "CREATE TABLE ``",
            "cannot parse: expected a table name after CREATE TABLE",
        ),
        (
            "CREATE TABLE 123 (a int)",
            "cannot parse: expected a table name after CREATE TABLE",
        ),
        (
            "DROP TABLE IF EXISTS",
            "cannot parse: expected a table name after DROP TABLE",
        ),
        (
            "DROP TABLE a,",
            "cannot parse: expected a table name after DROP TABLE",
        ),
        (
            "RENAME TABLE a",
            "cannot parse: expected TO in RENAME TABLE",
        ),
        (
            "RENAME TABLE a TO",
            "cannot parse: expected a table name after TO",
        ),
        (
            "ALTER TABLE t RENAME TO",
            "cannot parse: expected a table name after RENAME",
        ),
        (
            "ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES",
            "cannot parse: expected a table name after REFERENCES",
        ),
        (
            "CREATE INDEX",
            "cannot parse: expected an index name after CREATE INDEX",
        ),
        (
            "CREATE INDEX i (a)",
            "cannot parse: expected ON after the index name",
        ),
        (
            "DROP INDEX i",
            "cannot parse: expected ON after the index name",
        ),
        (
            "TRUNCATE",
            "cannot parse: expected a table name after TRUNCATE",
        ),
        (
            "ALTER TABLE shop.",
            "cannot parse: expected a table name after ALTER TABLE",
        ),
        ("", "empty statement"),
    ] {
        assert_eq!(ignore("shop", sql), reason, "{sql:?}");
    }

    // Every prefix of some real statements, and pseudo-random mutations
    // of them: any decision is fine, a panic is not.
    let samples = [
        "CREATE TABLE IF NOT EXISTS `shop`.`o``rders` (id INT REFERENCES users(id) COMMENT 'a\\'b', x CHAR(1) DEFAULT \"q\"\"\") /*!50100 PARTITION BY HASH(id) */ -- end\n",
        "RENAME TABLE a TO tmp_a, b WAIT 1 TO a, `shop` . tmp_a TO b # swap",
        "DROP /*!40005 TEMPORARY */ TABLE IF EXISTS a, crm.customers /* generated by server */",
        "ALTER TABLE ü.ñ RENAME COLUMN a TO b, RENAME TO x.y, EXCHANGE PARTITION p WITH TABLE z UNION=(a,b)",
        "CREATE OR REPLACE UNIQUE INDEX IF NOT EXISTS i USING HASH ON t (a); DROP INDEX `i` ON t",
    ];
    let alphabet: Vec<char> = "`'\"/*!M-#\\., ();=\n\tabTo0é".chars().collect();
    let mut seed: u64 = 0x5eed;
    let mut next = |bound: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % bound.max(1)
    };
    let (f, r) = (filter(), routes());
    for sample in samples {
        let chars: Vec<char> = sample.chars().collect();
        for n in 0..=chars.len() {
            let prefix: String = chars[..n].iter().collect();
            let _ = route_ddl("shop", &prefix, &f, &r);
            let _ = route_ddl("", &prefix, &f, &r);
        }
        for _ in 0..500 {
            let mut mutated = chars.clone();
            for _ in 0..1 + next(4) {
                let at = next(mutated.len());
                match next(3) {
                    0 => mutated[at] = alphabet[next(alphabet.len())],
                    1 => mutated.insert(at, alphabet[next(alphabet.len())]),
                    _ => {
                        mutated.remove(at);
                    }
                }
                if mutated.is_empty() {
                    break;
                }
            }
            let text: String = mutated.iter().collect();
            if let DdlDecision::Apply(routed) = route_ddl("shop", &text, &f, &r) {
                assert_eq!(routed.source_tables.len(), routed.target_tables.len());
            }
        }
    }
}
