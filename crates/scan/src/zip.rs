//! Minimal read-only ZIP reader for advisory archives (osv.dev publishes
//! each ecosystem as `all.zip`) and Java archives found in images (JAR, WAR,
//! EAR: `inventory::java`), following PKWARE's APPNOTE.TXT: the end of
//! central directory record (§4.3.16), its ZIP64 locator and record
//! (§4.3.14–15), central directory headers (§4.3.12), the ZIP64 extended
//! information extra field (§4.5.3) and local file headers (§4.3.7).
//! Methods 0 (stored) and 8 (deflate) are supported; encrypted entries are
//! rejected. Every entry's uncompressed size is capped (zip bombs).

use std::borrow::Cow;
use std::io::Read;

use thiserror::Error;

/// Why an archive could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ZipError {
    /// Structure is broken.
    #[error("malformed zip: {0}")]
    Malformed(String),
    /// An entry uses something this reader does not implement.
    #[error("unsupported zip entry {name}: {what}")]
    Unsupported {
        /// Entry name.
        name: String,
        /// What is unsupported.
        what: String,
    },
    /// An entry inflates beyond the limit.
    #[error("zip entry {name} exceeds {limit} bytes")]
    TooLarge {
        /// Entry name.
        name: String,
        /// The limit.
        limit: u64,
    },
}

fn bad(s: impl Into<String>) -> ZipError {
    ZipError::Malformed(s.into())
}

fn le(b: &[u8], pos: usize, n: usize) -> Result<u64, ZipError> {
    let s = b
        .get(pos..pos.checked_add(n).ok_or_else(|| bad("offset overflow"))?)
        .ok_or_else(|| bad("truncated structure"))?;
    Ok(s.iter().rev().fold(0u64, |a, &c| (a << 8) | u64::from(c)))
}

fn at(v: u64) -> Result<usize, ZipError> {
    usize::try_from(v).map_err(|_| bad("offset out of range"))
}

/// One file or directory of an archive, as its central directory header
/// describes it. Its data is located and decompressed on demand by
/// [`ZipEntry::read`].
#[derive(Debug, Clone)]
pub struct ZipEntry<'a> {
    /// Entry name as stored (`/`-separated; lossily decoded).
    pub name: String,
    /// Uncompressed size the header declares.
    pub size: u64,
    flags: u64,
    method: u64,
    csize: u64,
    local: u64,
    zip: &'a [u8],
}

/// Lists the entries of an archive held in memory (directories included).
/// Bytes before the archive proper (a launcher script prepended to an
/// executable JAR) are allowed: offsets are corrected by the distance
/// between where the central directory is and where the end record says it
/// is, as Java's own ZIP reader does.
pub fn entries(zip: &[u8]) -> Result<Vec<ZipEntry<'_>>, ZipError> {
    // The EOCD is in the last 22 + 65535 bytes.
    let min = zip.len().saturating_sub(22 + 65535);
    let eocd = (min..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| zip[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| bad("no end of central directory record"))?;
    let mut count = le(zip, eocd + 10, 2)?;
    let mut cd_size = le(zip, eocd + 12, 4)?;
    let mut cd_off = le(zip, eocd + 16, 4)?;
    let mut cd_end = eocd as u64;
    if (count == 0xffff || cd_off == 0xffff_ffff || cd_size == 0xffff_ffff)
        && eocd >= 20
        && zip[eocd - 20..].starts_with(b"PK\x06\x07")
    {
        let rec = at(le(zip, eocd - 20 + 8, 8)?)?;
        if !zip.get(rec..).is_some_and(|r| r.starts_with(b"PK\x06\x06")) {
            return Err(bad("bad zip64 end of central directory"));
        }
        count = le(zip, rec + 32, 8)?;
        cd_size = le(zip, rec + 40, 8)?;
        cd_off = le(zip, rec + 48, 8)?;
        cd_end = (eocd - 20) as u64;
        if rec as u64 <= cd_end {
            cd_end = rec as u64;
        }
    }
    // Prepended bytes shift every offset by the same amount.
    let shift = cd_end.saturating_sub(cd_off.saturating_add(cd_size));
    let mut pos = at(cd_off.saturating_add(shift))?;
    // Every header takes at least 46 bytes: a count larger than the
    // directory can hold is a lie, not an allocation size.
    let mut out = Vec::with_capacity(at(count.min(cd_size / 46).min(1 << 16))?);
    for _ in 0..count {
        if !zip.get(pos..).is_some_and(|r| r.starts_with(b"PK\x01\x02")) {
            return Err(bad("bad central directory header"));
        }
        let flags = le(zip, pos + 8, 2)?;
        let method = le(zip, pos + 10, 2)?;
        let mut csize = le(zip, pos + 20, 4)?;
        let mut size = le(zip, pos + 24, 4)?;
        let nlen = at(le(zip, pos + 28, 2)?)?;
        let xlen = at(le(zip, pos + 30, 2)?)?;
        let clen = at(le(zip, pos + 32, 2)?)?;
        let mut local = le(zip, pos + 42, 4)?;
        let name_bytes = zip
            .get(pos + 46..pos + 46 + nlen)
            .ok_or_else(|| bad("truncated name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        // ZIP64 extended information.
        let extra = zip
            .get(pos + 46 + nlen..pos + 46 + nlen + xlen)
            .ok_or_else(|| bad("truncated extra field"))?;
        let mut x = 0;
        while x + 4 <= extra.len() {
            let id = le(extra, x, 2)?;
            let len = at(le(extra, x + 2, 2)?)?;
            if id == 1 {
                let mut p = x + 4;
                if size == 0xffff_ffff {
                    size = le(extra, p, 8)?;
                    p += 8;
                }
                if csize == 0xffff_ffff {
                    csize = le(extra, p, 8)?;
                    p += 8;
                }
                if local == 0xffff_ffff {
                    local = le(extra, p, 8)?;
                }
            }
            x += 4 + len;
        }
        pos += 46 + nlen + xlen + clen;
        out.push(ZipEntry {
            name,
            size,
            flags,
            method,
            csize,
            local: local.saturating_add(shift),
            zip,
        });
    }
    Ok(out)
}

impl<'a> ZipEntry<'a> {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }

    /// Whether the entry is stored uncompressed (method 0): reading it
    /// borrows from the archive.
    pub fn is_stored(&self) -> bool {
        self.method == 0
    }

    /// The entry's stored (possibly compressed) bytes.
    fn raw(&self) -> Result<&'a [u8], ZipError> {
        let zip = self.zip;
        let name = &self.name;
        let lh = at(self.local)?;
        if !zip.get(lh..).is_some_and(|r| r.starts_with(b"PK\x03\x04")) {
            return Err(bad(format!("{name}: bad local header")));
        }
        let start = lh + 30 + at(le(zip, lh + 26, 2)?)? + at(le(zip, lh + 28, 2)?)?;
        zip.get(
            start
                ..start
                    .checked_add(at(self.csize)?)
                    .ok_or_else(|| bad("size overflow"))?,
        )
        .ok_or_else(|| bad(format!("{name}: data out of range")))
    }

    /// The entry's contents, at most `max_bytes` of them: stored entries
    /// are borrowed from the archive, deflated ones inflated (the declared
    /// size is not trusted: inflation stops past the limit).
    pub fn read(&self, max_bytes: u64) -> Result<Cow<'a, [u8]>, ZipError> {
        let name = &self.name;
        if self.flags & 1 != 0 {
            return Err(ZipError::Unsupported {
                name: name.clone(),
                what: "encryption".into(),
            });
        }
        let too_large = || ZipError::TooLarge {
            name: name.clone(),
            limit: max_bytes,
        };
        if self.size > max_bytes {
            return Err(too_large());
        }
        let data = self.raw()?;
        match self.method {
            0 => {
                if data.len() as u64 > max_bytes {
                    return Err(too_large());
                }
                Ok(Cow::Borrowed(data))
            }
            8 => {
                let mut out = Vec::with_capacity(at(self.size.min(1 << 20))?);
                flate2::read::DeflateDecoder::new(data)
                    .take(max_bytes + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| bad(format!("{name}: {e}")))?;
                if out.len() as u64 > max_bytes {
                    return Err(too_large());
                }
                Ok(Cow::Owned(out))
            }
            m => Err(ZipError::Unsupported {
                name: name.clone(),
                what: format!("compression method {m}"),
            }),
        }
    }
}

/// Calls `f(name, contents)` for every file entry (directories skipped).
pub fn for_each_entry(
    zip: &[u8],
    max_entry_bytes: u64,
    f: &mut dyn FnMut(&str, &[u8]),
) -> Result<(), ZipError> {
    for e in entries(zip)? {
        if e.is_dir() {
            continue;
        }
        let data = e.read(max_entry_bytes)?;
        f(&e.name, &data);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn build(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data, deflate) in entries {
        let body = if *deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        } else {
            data.to_vec()
        };
        let method: u16 = if *deflate { 8 } else { 0 };
        let off = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // time, date, crc
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        cd.extend_from_slice(&method.to_le_bytes());
        cd.extend_from_slice(&[0; 8]);
        cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stored_and_deflated() {
        let z = build(&[
            ("a.json", b"{\"id\":\"A\"}", false),
            ("dir/b.json", &[b'x'; 5000], true),
        ]);
        let mut seen = Vec::new();
        let r = for_each_entry(&z, 1 << 20, &mut |n, d| seen.push((n.to_string(), d.len())));
        assert_eq!(r, Ok(()));
        assert_eq!(
            seen,
            vec![("a.json".to_string(), 10), ("dir/b.json".to_string(), 5000)]
        );
    }

    #[test]
    fn bombs_and_garbage() {
        let z = build(&[("bomb", &vec![0u8; 1 << 20], true)]);
        assert!(matches!(
            for_each_entry(&z, 1000, &mut |_, _| {}),
            Err(ZipError::TooLarge { .. })
        ));
        assert!(for_each_entry(b"not a zip", 1000, &mut |_, _| {}).is_err());
        let mut z = build(&[("a", b"abc", false)]);
        let n = z.len();
        z[n - 6] = 0xff; // central directory offset out of range
        assert!(for_each_entry(&z, 1000, &mut |_, _| {}).is_err());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn mutated_zip_never_panics(pos in 0usize..200, byte in any::<u8>()) {
                let mut z = build(&[("a.json", b"{}", false), ("b.json", b"{\"id\":\"x\"}", true)]);
                let p = pos % z.len();
                z[p] = byte;
                let _ = for_each_entry(&z, 1 << 16, &mut |_, _| {});
            }
        }
    }
}
