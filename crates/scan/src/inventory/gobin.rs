//! Go binaries' embedded build information, as written by the Go linker and
//! read by Go's `debug/buildinfo` package (src/debug/buildinfo/buildinfo.go)
//! and `go version -m`.
//!
//! The `.go.buildinfo` section starts with the 14-byte magic
//! `"\xff Go buildinf:"`, 16-byte aligned, then the pointer size and a flags
//! byte; since Go 1.18 (flag bit 2) the Go version and the module info text
//! follow as uvarint-length-prefixed strings right after the 32-byte header.
//! The binary is streamed once and only the bytes after a valid header are
//! kept, so huge binaries cost no memory. Binaries built before Go 1.18 store
//! pointers instead and are not inventoried.

use std::io::{self, Read};

use memchr::memmem;
use serde::{Deserialize, Serialize};

/// Build information of one Go binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoBuildInfo {
    /// Toolchain version (`go1.21.5`).
    pub go_version: String,
    /// The module info text (`path`/`mod`/`dep`/`=>` lines).
    pub modinfo: String,
}

/// A module recorded in a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoModule {
    /// Module path (`golang.org/x/net`), or `stdlib`.
    pub path: String,
    /// Version (`v0.17.0`; for stdlib the Go version as SemVer).
    pub version: String,
}

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;

enum Parse {
    NeedMore,
    Invalid,
    Found(GoBuildInfo),
}

fn uvarint(b: &[u8]) -> Option<Option<(u64, usize)>> {
    let mut x: u64 = 0;
    for (i, &c) in b.iter().enumerate().take(10) {
        x |= u64::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            return Some(Some((x, i + 1)));
        }
    }
    if b.len() >= 10 {
        Some(None) // malformed varint
    } else {
        None // need more bytes
    }
}

fn try_parse(buf: &[u8], max_keep: usize) -> Parse {
    if buf.len() < HEADER {
        return Parse::NeedMore;
    }
    let ptr_size = buf[14];
    let flags = buf[15];
    if ptr_size != 4 && ptr_size != 8 {
        return Parse::Invalid;
    }
    if flags & 2 == 0 {
        // Pre-1.18 pointer format: not supported when streaming.
        return Parse::Invalid;
    }
    let mut pos = HEADER;
    let mut strings = Vec::with_capacity(2);
    for _ in 0..2 {
        let (len, n) = match uvarint(&buf[pos..]) {
            None => return Parse::NeedMore,
            Some(None) => return Parse::Invalid,
            Some(Some(v)) => v,
        };
        let Ok(len) = usize::try_from(len) else {
            return Parse::Invalid;
        };
        if len > max_keep {
            return Parse::Invalid;
        }
        pos += n;
        if buf.len() < pos + len {
            return Parse::NeedMore;
        }
        strings.push(String::from_utf8_lossy(&buf[pos..pos + len]).into_owned());
        pos += len;
    }
    let modinfo = strings.pop().unwrap_or_default();
    let go_version = strings.pop().unwrap_or_default();
    if !go_version.starts_with("go") && !go_version.starts_with("devel") {
        return Parse::Invalid;
    }
    Parse::Found(GoBuildInfo {
        go_version,
        modinfo: strip_sentinels(&modinfo),
    })
}

/// Go wraps the module info in 16-byte sentinels; drop them when present.
fn strip_sentinels(m: &str) -> String {
    let b = m.as_bytes();
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        String::from_utf8_lossy(&b[16..b.len() - 16]).into_owned()
    } else {
        m.to_string()
    }
}

/// Streams an executable and returns its Go build info, if it is an ELF Go
/// binary. Reads at most to the build info (or the end of the file) and keeps
/// at most `max_keep` bytes after the header.
pub fn scan_binary<R: Read>(r: &mut R, max_keep: usize) -> io::Result<Option<GoBuildInfo>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..])?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    if &head != b"\x7fELF" {
        return Ok(None);
    }
    let finder = memmem::Finder::new(MAGIC);
    let mut window: Vec<u8> = head.to_vec();
    let mut base: u64 = 0; // file offset of window[0]
    let mut search_from = 0usize;
    let mut eof = false;
    let mut chunk = vec![0u8; 256 << 10];
    loop {
        // Examine candidates in the current window.
        let mut need_more_at: Option<usize> = None;
        while let Some(off) = finder.find(&window[search_from..]) {
            let i = search_from + off;
            if (base + i as u64) & 15 != 0 {
                search_from = i + 1;
                continue;
            }
            match try_parse(&window[i..], max_keep) {
                Parse::Found(info) => return Ok(Some(info)),
                Parse::Invalid => search_from = i + 1,
                Parse::NeedMore => {
                    if eof || window.len() - i > max_keep + HEADER + 20 {
                        search_from = i + 1;
                    } else {
                        need_more_at = Some(i);
                        break;
                    }
                }
            }
        }
        if eof {
            return Ok(None);
        }
        // Drop what can no longer start a match.
        let keep_from = need_more_at.unwrap_or_else(|| {
            window
                .len()
                .saturating_sub(MAGIC.len() - 1)
                .max(search_from.min(window.len()))
        });
        let keep_from = keep_from.min(window.len());
        window.drain(..keep_from);
        base += keep_from as u64;
        search_from = search_from.saturating_sub(keep_from);
        let n = loop {
            match r.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            eof = true;
        } else {
            window.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Converts a Go toolchain version (`go1.21.5`, `go1.21rc2`, `go1.21`) to the
/// SemVer form OSV's `stdlib` entries use.
pub fn stdlib_version(go_version: &str) -> Option<String> {
    let v = go_version.split_whitespace().next()?.strip_prefix("go")?;
    let (core, pre) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&v[..i], Some(&v[i..])),
        None => (v, None),
    };
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    let mut out = parts.join(".");
    if let Some(pre) = pre {
        let (word, num) = pre.split_at(pre.find(|c: char| c.is_ascii_digit()).unwrap_or(pre.len()));
        out.push('-');
        out.push_str(word);
        if !num.is_empty() {
            out.push('.');
            out.push_str(num);
        }
    }
    Some(out)
}

/// The modules a binary was built from: the main module (when it has a real
/// version), dependencies (with `=>` replacements applied) and `stdlib`.
pub fn modules(info: &GoBuildInfo) -> Vec<GoModule> {
    let mut out: Vec<GoModule> = Vec::new();
    for line in info.modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod", path, version, ..] | ["dep", path, version, ..]
                if !version.is_empty() && *version != "(devel)" =>
            {
                out.push(GoModule {
                    path: (*path).to_string(),
                    version: (*version).to_string(),
                });
            }
            ["=>", path, version, ..] => {
                // Replaces the module on the previous line.
                out.pop();
                if !version.is_empty() && *version != "(devel)" {
                    out.push(GoModule {
                        path: (*path).to_string(),
                        version: (*version).to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(v) = stdlib_version(&info.go_version) {
        out.push(GoModule {
            path: "stdlib".into(),
            version: v,
        });
    }
    out
}

#[cfg(test)]
pub(crate) fn fake_binary(go_version: &str, modinfo: &str, padding: usize) -> Vec<u8> {
    fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut b = b"\x7fELF".to_vec();
    b.resize(padding, 0);
    // A decoy magic (as in a string literal) that is not a valid header.
    b.extend_from_slice(b"xx\xff Go buildinf:zz");
    while b.len() & 15 != 0 {
        b.push(0);
    }
    b.extend_from_slice(MAGIC);
    b.push(8);
    b.push(2);
    b.resize(b.len() + 16, 0);
    put_uvarint(&mut b, go_version.len() as u64);
    b.extend_from_slice(go_version.as_bytes());
    let wrapped = format!("{}{}{}", "0123456789abcdef", modinfo, "fedcba9876543210");
    put_uvarint(&mut b, wrapped.len() as u64);
    b.extend_from_slice(wrapped.as_bytes());
    b.resize(b.len() + 5000, 7);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODINFO: &str = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.7.0\th1:abc=\ndep\tgithub.com/old/mod\tv1.0.0\th1:x=\n=>\tgithub.com/new/mod\tv1.2.0\th1:y=\nbuild\t-compiler=gc\n";

    #[test]
    fn finds_build_info_across_chunks() {
        for padding in [100, 300_000, (256 << 10) - 20] {
            let bin = fake_binary("go1.21.5", MODINFO, padding);
            let info = scan_binary(&mut &bin[..], 1 << 20).ok().flatten();
            let Some(info) = info else {
                panic!("no build info with padding {padding}")
            };
            assert_eq!(info.go_version, "go1.21.5");
            assert!(info.modinfo.starts_with("path\t"));
            let mods = modules(&info);
            let names: Vec<_> = mods
                .iter()
                .map(|m| (m.path.as_str(), m.version.as_str()))
                .collect();
            assert_eq!(
                names,
                vec![
                    ("golang.org/x/net", "v0.7.0"),
                    ("github.com/new/mod", "v1.2.0"),
                    ("stdlib", "1.21.5")
                ]
            );
        }
    }

    #[test]
    fn non_go_and_truncated() {
        assert_eq!(
            scan_binary(&mut &b"#!/bin/sh\necho hi"[..], 1024).ok(),
            Some(None)
        );
        let bin = fake_binary("go1.21.5", MODINFO, 100);
        let cut = &bin[..bin.len() - 5200];
        assert_eq!(scan_binary(&mut &cut[..], 1 << 20).ok(), Some(None));
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(1 << 20, 0xff);
        assert_eq!(scan_binary(&mut &elf[..], 1 << 20).ok(), Some(None));
    }

    #[test]
    fn stdlib_versions() {
        assert_eq!(stdlib_version("go1.21.5").as_deref(), Some("1.21.5"));
        assert_eq!(stdlib_version("go1.21").as_deref(), Some("1.21.0"));
        assert_eq!(stdlib_version("go1.21rc2").as_deref(), Some("1.21.0-rc.2"));
        assert_eq!(
            stdlib_version("go1.22.0 X:boringcrypto").as_deref(),
            Some("1.22.0")
        );
        assert_eq!(stdlib_version("devel +abc"), None);
    }
}
