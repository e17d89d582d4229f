//! A minimal streaming tar reader for untrusted layers: POSIX ustar
//! (IEEE Std 1003.1-2017 `pax` "ustar Interchange Format"), pax extended
//! headers (`x`; `path`, `linkpath`, `size`), GNU long names (`L`, `K`) and
//! GNU base-256 sizes.
//!
//! It exists (rather than the `tar` crate) so that every allocation is
//! bounded: extension headers larger than [`MAX_EXTENSION`] are rejected
//! instead of being read into memory, and entry data is never buffered here.

use std::io::{self, Read};

/// Largest pax/GNU extension header accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// Kind of a tar entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Hard link to an earlier entry.
    HardLink,
    /// Symbolic link.
    Symlink,
    /// Directory.
    Dir,
    /// Device, fifo, sparse file, or anything else.
    Other,
}

/// A tar entry's header.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path as recorded (not normalised).
    pub path: Vec<u8>,
    /// Link target for links.
    pub link: Vec<u8>,
    /// Entry kind.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Size of the entry's data.
    pub size: u64,
}

/// Errors of the tar reader.
#[derive(Debug)]
pub enum TarError {
    /// The underlying reader failed.
    Io(io::Error),
    /// The archive is malformed.
    Malformed(String),
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

fn malformed(s: impl Into<String>) -> TarError {
    TarError::Malformed(s.into())
}

/// Streaming reader over a tar archive.
pub struct TarReader<R> {
    inner: R,
    remaining: u64,
    padding: u64,
    finished: bool,
}

fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn octal(field: &[u8], what: &str) -> Result<u64, TarError> {
    if field.first().is_some_and(|&c| c & 0x80 != 0) {
        // GNU base-256: big-endian two's complement, first byte's top bit set.
        if field[0] & 0x40 != 0 {
            return Err(malformed(format!("negative {what}")));
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &c in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(c)))
                .ok_or_else(|| malformed(format!("{what} overflows")))?;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut seen = false;
    for &c in field {
        match c {
            b'0'..=b'7' => {
                seen = true;
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    .ok_or_else(|| malformed(format!("{what} overflows")))?;
            }
            b' ' | 0 if !seen => {}
            b' ' | 0 => break,
            _ => return Err(malformed(format!("non-octal {what} field"))),
        }
    }
    Ok(v)
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before any byte.
fn read_block<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<bool, TarError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                if got == 0 {
                    return Ok(false);
                }
                return Err(malformed("truncated header block"));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

impl<R: Read> TarReader<R> {
    /// Wraps a decompressed tar stream.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            finished: false,
        }
    }

    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = self.inner.read(&mut buf[..want]);
            match got {
                Ok(0) => return Err(malformed("truncated entry data")),
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn read_extension(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        if size > MAX_EXTENSION {
            return Err(malformed(format!(
                "extension header of {size} bytes exceeds {MAX_EXTENSION}"
            )));
        }
        let len = usize::try_from(size).map_err(|_| malformed("extension size"))?;
        let mut data = vec![0u8; len];
        if len > 0 && !read_block(&mut self.inner, &mut data)? {
            return Err(malformed("truncated extension header"));
        }
        self.skip(pad(size))?;
        Ok(data)
    }

    /// Advances to the next entry, skipping the unread data of the current one.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.finished {
            return Ok(None);
        }
        self.skip(self.remaining.saturating_add(self.padding))?;
        self.remaining = 0;
        self.padding = 0;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut extensions = 0u32;
        loop {
            let mut h = [0u8; 512];
            if !read_block(&mut self.inner, &mut h)? {
                // EOF without the end-of-archive blocks: accept, as docker does.
                self.finished = true;
                return Ok(None);
            }
            if h.iter().all(|&c| c == 0) {
                self.finished = true;
                return Ok(None);
            }
            let stored = octal(&h[148..156], "checksum")?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(c)
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i64::from(c as i8)
                    }
                })
                .sum();
            if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
                return Err(malformed("header checksum mismatch"));
            }
            let size = octal(&h[124..136], "size")?;
            let typeflag = h[156];
            match typeflag {
                b'L' | b'K' | b'x' | b'g' => {
                    extensions += 1;
                    if extensions > 16 {
                        return Err(malformed("too many extension headers for one entry"));
                    }
                    let data = self.read_extension(size)?;
                    match typeflag {
                        b'L' => long_name = Some(cstr(&data).to_vec()),
                        b'K' => long_link = Some(cstr(&data).to_vec()),
                        b'x' => {
                            for (k, v) in parse_pax(&data)? {
                                match k {
                                    b"path" => long_name = Some(v.to_vec()),
                                    b"linkpath" => long_link = Some(v.to_vec()),
                                    b"size" => {
                                        let s = std::str::from_utf8(v)
                                            .ok()
                                            .and_then(|s| s.parse::<u64>().ok())
                                            .ok_or_else(|| malformed("bad pax size"))?;
                                        pax_size = Some(s);
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {} // global pax header: nothing we use
                    }
                    continue;
                }
                _ => {}
            }
            let size = pax_size.unwrap_or(size);
            let ustar = &h[257..263] == b"ustar\0";
            let path = match long_name {
                Some(n) => n,
                None => {
                    let name = cstr(&h[0..100]);
                    let prefix = if ustar { cstr(&h[345..500]) } else { &[][..] };
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        let mut p = prefix.to_vec();
                        p.push(b'/');
                        p.extend_from_slice(name);
                        p
                    }
                }
            };
            let link = long_link.unwrap_or_else(|| cstr(&h[157..257]).to_vec());
            let kind = match typeflag {
                b'0' | 0 | b'7' => EntryKind::File,
                b'1' => EntryKind::HardLink,
                b'2' => EntryKind::Symlink,
                b'5' => EntryKind::Dir,
                _ => EntryKind::Other,
            };
            // Old tars mark directories with a trailing slash on a file entry.
            let kind = if kind == EntryKind::File && path.ends_with(b"/") {
                EntryKind::Dir
            } else {
                kind
            };
            // Links and directories carry no data even if a size is recorded
            // (except hard links in some writers, whose data we skip anyway).
            let data_size = match kind {
                EntryKind::Dir | EntryKind::Symlink => 0,
                _ => size,
            };
            self.remaining = data_size;
            self.padding = pad(data_size);
            let mode = u32::try_from(octal(&h[100..108], "mode")? & 0o7777).unwrap_or(0);
            return Ok(Some(Entry {
                path,
                link,
                kind,
                mode,
                size: data_size,
            }));
        }
    }

    /// Reads the current entry's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated entry data",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Adapter so entry data can be consumed with `std::io` helpers.
pub struct EntryData<'a, R>(pub &'a mut TarReader<R>);

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_data(buf)
    }
}

fn pad(size: u64) -> u64 {
    (512 - size % 512) % 512
}

type PaxRecord<'a> = (&'a [u8], &'a [u8]);

fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, TarError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&c| c == 0) {
            break;
        }
        let sp = data
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| malformed("pax record without length"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("bad pax record length"))?;
        if len <= sp + 1 || len > data.len() {
            return Err(malformed("pax record length out of range"));
        }
        let rec = &data[sp + 1..len];
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or_else(|| malformed("pax record not newline-terminated"))?;
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| malformed("pax record without '='"))?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        let s = format!("{size:011o}");
        h[124..135].copy_from_slice(s.as_bytes());
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&c| u64::from(c)).sum();
        let c = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(c.as_bytes());
        h
    }

    #[test]
    fn reads_entries_and_pax() {
        let mut ar = Vec::new();
        let pax = b"29 path=a/very/long/name.txt\n";
        ar.extend_from_slice(&header("pax", b'x', pax.len() as u64));
        let mut block = [0u8; 512];
        block[..pax.len()].copy_from_slice(pax);
        ar.extend_from_slice(&block);
        ar.extend_from_slice(&header("short", b'0', 5));
        let mut data = [0u8; 512];
        data[..5].copy_from_slice(b"hello");
        ar.extend_from_slice(&data);
        ar.extend_from_slice(&[0u8; 1024]);
        let mut t = TarReader::new(&ar[..]);
        let e = t.next_entry().ok().flatten();
        let Some(e) = e else { panic!("entry") };
        assert_eq!(e.path, b"a/very/long/name.txt");
        let mut s = String::new();
        assert!(EntryData(&mut t).read_to_string(&mut s).is_ok());
        assert_eq!(s, "hello");
        assert!(matches!(t.next_entry(), Ok(None)));
    }

    #[test]
    fn rejects_bad_checksum_and_huge_extensions() {
        let mut h = header("x", b'0', 0);
        h[0] = b'y';
        let mut t = TarReader::new(&h[..]);
        assert!(matches!(t.next_entry(), Err(TarError::Malformed(_))));
        let h = header("././@LongLink", b'L', 1 << 30);
        let mut t = TarReader::new(&h[..]);
        assert!(matches!(t.next_entry(), Err(TarError::Malformed(_))));
    }

    #[test]
    fn truncation_is_an_error() {
        let h = header("f", b'0', 4096);
        let mut t = TarReader::new(&h[..]);
        assert!(t.next_entry().is_ok());
        assert!(t.next_entry().is_err());
        let mut t = TarReader::new(&h[..100]);
        assert!(t.next_entry().is_err());
    }

    #[test]
    fn pax_parser() {
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"5 a=b").is_err());
        assert!(parse_pax(b"x path=y\n").is_err());
        assert_eq!(parse_pax(b"9 path=x\n").ok().map(|v| v.len()), Some(1));
    }
}
