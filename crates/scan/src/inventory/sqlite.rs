//! A minimal, read-only reader for one table of an SQLite 3 database file,
//! following "Database File Format" (sqlite.org/fileformat2.html): the
//! 100-byte header (§1.3), table b-tree pages (§1.6), cell payloads with
//! overflow pages (§1.6, "cell payload overflow"), varints, and the record
//! format (§2.1). Enough to read rpm's `Packages` table without a C library.
//!
//! The file is untrusted: every page number, offset and length is checked,
//! tree depth and page visits are bounded, and total payload bytes read are
//! capped relative to the file size, so a crafted file ends in an error in
//! bounded time. A write-ahead log (`-wal`) is not consulted.

use std::collections::HashSet;

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// Any integer type.
    Int(i64),
    /// IEEE float.
    Float(f64),
    /// TEXT (bytes as stored).
    Text(Vec<u8>),
    /// BLOB.
    Blob(Vec<u8>),
}

/// An opened database image.
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    usable: usize,
    pages: u32,
}

fn err<T>(s: impl Into<String>) -> Result<T, String> {
    Err(s.into())
}

/// Reads an SQLite varint at `pos`: (value, bytes used).
fn varint(b: &[u8], pos: usize) -> Result<(u64, usize), String> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let Some(&c) = b.get(pos + i) else {
            return err("truncated varint");
        };
        if i == 8 {
            return Ok(((v << 8) | u64::from(c), 9));
        }
        v = (v << 7) | u64::from(c & 0x7f);
        if c & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    err("bad varint")
}

fn be(b: &[u8], pos: usize, n: usize) -> Result<u64, String> {
    let s = b.get(pos..pos + n).ok_or("truncated integer")?;
    Ok(s.iter().fold(0u64, |a, &c| (a << 8) | u64::from(c)))
}

impl<'a> Db<'a> {
    /// Validates the header of a database image.
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, String> {
        if data.len() < 100 || &data[..16] != b"SQLite format 3\0" {
            return err("not an SQLite 3 database");
        }
        let ps = be(data, 16, 2)? as usize;
        let page_size = if ps == 1 { 65536 } else { ps };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return err("invalid page size");
        }
        let reserved = usize::from(data[20]);
        let usable = page_size - reserved;
        if usable < 480 {
            return err("invalid reserved space");
        }
        if be(data, 56, 4)? > 1 {
            return err("only UTF-8 databases are supported");
        }
        let pages = u32::try_from(data.len() / page_size).map_err(|_| "database too large")?;
        Ok(Db {
            data,
            page_size,
            usable,
            pages,
        })
    }

    fn page(&self, n: u32) -> Result<&'a [u8], String> {
        if n == 0 || n > self.pages {
            return err(format!("page {n} out of range"));
        }
        let start = (n as usize - 1) * self.page_size;
        Ok(&self.data[start..start + self.page_size])
    }

    /// Root page of a table, from the schema table.
    pub fn table_root(&self, name: &str) -> Result<Option<u32>, String> {
        let mut found = None;
        self.scan_table(1, &mut |_, rec| {
            let cols = record(&rec)?;
            if let (Some(Value::Text(t)), Some(Value::Text(n)), Some(Value::Int(root))) =
                (cols.first(), cols.get(1), cols.get(3))
            {
                if t == b"table" && n.as_slice() == name.as_bytes() && found.is_none() {
                    found = u32::try_from(*root).ok();
                }
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Calls `f(rowid, payload)` for every row of the table b-tree at `root`.
    pub fn scan_table(
        &self,
        root: u32,
        f: &mut dyn FnMut(i64, Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut visited: HashSet<u32> = HashSet::new();
        let mut budget: u64 = (self.data.len() as u64).saturating_mul(4);
        let mut stack: Vec<(u32, usize)> = vec![(root, 0)];
        while let Some((pno, depth)) = stack.pop() {
            if depth > 64 {
                return err("b-tree too deep");
            }
            if !visited.insert(pno) {
                return err(format!("page {pno} referenced twice (cycle)"));
            }
            let page = self.page(pno)?;
            let hoff = if pno == 1 { 100 } else { 0 };
            let kind = *page.get(hoff).ok_or("short page")?;
            let ncells = be(page, hoff + 3, 2)? as usize;
            let (hsize, interior) = match kind {
                0x0d => (8, false),
                0x05 => (12, true),
                _ => return err(format!("page {pno}: not a table b-tree page (type {kind})")),
            };
            let ptrs = hoff + hsize;
            if ptrs + 2 * ncells > page.len() {
                return err(format!("page {pno}: cell count out of range"));
            }
            if interior {
                let right = u32::try_from(be(page, hoff + 8, 4)?).map_err(|_| "bad page")?;
                stack.push((right, depth + 1));
                // Push children so they are visited in key order.
                for i in (0..ncells).rev() {
                    let off = be(page, ptrs + 2 * i, 2)? as usize;
                    let child = u32::try_from(be(page, off, 4)?).map_err(|_| "bad page")?;
                    stack.push((child, depth + 1));
                }
                continue;
            }
            for i in 0..ncells {
                let off = be(page, ptrs + 2 * i, 2)? as usize;
                let (size, n1) = varint(page, off)?;
                let (rowid, n2) = varint(page, off + n1)?;
                if size > self.data.len() as u64 {
                    return err("payload larger than the database");
                }
                budget = budget
                    .checked_sub(size)
                    .ok_or("payload total exceeds bound (overlapping overflow chains?)")?;
                let payload = self.payload(page, off + n1 + n2, size as usize)?;
                f(rowid as i64, payload)?;
            }
        }
        Ok(())
    }

    fn payload(&self, page: &[u8], start: usize, size: usize) -> Result<Vec<u8>, String> {
        let u = self.usable;
        let x = u - 35;
        let local = if size <= x {
            size
        } else {
            let m = ((u - 12) * 32 / 255) - 23;
            let k = m + ((size - m) % (u - 4));
            if k <= x {
                k
            } else {
                m
            }
        };
        let first = page
            .get(start..start + local)
            .ok_or("cell payload out of range")?;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(first);
        if local < size {
            let mut next = u32::try_from(be(page, start + local, 4)?).map_err(|_| "bad page")?;
            while out.len() < size {
                let p = self.page(next)?;
                let take = (size - out.len()).min(u - 4);
                out.extend_from_slice(&p[4..4 + take]);
                next = u32::try_from(be(p, 0, 4)?).map_err(|_| "bad page")?;
            }
        }
        Ok(out)
    }
}

/// Decodes a record (§2.1) into column values.
pub fn record(rec: &[u8]) -> Result<Vec<Value>, String> {
    let (hlen, n) = varint(rec, 0)?;
    let hlen = usize::try_from(hlen).map_err(|_| "bad record header")?;
    if hlen > rec.len() || hlen < n {
        return err("record header out of range");
    }
    let mut pos = n;
    let mut body = hlen;
    let mut out = Vec::new();
    while pos < hlen {
        let (t, k) = varint(rec, pos)?;
        pos += k;
        let len = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return err("reserved serial type"),
            t => usize::try_from((t - 12) / 2).map_err(|_| "bad length")?,
        };
        let v = rec
            .get(body..body.checked_add(len).ok_or("bad length")?)
            .ok_or("record body out of range")?;
        body += len;
        out.push(match t {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => {
                let raw = v.iter().fold(0u64, |a, &c| (a << 8) | u64::from(c));
                let shift = 64 - 8 * len as u32;
                Value::Int(((raw << shift) as i64) >> shift)
            }
            7 => Value::Float(f64::from_bits(be(v, 0, 8)?)),
            t if t % 2 == 0 => Value::Blob(v.to_vec()),
            _ => Value::Text(v.to_vec()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x05], 0), Ok((5, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Ok((128, 2)));
        assert_eq!(varint(&[0xff; 9], 0).map(|v| v.1), Ok(9));
        assert!(varint(&[0x81], 0).is_err());
    }

    #[test]
    fn records() {
        // header: len 4, NULL, int8, text(2)
        let rec = [4u8, 0, 1, 17, 0xfe, b'h', b'i'];
        assert_eq!(
            record(&rec),
            Ok(vec![
                Value::Null,
                Value::Int(-2),
                Value::Text(b"hi".to_vec())
            ])
        );
        assert!(record(&[9, 0]).is_err());
        assert!(record(&[2, 0x40]).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Db::open(b"nope").is_err());
        let mut h = vec![0u8; 4096];
        h[..16].copy_from_slice(b"SQLite format 3\0");
        h[16] = 0x03; // 768: not a power of two
        assert!(Db::open(&h).is_err());
        h[16] = 0x10; // 4096
        let Ok(db) = Db::open(&h) else { panic!("open") };
        // Page 1 has type 0: not a table page.
        assert!(db.table_root("Packages").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    const DB: &[u8] = include_bytes!("../../tests/fixtures/rpm/rpmdb.sqlite");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn mutated_rpmdb_never_panics(edits in proptest::collection::vec((0usize..DB.len(), any::<u8>()), 1..16)) {
            let mut db = DB.to_vec();
            for (pos, byte) in edits {
                db[pos] = byte;
            }
            let _ = super::super::rpm::packages(&db, "x");
        }

        #[test]
        fn truncated_rpmdb_never_panics(len in 0usize..DB.len()) {
            let _ = super::super::rpm::packages(&DB[..len], "x");
        }
    }
}
