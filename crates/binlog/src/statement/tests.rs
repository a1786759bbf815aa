//! Unit tests of `statement`.

use super::*;

fn t(schema: &str, table: &str) -> TableName {
    TableName::new(schema, table)
}

fn tables(sql: &str) -> Vec<TableName> {
    analyse("db", sql, Some(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .tables
}

fn undetermined(sql: &str) -> String {
    match analyse("db", sql, Some(0)) {
        Ok(w) => panic!("{sql}: determined as {w:?}"),
        Err(e) => e,
    }
}

#[test]
fn inserts_and_replaces() {
    assert_eq!(tables("INSERT INTO t VALUES (1)"), vec![t("db", "t")]);
    assert_eq!(tables("insert t (a, b) values (1, 2)"), vec![t("db", "t")]);
    assert_eq!(
        tables("INSERT LOW_PRIORITY IGNORE INTO `o`.`a``b` SET x = 1"),
        vec![t("o", "a`b")]
    );
    assert_eq!(
            tables("REPLACE INTO `percona`.`checksums` (db, tbl) SELECT 'shop', 'events' FROM `shop`.`events` FORCE INDEX(`PRIMARY`) WHERE (`id` >= '1')"),
            vec![t("percona", "checksums")]
        );
    assert_eq!(
            tables("INSERT INTO o.a SELECT * FROM shop.x JOIN shop.y USING (id) ON DUPLICATE KEY UPDATE v = VALUES(v)"),
            vec![t("o", "a")]
        );
    assert_eq!(
        tables("INSERT INTO o . a PARTITION (p0) VALUES (1) RETURNING id"),
        vec![t("o", "a")]
    );
}

#[test]
fn strings_comments_and_quotes_never_name_tables() {
    assert_eq!(
            tables("/* UPDATE shop.events */ INSERT -- shop.x\n INTO o.a # shop.y\n VALUES ('shop.events', \"x\", 'it''s', 'a\\'b')"),
            vec![t("o", "a")]
        );
    // ANSI_QUOTES: "o"."a" is a name; without it, a string (which no
    // server would accept as a table, so it cannot be determined).
    let ansi = analyse(
        "db",
        "INSERT INTO \"o\".\"a\" VALUES (1)",
        Some(MODE_ANSI_QUOTES),
    )
    .unwrap();
    assert_eq!(ansi.tables, vec![t("o", "a")]);
    assert!(analyse("db", "INSERT INTO \"o\".\"a\" VALUES (1)", Some(0)).is_err());
    // NO_BACKSLASH_ESCAPES decides where 'a\' ends.
    let sql = "INSERT INTO o.a VALUES ('a\\', 'b')";
    assert!(analyse("db", sql, Some(MODE_NO_BACKSLASH_ESCAPES)).is_ok());
    assert!(analyse("db", sql, Some(0)).is_err());
    // Unknown mode: both readings must agree.
    assert!(analyse("db", sql, None).is_err());
    assert_eq!(
        analyse("db", "INSERT INTO o.a VALUES (1)", None)
            .unwrap()
            .tables,
        vec![t("o", "a")]
    );
}

#[test]
fn executable_comments_count_when_they_agree() {
    assert_eq!(
        tables("INSERT /*!40001 IGNORE */ INTO o.a VALUES (1)"),
        vec![t("o", "a")]
    );
    assert_eq!(
        tables("INSERT /*M!100301 IGNORE */ INTO o.a VALUES (1)"),
        vec![t("o", "a")]
    );
    // The table itself inside one: the server may or may not have run it.
    let e = undetermined("INSERT INTO /*!99999 shop.events, */ o.a VALUES (1)");
    assert!(e.contains("expected") || e.contains("differently"), "{e}");
    assert!(undetermined("INSERT INTO o.a /* open").contains("unterminated"));
}

#[test]
fn updates_single_and_multi_table() {
    assert_eq!(
            tables("UPDATE `percona`.`checksums` SET chunk_time = '0.1', master_crc = '0' WHERE db = 'shop'"),
            vec![t("percona", "checksums")]
        );
    assert_eq!(
        tables("UPDATE LOW_PRIORITY IGNORE t AS x SET x.v = 1 ORDER BY id LIMIT 2"),
        vec![t("db", "t")]
    );
    // Only the assigned table of a join.
    assert_eq!(
        tables("UPDATE o.a JOIN shop.events e ON e.id = a.id SET a.v = a.v + 1"),
        vec![t("o", "a")]
    );
    assert_eq!(
        tables(
            "UPDATE o.a x, shop.b y SET x.v = y.v, x.w = (SELECT 1 FROM shop.c) WHERE x.id = y.id"
        ),
        vec![t("o", "a")]
    );
    assert_eq!(
        tables("UPDATE o.a x INNER JOIN (SELECT id FROM shop.b) d ON d.id = x.id SET x.v = 1"),
        vec![t("o", "a")]
    );
    assert_eq!(
        tables("UPDATE (o.a x LEFT OUTER JOIN shop.b y ON x.id = y.id) SET o.a.v = 2"),
        vec![t("o", "a")]
    );
    // An unqualified column could be any table's.
    assert_eq!(
        tables("UPDATE o.a x, shop.b y SET v = 1"),
        vec![t("o", "a"), t("shop", "b")]
    );
    assert_eq!(
        tables("UPDATE o.a x JOIN shop.b y USING (id) SET x.v = 1, y.w = 2"),
        vec![t("o", "a"), t("shop", "b")]
    );
    assert_eq!(
        tables("UPDATE { OJ o.a x LEFT JOIN shop.b y ON x.id = y.id } SET x.v = 3"),
        vec![t("o", "a")]
    );
    assert!(undetermined("UPDATE o.a x, shop.b y SET z.v = 1").contains("names no table"));
    assert_eq!(
        tables("UPDATE ((shop.events)) SET v = 1"),
        vec![t("shop", "events")]
    );
    assert!(undetermined("UPDATE (SELECT 1) d SET v = 1").contains("no table"));
    assert_eq!(
        tables("UPDATE o.a x JOIN shop.b y ON LEFT(x.k, 2) = y.k SET x.v = 1"),
        vec![t("o", "a")]
    );
}

#[test]
fn deletes_single_and_multi_table() {
    assert_eq!(
        tables("DELETE FROM `percona`.`checksums` WHERE db = 'shop' AND tbl = 'events'"),
        vec![t("percona", "checksums")]
    );
    assert_eq!(
        tables("DELETE LOW_PRIORITY QUICK IGNORE FROM t AS x WHERE x.id = 1 LIMIT 1"),
        vec![t("db", "t")]
    );
    assert_eq!(
        tables("DELETE x FROM o.a x JOIN shop.events e ON e.id = x.id WHERE e.id = 1"),
        vec![t("o", "a")]
    );
    assert_eq!(
        tables("DELETE x.*, shop.b FROM o.a x, shop.b WHERE x.id = b.id"),
        vec![t("o", "a"), t("shop", "b")]
    );
    assert_eq!(
        tables("DELETE FROM o.b USING o.b JOIN o.a ON o.a.id = o.b.id WHERE o.a.v = 0"),
        vec![t("o", "b")]
    );
    assert_eq!(
        tables("DELETE FROM b.* USING o.b AS b, shop.c"),
        vec![t("o", "b")]
    );
    assert!(undetermined("DELETE z FROM o.a x").contains("names no table"));
    assert!(undetermined("DELETE FROM o.a, o.b WHERE 1").contains("USING"));
}

#[test]
fn load_data_and_with() {
    assert_eq!(
            tables("LOAD DATA LOCAL INFILE '/tmp/x INTO TABLE shop.events' REPLACE INTO TABLE o.a FIELDS TERMINATED BY '\\t'"),
            vec![t("o", "a")]
        );
    assert_eq!(
        tables("LOAD XML INFILE 'x.xml' INTO TABLE `o`.`a` ROWS IDENTIFIED BY '<row>'"),
        vec![t("o", "a")]
    );
    assert_eq!(
            tables("WITH c AS (SELECT id FROM shop.x), d (n) AS (SELECT 1) UPDATE o.a JOIN c USING (id) SET a.v = 1"),
            vec![t("o", "a")]
        );
    assert_eq!(
        tables("WITH RECURSIVE c AS (SELECT 1) DELETE FROM o.a WHERE id IN (SELECT * FROM c)"),
        vec![t("o", "a")]
    );
}

#[test]
fn calls_are_collected() {
    let w = analyse(
            "shop",
            "REPLACE INTO percona.c (a) SELECT COALESCE(LOWER(CONV(BIT_XOR(CAST(CRC32(x) AS UNSIGNED)), 10, 16)), 0), other.f(1) FROM t",
            Some(0),
        )
        .unwrap();
    assert!(w.calls.contains(&t("shop", "COALESCE")));
    assert!(w.calls.contains(&t("other", "f")));
    assert_eq!(w.qualified_calls, vec![t("other", "f")]);
    // A column list after the written table is not a call.
    assert!(!w.calls.contains(&t("percona", "c")));
    assert_eq!(w.verb, "REPLACE");
}

#[test]
fn what_cannot_be_told_is_an_error() {
    assert!(undetermined("SELECT `other`.`f`()").contains("stored routines"));
    assert!(undetermined("DO other.f()").contains("stored routines"));
    assert!(undetermined("CALL p()").contains("stored routines"));
    assert!(undetermined("HANDLER t READ FIRST").contains("not a DML"));
    assert!(undetermined("INSERT INTO").contains("table name"));
    assert!(
        undetermined("INSERT INTO o.a VALUES (1); DELETE FROM shop.x").contains("more than one")
    );
    assert!(undetermined("UPDATE o.a x, o.b y WHERE 1").contains("SET"));
    assert!(analyse("", "INSERT INTO t VALUES (1)", Some(0))
        .unwrap_err()
        .contains("no default schema"));
    assert_eq!(tables("INSERT INTO o.a VALUES (1);"), vec![t("o", "a")]);
}

#[test]
fn names_display_quoted() {
    assert_eq!(t("a`b", "c").to_string(), "`a``b`.`c`");
}
