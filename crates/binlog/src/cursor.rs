//! A bounds-checked reader over event bytes. Every read returns an error on
//! short input instead of panicking: binlog bytes come from outside.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    /// Offset within the buffer where the read was attempted.
    pub at: usize,
    pub wanted: usize,
    pub what: &'static str,
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "truncated {}: needs {} bytes at byte {}",
            self.what, self.wanted, self.at
        )
    }
}

pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[allow(dead_code)] // used by tests and kept for symmetry with rest()
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        if self.remaining() < n {
            return Err(Short {
                at: self.pos,
                wanted: n,
                what,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Short> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Short> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Short> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, Short> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Little-endian unsigned integer of `n` (<= 8) bytes.
    pub fn uint_n(&mut self, n: usize, what: &'static str) -> Result<u64, Short> {
        let b = self.take(n, what)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// MySQL length-encoded ("packed") integer.
    pub fn packed(&mut self, what: &'static str) -> Result<u64, Short> {
        match self.u8(what)? {
            n @ 0..=250 => Ok(u64::from(n)),
            252 => self.uint_n(2, what),
            253 => self.uint_n(3, what),
            254 => self.uint_n(8, what),
            // 251 is NULL in result sets; in the binlog it never appears.
            _ => Err(Short {
                at: self.pos - 1,
                wanted: 0,
                what,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_integers_and_short_reads() {
        let mut c = Cursor::new(&[
            5, 252, 0x34, 0x12, 253, 1, 0, 1, 254, 1, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(c.packed("a"), Ok(5));
        assert_eq!(c.packed("b"), Ok(0x1234));
        assert_eq!(c.packed("c"), Ok(0x010001));
        assert_eq!(c.packed("d"), Ok(1));
        let err = c.u8("e").expect_err("empty");
        assert_eq!(err.at, 17);
        assert!(err.to_string().contains("truncated e"));
    }
}
