//! Tests of the temporal decoders against MySQL's packed formats.

use super::*;

fn dt(b: &[u8], fsp: u8) -> String {
    datetime2(b, fsp).unwrap().to_string()
}

fn t2(b: &[u8], fsp: u8) -> String {
    time2(b, fsp).unwrap().to_string()
}

#[test]
fn date_and_year() {
    // D2
    assert_eq!(
        date([0xCF, 0xD0, 0x0F]),
        Value::Date {
            year: 2024,
            month: 6,
            day: 15
        }
    );
    // D3: zero parts survive.
    let v = (2015u32 << 9) | 21;
    let b = v.to_le_bytes();
    assert_eq!(
        date([b[0], b[1], b[2]]),
        Value::Date {
            year: 2015,
            month: 0,
            day: 21
        }
    );
    assert_eq!(
        date([0, 0, 0]),
        Value::Date {
            year: 0,
            month: 0,
            day: 0
        }
    );
    // D23
    assert_eq!(year(0x7C), Value::Year(2024));
    assert_eq!(year(0), Value::Year(0));
    assert_eq!(year(1), Value::Year(1901));
    assert_eq!(year(255), Value::Year(2155));
    assert_eq!(year(169), Value::Year(2069));
}

#[test]
fn datetime2_peer_bytes() {
    // D4
    assert_eq!(
        dt(&[0xFE, 0xF3, 0xFF, 0x7E, 0xFB], 0),
        "9999-12-31 23:59:59"
    );
    assert_eq!(
        dt(&[0x99, 0x9A, 0xB8, 0xF7, 0xAA], 0),
        "2016-10-28 15:30:42"
    );
    assert_eq!(
        dt(&[0x99, 0x98, 0x38, 0xF7, 0xAA], 0),
        "2016-00-28 15:30:42"
    );
    assert_eq!(
        dt(&[0x99, 0x9A, 0x80, 0xF7, 0xAA], 0),
        "2016-10-00 15:30:42"
    );
    assert_eq!(
        dt(&[0x99, 0x02, 0xC2, 0x00, 0x00], 0),
        "1970-01-01 00:00:00"
    );
    assert_eq!(
        dt(&[0x80, 0x00, 0x00, 0x00, 0x00], 0),
        "0000-00-00 00:00:00"
    );
    assert_eq!(
        dt(&[0x80, 0x00, 0x02, 0xF1, 0x05], 0),
        "0000-00-01 15:04:05"
    );
    assert_eq!(
        dt(&[0x80, 0x03, 0x82, 0x00, 0x00], 0),
        "0001-01-01 00:00:00"
    );
    // D5
    assert_eq!(
        dt(&[0x80, 0x03, 0x82, 0, 0, 0x0C], 2),
        "0001-01-01 00:00:00.12"
    );
    assert_eq!(
        dt(&[0x80, 0x03, 0x82, 0, 0, 0x04, 0xD3], 4),
        "0001-01-01 00:00:00.1235"
    );
    assert_eq!(
        dt(&[0x80, 0x03, 0x82, 0, 0, 0x01, 0xE2, 0x40], 6),
        "0001-01-01 00:00:00.123456"
    );
    // D6: fsp 3 stores 7890 units of 100 µs.
    let d6 = datetime2(&[0x99, 0xB3, 0x9E, 0xC8, 0xB8, 0x1E, 0xD2], 3).unwrap();
    assert_eq!(d6.to_string(), "2024-06-15 12:34:56.789");
    assert_eq!(d6.micros, 789_000);
    assert_eq!(d6.fsp, 3);
    // Negative (corrupt) and bad fraction.
    assert_eq!(
        datetime2(&[0x7F, 0xFF, 0xFF, 0xFF, 0xFF], 0),
        Err(TemporalError::OutOfRange)
    );
    assert_eq!(
        datetime2(&[0x80, 0, 0, 0, 0, 0xFF], 2),
        Err(TemporalError::BadFraction)
    );
}

#[test]
fn time2_peer_bytes() {
    // D16
    assert_eq!(t2(&[0xB4, 0x6E, 0xFB], 0), "838:59:59");
    assert_eq!(t2(&[0x80, 0xF1, 0x05], 0), "15:04:05");
    assert_eq!(t2(&[0x80, 0x00, 0x00], 0), "00:00:00");
    assert_eq!(t2(&[0x7F, 0xFF, 0xFF], 0), "-00:00:01");
    assert_eq!(t2(&[0x7F, 0x0E, 0xFB], 0), "-15:04:05");
    assert_eq!(t2(&[0x4B, 0x91, 0x05], 0), "-838:59:59");
    // D17: the borrow.
    assert_eq!(t2(&[0x7F, 0xFF, 0xFF, 0xFF], 2), "-00:00:00.01");
    assert_eq!(t2(&[0x7F, 0x0E, 0xFA, 0xF4], 2), "-15:04:05.12");
    assert_eq!(t2(&[0x4B, 0x91, 0x05, 0xF4], 2), "-838:59:58.12");
    assert_eq!(t2(&[0x7F, 0x0E, 0xFA, 0xFB, 0x2D], 4), "-15:04:05.1235");
    assert_eq!(
        t2(&[0x7F, 0x0E, 0xFA, 0xFE, 0x1D, 0xC0], 6),
        "-15:04:05.123456"
    );
    // D18
    assert_eq!(t2(&[0x7F, 0xEF, 0x7C, 0xEC, 0x78], 3), "-01:02:03.500");
    // D19: hours > 24.
    let d19 = time2(&[0x60, 0x43, 0xE5], 0).unwrap();
    assert!(d19.negative);
    assert_eq!((d19.hours, d19.minutes, d19.seconds), (507, 48, 27));
    // Positive with fractions.
    assert_eq!(t2(&[0x80, 0xF1, 0x05, 0x0C], 1), "15:04:05.1");
    assert_eq!(
        t2(&[0x80, 0xF1, 0x05, 0x00, 0x00, 0x01], 6),
        "15:04:05.000001"
    );
}

/// Encodes a TIME2 the way the server does (`my_time_packed_to_binary`),
/// to check negative values with fractions at every fsp.
fn encode_time2(negative: bool, h: u64, m: u64, s: u64, micros: u64, fsp: u8) -> Vec<u8> {
    let hms = (h << 12) | (m << 6) | s;
    let mag = ((hms << 24) + micros) as i64;
    let packed = if negative { -mag } else { mag };
    let mut out = Vec::new();
    match fsp {
        0 => {
            let v = ((packed >> 24) + 0x80_0000) as u32;
            out.extend_from_slice(&v.to_be_bytes()[1..]);
        }
        1 | 2 => {
            let (mut int, mut f) = (packed / (1 << 24), (packed % (1 << 24)) / 10_000);
            if f < 0 {
                int -= 1;
                f += 0x100;
            }
            let v = (int + 0x80_0000) as u32;
            out.extend_from_slice(&v.to_be_bytes()[1..]);
            out.push(f as u8);
        }
        3 | 4 => {
            let (mut int, mut f) = (packed / (1 << 24), (packed % (1 << 24)) / 100);
            if f < 0 {
                int -= 1;
                f += 0x1_0000;
            }
            let v = (int + 0x80_0000) as u32;
            out.extend_from_slice(&v.to_be_bytes()[1..]);
            out.extend_from_slice(&(f as u16).to_be_bytes());
        }
        _ => {
            let v = (packed + 0x8000_0000_0000) as u64;
            out.extend_from_slice(&v.to_be_bytes()[2..]);
        }
    }
    out
}

#[test]
fn time2_round_trip_negative_fractions() {
    // D20 / D21 and a sweep of fractions for every fsp.
    for fsp in 0..=6u8 {
        let unit = POW10[6 - fsp as usize];
        for &(h, m, s) in &[(0, 0, 0), (0, 0, 1), (3, 4, 5), (23, 59, 59), (838, 59, 59)] {
            for &raw in &[0u64, 1, 5, 99, 999, 9999, 99_999, 123_456, 999_999] {
                let micros = (raw / unit) * unit % 1_000_000;
                for negative in [false, true] {
                    let b = encode_time2(negative, h, m, s, micros, fsp);
                    assert_eq!(b.len(), time2_len(fsp));
                    let t = time2(&b, fsp).unwrap();
                    let zero = h == 0 && m == 0 && s == 0 && micros == 0;
                    assert_eq!(t.negative, negative && !zero, "{b:02X?}");
                    assert_eq!(
                        (t.hours, t.minutes, t.seconds, t.micros),
                        (h as u32, m as u8, s as u8, micros as u32),
                        "fsp {fsp} neg {negative} {h}:{m}:{s}.{micros} {b:02X?}"
                    );
                }
            }
        }
    }
    // D21: -00:00:00.000000 prints as zero.
    let b = encode_time2(true, 0, 0, 0, 0, 6);
    assert_eq!(time2(&b, 6).unwrap().to_string(), "00:00:00.000000");
    let b = encode_time2(true, 23, 59, 59, 999_999, 6);
    assert_eq!(time2(&b, 6).unwrap().to_string(), "-23:59:59.999999");
    let b = encode_time2(true, 3, 4, 5, 1, 6);
    assert_eq!(time2(&b, 6).unwrap().to_string(), "-03:04:05.000001");
    let b = encode_time2(true, 838, 59, 59, 0, 6);
    assert_eq!(time2(&b, 6).unwrap().to_string(), "-838:59:59.000000");
    // D20
    for (fsp, want) in [
        (1, "12:33:07.1"),
        (2, "12:33:07.12"),
        (3, "12:33:07.123"),
        (4, "12:33:07.1234"),
        (5, "12:33:07.12345"),
        (6, "12:33:07.123456"),
    ] {
        let unit = POW10[6 - fsp as usize];
        let b = encode_time2(false, 12, 33, 7, 123_456 / unit * unit, fsp);
        assert_eq!(time2(&b, fsp).unwrap().to_string(), want);
    }
}

#[test]
fn timestamps() {
    // D10
    assert_eq!(
        timestamp2(&[0x66, 0x6D, 0x8A, 0x70], 0),
        Ok(Value::Timestamp {
            secs: 1_718_454_896,
            micros: 0,
            fsp: 0
        })
    );
    // D11
    assert_eq!(
        timestamp2(&[0x7F, 0xFF, 0xFF, 0xFF, 0x0F, 0x42, 0x3F], 6),
        Ok(Value::Timestamp {
            secs: 2_147_483_647,
            micros: 999_999,
            fsp: 6
        })
    );
    // D9: fsp 1 stores tenths as hundredths, fsp 3 as 1/10000.
    assert_eq!(
        timestamp2(&[0x1B, 0x6D, 0x33, 0x03, 10], 1),
        Ok(Value::Timestamp {
            secs: 0x1B6D_3303,
            micros: 100_000,
            fsp: 1
        })
    );
    assert_eq!(
        timestamp2(&[0, 0, 0, 1, 0x04, 0xD2], 3),
        Ok(Value::Timestamp {
            secs: 1,
            micros: 123_400,
            fsp: 3
        })
    );
    // D12: zero timestamp keeps its fsp.
    assert_eq!(
        timestamp2(&[0, 0, 0, 0, 0, 0], 4),
        Ok(Value::Timestamp {
            secs: 0,
            micros: 0,
            fsp: 4
        })
    );
    assert_eq!(
        timestamp2(&[0, 0, 0, 1, 0xFF, 0xFF, 0xFF], 6),
        Err(TemporalError::BadFraction)
    );
    // D24 legacy TIMESTAMP is little-endian.
    assert_eq!(
        timestamp_legacy([0x70, 0x8A, 0x6D, 0x66]),
        Value::Timestamp {
            secs: 1_718_454_896,
            micros: 0,
            fsp: 0
        }
    );
}

#[test]
fn legacy_time_and_datetime() {
    let b = 20240615123456u64.to_le_bytes();
    assert_eq!(
        datetime_legacy(b).unwrap().to_string(),
        "2024-06-15 12:34:56"
    );
    assert_eq!(
        datetime_legacy([0; 8]).unwrap().to_string(),
        "0000-00-00 00:00:00"
    );
    assert_eq!(datetime_legacy([0xFF; 8]), Err(TemporalError::OutOfRange));
    let enc = |v: i32| {
        let b = v.to_le_bytes();
        [b[0], b[1], b[2]]
    };
    assert_eq!(
        time_legacy(enc(8_385_959)).unwrap().to_string(),
        "838:59:59"
    );
    assert_eq!(
        time_legacy(enc(-8_385_959)).unwrap().to_string(),
        "-838:59:59"
    );
    assert_eq!(time_legacy(enc(10_203)).unwrap().to_string(), "01:02:03");
    assert_eq!(time_legacy(enc(-10_203)).unwrap().to_string(), "-01:02:03");
    assert_eq!(time_legacy(enc(0)).unwrap().to_string(), "00:00:00");
    assert_eq!(time_legacy(enc(99)), Err(TemporalError::OutOfRange));
}

#[test]
fn mariadb_hires_capture() {
    // D24: MariaDB 11.8 capture_hires, fsp 3.
    let d = datetime_hires(&[0x00, 0x42, 0x2E, 0x00, 0xB3, 0x90, 0x95], 3).unwrap();
    assert_eq!(d.to_string(), "2024-06-15 12:34:56.789");
    let t = time_hires(&[0x00, 0xB3, 0xCE, 0xD4, 0x94], 3).unwrap();
    assert_eq!(t.to_string(), "-01:02:03.500");
    assert_eq!(
        timestamp_hires(&[0x66, 0x6D, 0x8A, 0x70, 0x03, 0x15], 3),
        Ok(Value::Timestamp {
            secs: 1_718_454_896,
            micros: 789_000,
            fsp: 3
        })
    );
}

/// The server's `pack_time` for a DATETIME/TIME, scaled to `fsp`.
fn pack_time(y: u64, mo: u64, d: u64, h: u64, mi: u64, s: u64, us: u64) -> u64 {
    (((((y * 13 + mo) * 32 + d) * 24 + h) * 60 + mi) * 60 + s) * 1_000_000 + us
}

fn be_bytes(v: u64, n: usize) -> Vec<u8> {
    v.to_be_bytes()[8 - n..].to_vec()
}

#[test]
fn mariadb_hires_every_fsp() {
    for fsp in 1..=6u8 {
        let unit = POW10[6 - fsp as usize];
        let us = 123_456 / unit * unit;
        // DATETIME: max and zero dates.
        for &(y, mo, d, h, mi, s) in &[
            (9999, 12, 31, 23, 59, 59),
            (0, 0, 0, 0, 0, 0),
            (2016, 0, 28, 15, 30, 42),
        ] {
            let packed = pack_time(y, mo, d, h, mi, s, us) / unit;
            let b = be_bytes(packed, datetime_hires_len(fsp));
            let v = datetime_hires(&b, fsp).unwrap();
            assert_eq!(
                (v.year, v.month, v.day, v.hour, v.minute, v.second, v.micros, v.fsp),
                (y as u16, mo as u8, d as u8, h as u8, mi as u8, s as u8, us as u32, fsp)
            );
        }
        // TIME: ±838:59:59.fraction and zero.
        let zero = TIME_ZERO_POINT_SECS * POW10[fsp as usize];
        for &(neg, h, m, s) in &[(false, 838, 59, 59), (true, 838, 59, 59), (true, 1, 2, 3)] {
            let mag = pack_time(0, 0, 0, h, m, s, us) / unit;
            let v = if neg { zero - mag } else { zero + mag };
            let b = be_bytes(v, time_hires_len(fsp));
            let t = time_hires(&b, fsp).unwrap();
            assert_eq!(
                (t.negative, t.hours, t.minutes, t.seconds, t.micros),
                (neg, h as u32, m as u8, s as u8, us as u32)
            );
        }
        let t = time_hires(&be_bytes(zero, time_hires_len(fsp)), fsp).unwrap();
        assert_eq!(
            t.to_string(),
            format!("00:00:00.{}", "0".repeat(fsp.into()))
        );
        // TIMESTAMP
        let mut b = 1u32.to_be_bytes().to_vec();
        let frac_len = timestamp_hires_len(fsp) - 4;
        b.extend_from_slice(&be_bytes(us / unit, frac_len));
        assert_eq!(
            timestamp_hires(&b, fsp),
            Ok(Value::Timestamp {
                secs: 1,
                micros: us as u32,
                fsp
            })
        );
    }
    assert_eq!(
        datetime_hires(&[0xFF; 8], 6),
        Err(TemporalError::OutOfRange)
    );
}

#[test]
fn wrong_lengths_and_fsp_are_errors() {
    assert_eq!(
        time2(&[0x80], 0),
        Err(TemporalError::BadLength { got: 1, want: 3 })
    );
    assert_eq!(
        datetime2(&[0x80; 6], 0),
        Err(TemporalError::BadLength { got: 6, want: 5 })
    );
    assert_eq!(
        timestamp2(&[], 6).unwrap_err(),
        TemporalError::BadLength { got: 0, want: 7 }
    );
    assert_eq!(time_hires(&[0; 9], 9), Err(TemporalError::BadFsp(9)));
    assert_eq!(datetime_hires(&[0; 9], 7), Err(TemporalError::BadFsp(7)));
    assert_eq!(
        timestamp_hires(&[0; 2], 3).unwrap_err(),
        TemporalError::BadLength { got: 2, want: 6 }
    );
    assert_eq!(time2(&[0; 7], 8), Err(TemporalError::BadFsp(8)));
}

#[test]
fn fsp_checks() {
    assert_eq!(fsp(6), Ok(6));
    assert_eq!(fsp(7), Err(TemporalError::BadFsp(7)));
    assert_eq!(frac_len(0), 0);
    assert_eq!(frac_len(1), 1);
    assert_eq!(frac_len(3), 2);
    assert_eq!(frac_len(6), 3);
}
