//! Tests of both GTID flavours: parsing, canonical text, set operations.

use super::*;

const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const U2: &str = "55778904-0299-11f1-b1b8-4ef0c4956feb";
const U3: &str = "f0000000-0000-0000-0000-00000000000a";

fn mysql(text: &str) -> MysqlGtidSet {
    match text.parse() {
        Ok(set) => set,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn uuid(text: &str) -> Uuid {
    text.parse().expect("valid uuid")
}

fn tag(text: &str) -> GtidTag {
    GtidTag::new(text).expect("valid tag")
}

fn mysql_err(text: &str) -> GtidParseErrorKind {
    match text.parse::<MysqlGtidSet>() {
        Ok(set) => panic!("{text:?} should be refused, parsed as {set}"),
        Err(e) => e.kind().clone(),
    }
}

/// Checks the representation invariant of every group.
fn assert_canonical(set: &MysqlGtidSet) {
    for (_, _, list) in set.iter() {
        assert!(!list.is_empty(), "empty group in {set:?}");
        for iv in list {
            assert!(1 <= iv.start() && iv.start() <= iv.end() && iv.end() <= MAX_GNO);
        }
        for pair in list.windows(2) {
            assert!(
                pair[0].end() + 1 < pair[1].start(),
                "not coalesced: {set:?}"
            );
        }
    }
}

#[test]
fn uuid_round_trips_and_normalises_case() {
    let u = uuid("3E11FA47-71CA-11E1-9E33-C80AA9429562");
    assert_eq!(u.to_string(), U1);
    assert_eq!(u.as_bytes()[0], 0x3e);
    assert_eq!(u.as_bytes()[15], 0x62);
    assert_eq!(Uuid::from_bytes(*u.as_bytes()), u);
    for bad in [
        "",
        "3e11fa47-71ca-11e1-9e33-c80aa942956",   // short
        "3e11fa47-71ca-11e1-9e33-c80aa94295622", // long
        "3e11fa4771ca-11e1-9e33-c80aa9429562-",  // dash misplaced
        "3e11fa47-71ca-11e1-9e33-c80aa942956g",  // not hex
        "3e11fa47x71ca-11e1-9e33-c80aa9429562",
    ] {
        let err = bad.parse::<Uuid>().expect_err(bad);
        assert_eq!(err.kind(), &GtidParseErrorKind::BadUuid, "{bad}");
    }
}

#[test]
fn tags_are_validated_and_lower_cased() {
    assert_eq!(tag("MyTag_1").as_str(), "mytag_1");
    assert_eq!(tag("_x").as_str(), "_x");
    assert_eq!(tag(&"a".repeat(32)).as_str().len(), 32);
    for bad in ["", "1abc", "a-b", "a b", "é", &"a".repeat(33)] {
        let err = GtidTag::new(bad).expect_err(bad);
        assert_eq!(err.kind(), &GtidParseErrorKind::BadTag, "{bad:?}");
    }
    assert!(tag("a") < tag("ab") && tag("ab") < tag("b"));
}

#[test]
fn mysql_round_trip_of_canonical_text() {
    for text in [
        "",
        &format!("{U1}:1-5"),
        &format!("{U1}:1-5:7-9,{U2}:1-9"),
        &format!("{U1}:3"),
        &format!("{U2}:1-13:mytag:1-2"),
        &format!("{U1}:1-5:tag1:1-3:7:tag2:4"),
        &format!("{U1}:tag1:1"),
        &format!("{U1}:1-{MAX_GNO}"),
    ] {
        let set = mysql(text);
        assert_eq!(set.to_string(), text);
        assert_eq!(mysql(&set.to_string()), set);
        assert_canonical(&set);
    }
}

#[test]
fn mysql_canonicalises_intervals() {
    assert_eq!(
        mysql(&format!("{U1}:1-3:4-5")).to_string(),
        format!("{U1}:1-5")
    );
    assert_eq!(
        mysql(&format!("{U1}:7-9:1-3:2-5:11:11")).to_string(),
        format!("{U1}:1-5:7-9:11")
    );
    assert_eq!(mysql(&format!("{U1}:5-5")).to_string(), format!("{U1}:5"));
    // A UUID repeated in several groups is merged.
    assert_eq!(
        mysql(&format!("{U1}:1-2,{U2}:4,{U1}:3")).to_string(),
        format!("{U1}:1-3,{U2}:4")
    );
    // Upper case, whitespace and MySQL's `,\n` separator are accepted;
    // UUIDs are sorted.
    let upper = U2.to_uppercase();
    let messy = format!(" {upper} : 1 - 3 : TAG : 2 ,\n{U1}:1-2\n");
    assert_eq!(
        mysql(&messy).to_string(),
        format!("{U1}:1-2,{U2}:1-3:tag:2")
    );
}

#[test]
fn mysql_tags_print_after_untagged_and_sorted() {
    let set = mysql(&format!("{U1}:zeta:1:alpha:2-3:4:5,{U1}:9"));
    assert_eq!(set.to_string(), format!("{U1}:9:alpha:2-5:zeta:1"));
    assert!(set.contains(uuid(U1), Some(tag("ALPHA")), 4));
    assert!(!set.contains(uuid(U1), None, 4));
    assert!(set.contains(uuid(U1), None, 9));
    assert!(!set.contains(uuid(U1), Some(tag("zeta")), 9));
}

#[test]
fn mysql_tagged_example() {
    let set = mysql(&format!("{U2}:1-13:mytag:1-2"));
    assert!(set.contains(uuid(U2), None, 13));
    assert!(!set.contains(uuid(U2), None, 14));
    assert!(set.contains(uuid(U2), Some(tag("mytag")), 2));
    assert!(!set.contains(uuid(U2), Some(tag("mytag")), 3));
    assert!(!set.contains(uuid(U1), None, 1));
}

#[test]
fn mysql_add_reports_novelty_and_coalesces() {
    let mut set = MysqlGtidSet::new();
    let u = uuid(U1);
    assert!(set.is_empty());
    assert_eq!(set.add(u, None, 1), Ok(true));
    assert_eq!(set.add(u, None, 3), Ok(true));
    assert_eq!(set.to_string(), format!("{U1}:1:3"));
    assert_eq!(set.add(u, None, 2), Ok(true));
    assert_eq!(set.to_string(), format!("{U1}:1-3"));
    assert_eq!(set.add(u, None, 2), Ok(false));
    assert_eq!(set.add(u, Some(tag("t")), 2), Ok(true));
    assert_eq!(set.to_string(), format!("{U1}:1-3:t:2"));
    assert_eq!(set.add(u, None, 0), Err(GtidRangeError::GnoOutOfRange(0)));
    assert_eq!(
        set.add(u, None, MAX_GNO + 1),
        Err(GtidRangeError::GnoOutOfRange(MAX_GNO + 1))
    );
    assert_eq!(set.add(u, None, MAX_GNO), Ok(true));
    assert!(set.add_interval(u, None, GnoInterval::new(5, 10).expect("valid")));
    assert!(!set.add_interval(u, None, GnoInterval::new(6, 9).expect("valid")));
    assert!(set.add_interval(u, None, GnoInterval::new(4, 11).expect("valid")));
    assert_eq!(set.to_string(), format!("{U1}:1-11:{MAX_GNO}:t:2"));
    assert_canonical(&set);
}

#[test]
fn mysql_set_arithmetic() {
    let executed = mysql(&format!("{U1}:1-100:t:1-5,{U2}:1-50"));
    let purged = mysql(&format!("{U1}:1-40,{U2}:1-10"));
    let requested = mysql(&format!("{U1}:1-30:t:1-2"));
    assert!(purged.is_subset(&executed));
    assert!(!executed.is_subset(&purged));
    assert!(MysqlGtidSet::new().is_subset(&purged));
    // The replica needs what the server executed and it has not; if that
    // includes purged transactions the start position is unusable.
    let missing = executed.difference(&requested);
    assert_eq!(missing.to_string(), format!("{U1}:31-100:t:3-5,{U2}:1-50"));
    assert_eq!(
        missing.intersection(&purged).to_string(),
        format!("{U1}:31-40,{U2}:1-10")
    );
    assert_eq!(
        purged.union(&requested).to_string(),
        format!("{U1}:1-40:t:1-2,{U2}:1-10")
    );
    assert_eq!(
        mysql(&format!("{U1}:1-10")).difference(&mysql(&format!("{U1}:3-4:6:9-20"))),
        mysql(&format!("{U1}:1-2:5:7-8"))
    );
    assert!(executed.difference(&executed).is_empty());
    // Same numbers under another tag are other transactions.
    let tagged = mysql(&format!("{U1}:t:1-5"));
    assert!(!tagged.is_subset(&mysql(&format!("{U1}:1-5"))));
    assert!(!mysql(&format!("{U1}:1-5")).is_subset(&tagged));
}

#[test]
fn mysql_malformed_input_is_refused_with_reason() {
    use GtidParseErrorKind as K;
    let range = |e| K::Range(e);
    assert_eq!(mysql_err("3e11fa47-71ca-11e1-9e33:1-5"), K::BadUuid);
    assert_eq!(
        mysql_err(&format!("{U1}:0-5")),
        range(GtidRangeError::GnoOutOfRange(0))
    );
    assert_eq!(
        mysql_err(&format!("{U1}:7-5")),
        range(GtidRangeError::StartAfterEnd { start: 7, end: 5 })
    );
    assert_eq!(
        mysql_err(&format!("{U1}:1-{}", MAX_GNO + 1)),
        range(GtidRangeError::GnoOutOfRange(MAX_GNO + 1))
    );
    assert_eq!(
        mysql_err(&format!("{U1}:1-99999999999999999999")),
        K::BadNumber
    );
    assert_eq!(mysql_err(&format!("{U1}:1-+5")), K::BadNumber);
    assert_eq!(mysql_err(&format!("{U1}:1-")), K::BadNumber);
    assert_eq!(mysql_err(&format!("{U1}:1-2-3")), K::BadNumber);
    assert_eq!(mysql_err(&format!("{U1}:1-5:bad-tag:1")), K::BadTag);
    assert_eq!(
        mysql_err(&format!("{U1}:1-5:{}:1", "t".repeat(33))),
        K::BadTag
    );
    assert_eq!(mysql_err(&format!("{U1}:1-5,,{U2}:1")), K::EmptyGroup);
    assert_eq!(mysql_err(&format!("{U1}:1-5,")), K::EmptyGroup);
    assert_eq!(mysql_err(&format!("{U1}:1-5::7")), K::EmptyElement);
    assert_eq!(mysql_err(&format!("{U1}:")), K::EmptyElement);
    assert_eq!(mysql_err(U1), K::MissingIntervals);
    assert_eq!(mysql_err(&format!("{U1}:1-5:tag")), K::MissingIntervals);
    assert_eq!(mysql_err(&format!("{U1}:a:b:1")), K::MissingIntervals);
    assert_eq!(mysql_err("garbage"), K::BadUuid);
    // The message names the offending text and the reason.
    let err = format!("{U1}:1-5:9-3")
        .parse::<MysqlGtidSet>()
        .expect_err("bad");
    assert_eq!(err.fragment(), "9-3");
    assert_eq!(
        err.to_string(),
        "invalid GTID text `9-3`: interval 9-3 starts after it ends"
    );
    // Huge input is quoted back shortened.
    let long = format!("{},", "x".repeat(500));
    let err = long.parse::<MysqlGtidSet>().expect_err("bad");
    assert!(err.fragment().chars().count() <= MAX_EXCERPT + 1);
    assert_eq!(err.class(), ErrorClass::Definite);
}

#[test]
fn mariadb_gtid_round_trip_and_errors() {
    let gtid: MariadbGtid = "0-1-100".parse().expect("valid");
    assert_eq!(
        gtid,
        MariadbGtid {
            domain: 0,
            server_id: 1,
            seq: 100
        }
    );
    assert_eq!(gtid.to_string(), "0-1-100");
    let max = format!("{}-{}-{}", u32::MAX, u32::MAX, u64::MAX);
    assert_eq!(max.parse::<MariadbGtid>().expect("valid").to_string(), max);
    for (bad, kind) in [
        ("0-1", GtidParseErrorKind::BadMariadbGtid),
        ("0-1-2-3", GtidParseErrorKind::BadMariadbGtid),
        (
            "x-1-2",
            GtidParseErrorKind::BadMariadbNumber {
                field: "domain id",
                bits: 32,
            },
        ),
        (
            "4294967296-1-2",
            GtidParseErrorKind::BadMariadbNumber {
                field: "domain id",
                bits: 32,
            },
        ),
        ("0--1-2", GtidParseErrorKind::BadMariadbGtid),
        (
            "0-1-",
            GtidParseErrorKind::BadMariadbNumber {
                field: "sequence number",
                bits: 64,
            },
        ),
    ] {
        let err = bad.parse::<MariadbGtid>().expect_err(bad);
        assert_eq!(err.kind(), &kind, "{bad}");
    }
}

#[test]
fn mariadb_set_semantics() {
    let mut pos: MariadbGtidSet = " 1-2-5 ,\n0-1-100".parse().expect("valid");
    assert_eq!(pos.to_string(), "0-1-100,1-2-5");
    assert_eq!(pos.len(), 2);
    assert_eq!(pos.get(1).map(|g| g.seq), Some(5));
    assert_eq!(pos.get(7), None);

    let earlier: MariadbGtidSet = "0-1-90,1-3-5".parse().expect("valid");
    assert!(pos.is_at_or_after(&earlier));
    assert!(!earlier.is_at_or_after(&pos));
    assert!(pos.is_at_or_after(&pos));
    assert!(pos.is_at_or_after(&MariadbGtidSet::new()));
    // A domain the other side has and we lack means we are not past it.
    let other_domain: MariadbGtidSet = "2-1-1".parse().expect("valid");
    assert!(!pos.is_at_or_after(&other_domain));

    // advance replaces the domain's entry (new server id included).
    pos.advance(MariadbGtid {
        domain: 0,
        server_id: 9,
        seq: 101,
    });
    pos.advance(MariadbGtid {
        domain: 3,
        server_id: 1,
        seq: 1,
    });
    assert_eq!(pos.to_string(), "0-9-101,1-2-5,3-1-1");
    assert_eq!(pos.iter().count(), 3);

    assert_eq!("".parse::<MariadbGtidSet>(), Ok(MariadbGtidSet::new()));
    assert_eq!(MariadbGtidSet::new().to_string(), "");
    let dup = "0-1-1,0-1-2".parse::<MariadbGtidSet>().expect_err("dup");
    assert_eq!(dup.kind(), &GtidParseErrorKind::DuplicateDomain(0));
    let empty = "0-1-1,,1-1-1".parse::<MariadbGtidSet>().expect_err("empty");
    assert_eq!(empty.kind(), &GtidParseErrorKind::EmptyGroup);
}

#[test]
fn gtid_set_detects_flavour() {
    let my: GtidSet = format!("{U1}:1-5").parse().expect("mysql");
    assert!(matches!(my, GtidSet::Mysql(_)));
    let ma: GtidSet = "0-1-100,1-2-5".parse().expect("mariadb");
    assert!(matches!(ma, GtidSet::Mariadb(_)));
    assert_eq!(ma.as_mariadb().map(|s| s.len()), Some(2));
    assert!(ma.as_mysql().is_none() && my.as_mariadb().is_none());

    // Empty sets carry their flavour explicitly.
    for (text, set) in [
        ("mysql:", GtidSet::Mysql(MysqlGtidSet::new())),
        ("mariadb:", GtidSet::Mariadb(MariadbGtidSet::new())),
    ] {
        assert_eq!(set.to_string(), text);
        assert_eq!(text.parse::<GtidSet>(), Ok(set.clone()));
        assert!(set.is_empty());
    }
    assert_eq!(
        "MariaDB:0-1-2".parse::<GtidSet>().map(|s| s.to_string()),
        Ok("0-1-2".to_owned())
    );
    assert_eq!(
        format!("mysql:{U1}:1").parse::<GtidSet>(),
        Ok(GtidSet::Mysql(mysql(&format!("{U1}:1"))))
    );

    use GtidParseErrorKind as K;
    let kind = |t: &str| t.parse::<GtidSet>().expect_err(t).kind().clone();
    assert_eq!(kind(""), K::AmbiguousEmpty);
    assert_eq!(kind("  "), K::AmbiguousEmpty);
    assert_eq!(kind("hello"), K::UnknownFlavour);
    assert_eq!(kind(U1), K::MissingIntervals);
    assert_eq!(
        kind("0-1-x"),
        K::BadMariadbNumber {
            field: "sequence number",
            bits: 64
        }
    );
    assert_eq!(kind("mariadb:0-1"), K::BadMariadbGtid);
    assert_eq!(
        kind(&format!("{U1}:0")),
        K::Range(GtidRangeError::GnoOutOfRange(0))
    );
}

#[test]
fn gtid_set_serde_is_a_string() {
    for text in [
        format!("{U1}:1-5:7-9,{U2}:1-9:tag:1-3"),
        "0-1-100,1-2-5".to_owned(),
        "mysql:".to_owned(),
        "mariadb:".to_owned(),
    ] {
        let set: GtidSet = text.parse().expect("valid");
        let json = serde_json::to_string(&set).expect("serialise");
        assert_eq!(json, format!("\"{text}\""));
        let back: GtidSet = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, set);
    }
    let err = serde_json::from_str::<GtidSet>("\"bogus\"").expect_err("bad");
    assert!(err.to_string().contains("bogus"), "{err}");
    assert!(serde_json::from_str::<GtidSet>("5").is_err());
    let set = mysql(&format!("{U1}:1"));
    let json = serde_json::to_string(&set).expect("serialise");
    assert_eq!(serde_json::from_str::<MysqlGtidSet>(&json).ok(), Some(set));
}

/// xorshift64*: deterministic, dependency-free, good enough to explore.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const GNO_LIMIT: u64 = 40;

fn keys() -> Vec<(Uuid, Option<GtidTag>)> {
    let mut keys = Vec::new();
    for u in [U1, U2, U3] {
        keys.push((uuid(u), None));
        keys.push((uuid(u), Some(tag("t"))));
    }
    keys
}

/// A random set built through the text form (unsorted, overlapping
/// intervals), so that parsing and normalisation are exercised too.
fn random_set(rng: &mut Rng) -> MysqlGtidSet {
    let keys = keys();
    let mut groups = Vec::new();
    for _ in 0..rng.below(5) {
        let (u, t) = keys[rng.below(keys.len() as u64) as usize];
        let mut group = u.to_string();
        if let Some(t) = t {
            group.push_str(&format!(":{t}"));
        }
        for _ in 0..=rng.below(4) {
            let start = 1 + rng.below(GNO_LIMIT);
            let end = (start + rng.below(8)).min(GNO_LIMIT);
            group.push_str(&format!(":{start}-{end}"));
        }
        groups.push(group);
    }
    mysql(&groups.join(","))
}

/// Membership of every (key, gno) in the universe, as a model.
fn members(set: &MysqlGtidSet) -> Vec<bool> {
    let mut out = Vec::new();
    for (u, t) in keys() {
        for gno in 1..=GNO_LIMIT + 1 {
            out.push(set.contains(u, t, gno));
        }
    }
    out
}

#[test]
fn property_union_difference_intersection_laws() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let empty = MysqlGtidSet::new();
    for _ in 0..500 {
        let (a, b, c) = (
            random_set(&mut rng),
            random_set(&mut rng),
            random_set(&mut rng),
        );
        let (ma, mb) = (members(&a), members(&b));
        let union = a.union(&b);
        let diff = a.difference(&b);
        let inter = a.intersection(&b);
        for set in [&a, &union, &diff, &inter] {
            assert_canonical(set);
            assert_eq!(&mysql(&set.to_string()), set, "text round trip");
        }
        // Pointwise agreement with the boolean model.
        let zip = |f: fn(bool, bool) -> bool| -> Vec<bool> {
            ma.iter().zip(&mb).map(|(&x, &y)| f(x, y)).collect()
        };
        assert_eq!(members(&union), zip(|x, y| x || y), "{a:?} ∪ {b:?}");
        assert_eq!(members(&diff), zip(|x, y| x && !y), "{a:?} \\ {b:?}");
        assert_eq!(members(&inter), zip(|x, y| x && y), "{a:?} ∩ {b:?}");
        // Algebraic laws.
        assert_eq!(union, b.union(&a));
        assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
        assert_eq!(a.union(&a), a);
        assert_eq!(a.union(&empty), a);
        assert_eq!(a.difference(&empty), a);
        assert!(empty.difference(&a).is_empty());
        assert!(a.is_subset(&union) && b.is_subset(&union));
        assert!(diff.is_subset(&a) && inter.is_subset(&a) && inter.is_subset(&b));
        assert!(diff.intersection(&b).is_empty());
        assert_eq!(diff.union(&inter), a);
        assert_eq!(diff.union(&b), union);
        assert_eq!(a.is_subset(&b), diff.is_empty());
        assert_eq!(a.is_subset(&b) && b.is_subset(&a), a == b);
        // Building by single additions gives the same set.
        let mut built = MysqlGtidSet::new();
        for (u, t, list) in union.iter() {
            for iv in list {
                for gno in (iv.start()..=iv.end()).rev() {
                    assert_eq!(built.add(u, t, gno), Ok(true));
                }
            }
        }
        assert_eq!(built, union);
    }
}
