//! Minimal read-only reader for BerkeleyDB hash databases, the format of
//! rpm's `/var/lib/rpm/Packages` before rpm 4.16 (RHEL/CentOS 7 and 8, Rocky
//! and Alma 8, Amazon Linux 2). Layouts follow BerkeleyDB's `dbinc/db_page.h`:
//! the hash metadata page (magic `0x061561`, page size, last page), the
//! 26-byte page header, hash pages (`P_HASH`/`P_HASH_UNSORTED`) whose index
//! holds key/data item offsets, `H_KEYDATA` items stored inline and
//! `H_OFFPAGE` items stored on chains of `P_OVERFLOW` pages. The file's byte
//! order is taken from the magic.
//!
//! Untrusted input: offsets and lengths are checked, overflow chains are
//! bounded by their declared length and the page count, and the total bytes
//! assembled are capped relative to the file size.

const HASH_MAGIC: u32 = 0x0006_1561;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;
const HEADER: usize = 26;

struct Db<'a> {
    data: &'a [u8],
    big_endian: bool,
    page_size: usize,
    pages: usize,
}

impl Db<'_> {
    fn u16(&self, b: &[u8], pos: usize) -> Result<usize, String> {
        let s = b.get(pos..pos + 2).ok_or("truncated page")?;
        let a = [s[0], s[1]];
        Ok(usize::from(if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }))
    }

    fn u32(&self, b: &[u8], pos: usize) -> Result<u32, String> {
        let s = b.get(pos..pos + 4).ok_or("truncated page")?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn page(&self, n: usize) -> Result<&[u8], String> {
        if n >= self.pages {
            return Err(format!("page {n} out of range"));
        }
        Ok(&self.data[n * self.page_size..(n + 1) * self.page_size])
    }

    fn overflow(&self, mut pgno: usize, len: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(len.min(1 << 20));
        let mut hops = 0;
        while out.len() < len {
            hops += 1;
            if hops > self.pages {
                return Err("overflow chain loops".into());
            }
            let p = self.page(pgno)?;
            if p[25] != P_OVERFLOW {
                return Err(format!("page {pgno} is not an overflow page"));
            }
            let used = self.u16(p, 22)?;
            if used == 0 || HEADER + used > p.len() {
                return Err(format!("overflow page {pgno}: bad length"));
            }
            let take = used.min(len - out.len());
            out.extend_from_slice(&p[HEADER..HEADER + take]);
            pgno = self.u32(p, 16)? as usize;
            if out.len() < len && pgno == 0 {
                return Err("overflow chain ends early".into());
            }
        }
        Ok(out)
    }
}

/// Every data item (value) of a hash database, in page order.
pub fn values(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if data.len() < 512 {
        return Err("not a BerkeleyDB hash database".into());
    }
    let magic = &data[12..16];
    let big_endian = if u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) == HASH_MAGIC {
        false
    } else if u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]) == HASH_MAGIC {
        true
    } else {
        return Err("not a BerkeleyDB hash database".into());
    };
    let mut db = Db {
        data,
        big_endian,
        page_size: 0,
        pages: 0,
    };
    let ps = db.u32(data, 20)? as usize;
    if !(512..=65536).contains(&ps) || !ps.is_power_of_two() {
        return Err(format!("invalid page size {ps}"));
    }
    if data[24] != 0 {
        return Err("encrypted database".into());
    }
    if data[25] != P_HASHMETA {
        return Err("first page is not hash metadata".into());
    }
    db.page_size = ps;
    db.pages = data.len() / ps;
    let last = (db.u32(data, 32)? as usize).min(db.pages.saturating_sub(1));
    let mut budget = (data.len() as u64).saturating_mul(4);
    let mut out = Vec::new();
    for pgno in 1..=last {
        let page = db.page(pgno)?;
        if page[25] != P_HASH && page[25] != P_HASH_UNSORTED {
            continue;
        }
        let n = db.u16(page, 20)?;
        if HEADER + 2 * n > ps {
            return Err(format!("page {pgno}: entry count out of range"));
        }
        // Items alternate key, data; item i ends where item i-1 starts.
        for i in (1..n).step_by(2) {
            let off = db.u16(page, HEADER + 2 * i)?;
            let end = db.u16(page, HEADER + 2 * (i - 1))?;
            if off >= end || end > ps {
                return Err(format!("page {pgno}: item {i} out of range"));
            }
            let item = match page[off] {
                H_KEYDATA => page[off + 1..end].to_vec(),
                H_OFFPAGE => {
                    let next = db.u32(page, off + 4)? as usize;
                    let len = db.u32(page, off + 8)? as usize;
                    if len > data.len() {
                        return Err(format!("page {pgno}: item longer than the database"));
                    }
                    budget = budget
                        .checked_sub(len as u64)
                        .ok_or("items exceed the size bound (shared overflow chains?)")?;
                    db.overflow(next, len)?
                }
                _ => continue, // duplicates are not used by rpm
            };
            out.push(item);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LE: &[u8] = include_bytes!("../../tests/fixtures/rpm/Packages");
    const BE: &[u8] = include_bytes!("../../tests/fixtures/rpm/Packages.be");

    #[test]
    fn reads_both_byte_orders() {
        let le = values(LE).unwrap_or_default();
        let be = values(BE).unwrap_or_default();
        assert_eq!(le.len(), 60);
        let mut le_sorted = le.clone();
        let mut be_sorted = be;
        le_sorted.sort();
        be_sorted.sort();
        assert_eq!(le_sorted, be_sorted);
    }

    #[test]
    fn rejects_garbage() {
        assert!(values(b"short").is_err());
        assert!(values(&[0u8; 4096]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn mutated_never_panics(edits in proptest::collection::vec((0usize..LE.len(), any::<u8>()), 1..16)) {
            let mut db = LE.to_vec();
            for (pos, byte) in edits {
                db[pos] = byte;
            }
            let _ = values(&db);
        }
    }
}
