//! Encryption at rest (`docs/architecture.md`, "Blobs: a dumb backend under one pipeline").
//!
//! Every blob is sealed once with its own random data key in fixed-size
//! AES-256-GCM segments, so reads stream and a byte range costs only the segments it
//! touches. File layout:
//!
//! ```text
//! header   "BERTHE1\0" (8 bytes) | segment size (u32 BE)
//! segment  nonce (12) | ciphertext (≤ SEGMENT bytes) | tag (16)      … repeated
//! ```
//!
//! Each segment's additional data is its index and whether it is the last one, so
//! reordering, truncation or splicing segments fails authentication; each segment
//! has its own random nonce, so re-sealing the partial tail of a chunked upload never
//! reuses a nonce. Data keys are wrapped (AES-256-GCM) by key-encryption keys: the
//! master-derived registry key, or a berth-managed KMS key; wrapped keys and sealed
//! values record which key (scheme, id, version) sealed them.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

// aws-lc-rs rather than ring (used elsewhere) for one reason: the blob path. Its
// AES-256-GCM is ~1.5× faster on this class of CPU (VAES/AVX-512: 14.6 against
// 9.3 GB/s on 64 KiB segments) and it can seal out of place
// (`seal_in_place_scatter`), so a segment goes from the request's chunk to the
// out-buffer in one pass instead of a copy and then an in-place pass.
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;
/// Sealed bytes a segment adds to its plaintext (nonce and tag).
pub const OVERHEAD: usize = NONCE_LEN + TAG;
const MAGIC: &[u8; 8] = b"BERTHE1\0";
pub const HEADER: u64 = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("stored data failed authentication (tampered, truncated or wrong key)")]
    Tampered,
    #[error("random number generator failed")]
    Rng,
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn rng_fill(out: &mut [u8]) -> Result<(), CryptError> {
    // The kernel's CSPRNG (getrandom(2), ~0.25 µs here). AWS-LC's RAND_bytes
    // reseeds from a CPU-jitter entropy source that, under pushes, cost twice as
    // much CPU as the AES itself.
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(out)
        .map_err(|_| CryptError::Rng)
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    // Every 32-byte value is a valid AES-256 key.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!()))
}

/// A blob's data key.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    pub fn generate() -> Result<DataKey, CryptError> {
        let mut k = [0u8; 32];
        rng_fill(&mut k)?;
        Ok(DataKey(k))
    }

    pub fn from_bytes(b: &[u8]) -> Result<DataKey, CryptError> {
        let k: [u8; 32] = b.try_into().map_err(|_| CryptError::Tampered)?;
        Ok(DataKey(k))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Seals `plain` under `key` with a random nonce: `nonce | ciphertext | tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng_fill(&mut nonce)?;
    let mut buf = plain.to_vec();
    aead(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CryptError::Tampered)?;
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens a value from [`seal`].
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
    if sealed.len() < OVERHEAD {
        return Err(CryptError::Tampered);
    }
    let (n, c) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| CryptError::Tampered)?;
    let mut buf = c.to_vec();
    let plain = aead(key)
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| CryptError::Tampered)?;
    Ok(plain.to_vec())
}

fn segment_aad(index: u64, last: bool) -> [u8; 9] {
    let mut a = [0u8; 9];
    a[..8].copy_from_slice(&index.to_be_bytes());
    a[8] = last as u8;
    a
}

/// Seals the segment whose nonce space starts at `buf[start]` and whose `len`
/// plaintext bytes follow it: fills in a fresh random nonce, encrypts in place and
/// puts the tag after the ciphertext. Returns the segment's end.
fn seal_in_place(
    key: &LessSafeKey,
    index: u64,
    last: bool,
    buf: &mut [u8],
    start: usize,
    len: usize,
) -> Result<usize, CryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng_fill(&mut nonce)?;
    buf[start..start + NONCE_LEN].copy_from_slice(&nonce);
    let body = start + NONCE_LEN;
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(segment_aad(index, last)),
            &mut buf[body..body + len],
        )
        .map_err(|_| CryptError::Tampered)?;
    let end = body + len;
    buf[end..end + TAG].copy_from_slice(tag.as_ref());
    Ok(end + TAG)
}

/// Seals `plain` as non-final segment `index` into `out` at `at` (nonce |
/// ciphertext | tag), reading the plaintext where it lies. Returns the end.
fn seal_from(
    key: &LessSafeKey,
    index: u64,
    plain: &[u8],
    out: &mut [u8],
    at: usize,
) -> Result<usize, CryptError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng_fill(&mut nonce)?;
    out[at..at + NONCE_LEN].copy_from_slice(&nonce);
    let body = at + NONCE_LEN;
    let end = body + plain.len() + TAG;
    key.seal_in_place_scatter(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(segment_aad(index, false)),
        &mut [],
        plain,
        &mut out[body..end],
    )
    .map_err(|_| CryptError::Tampered)?;
    Ok(end)
}

/// Appends `nonce | seal(plain) | tag` to `out`.
fn seal_segment(
    key: &LessSafeKey,
    index: u64,
    last: bool,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptError> {
    let start = out.len();
    out.resize(start + NONCE_LEN, 0);
    out.extend_from_slice(plain);
    out.resize(out.len() + TAG, 0);
    seal_in_place(key, index, last, out, start, plain.len())?;
    Ok(())
}

fn open_segment<'a>(
    key: &LessSafeKey,
    index: u64,
    last: bool,
    seg: &'a mut [u8],
) -> Result<&'a [u8], CryptError> {
    if seg.len() < OVERHEAD {
        return Err(CryptError::Tampered);
    }
    let (n, rest) = seg.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| CryptError::Tampered)?;
    let plain = key
        .open_in_place(nonce, Aad::from(segment_aad(index, last)), rest)
        .map_err(|_| CryptError::Tampered)?;
    Ok(plain)
}

/// Plaintext length of a segmented file of `file_len` bytes (None if malformed).
pub fn plaintext_len(file_len: u64) -> Option<u64> {
    let body = file_len.checked_sub(HEADER)?;
    let full = (SEGMENT + OVERHEAD) as u64;
    let n_full = body / full;
    let rem = body % full;
    match rem {
        0 => Some(n_full * SEGMENT as u64),
        r if r >= OVERHEAD as u64 => Some(n_full * SEGMENT as u64 + r - OVERHEAD as u64),
        _ => None,
    }
}

/// Segments a sealed blob of `plain_len` bytes has (an empty one: one, see
/// [`seal_final`]).
pub fn segment_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(SEGMENT as u64)
}

/// Where segment `index` starts in a sealed object.
pub fn segment_offset(index: u64) -> u64 {
    HEADER + index * (SEGMENT + OVERHEAD) as u64
}

fn write_header(f: &mut File) -> io::Result<()> {
    let mut h = [0u8; HEADER as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&(SEGMENT as u32).to_be_bytes());
    f.write_all(&h)
}

fn check_header(f: &mut File) -> Result<(), CryptError> {
    let mut h = [0u8; HEADER as usize];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut h).map_err(|_| CryptError::Tampered)?;
    if &h[..8] != MAGIC || h[8..] != (SEGMENT as u32).to_be_bytes() {
        return Err(CryptError::Tampered);
    }
    Ok(())
}

/// Sealed bytes a [`Sealer`] collects before handing a buffer over (four segments).
const FLUSH_AT: usize = 4 * (SEGMENT + OVERHEAD);

/// Length of a [`Sealer`]'s buffers: a flush's worth plus the segment that crosses
/// the mark.
pub const SEAL_BUFFER: usize = FLUSH_AT + SEGMENT + OVERHEAD;

/// Where a [`Sealer`] hands a buffer of sealed bytes (`buf[..n]`). The callee may
/// swap `buf` for another buffer of [`SEAL_BUFFER`] bytes (to write it on another
/// thread) or write it and leave it.
pub type Flush<'a> = dyn FnMut(&mut Vec<u8>, usize) -> Result<(), CryptError> + 'a;

/// Turns an upload's plaintext into sealed segments (the file-free half of
/// [`SegmentWriter`], so sealing can run on another thread than writing).
///
/// A whole segment inside a caller's chunk is sealed straight from the chunk into
/// its place in the buffer (one pass over the bytes); only a segment that
/// straddles two chunks is gathered in the buffer first and sealed in place.
pub struct Sealer {
    key: LessSafeKey,
    /// Index of the segment being filled (or the next one).
    index: u64,
    /// `buf[..used]`: sealed segments not yet handed over, then the open segment
    /// (nonce space | plaintext so far) if `open_at` is set. Always
    /// [`SEAL_BUFFER`] long.
    buf: Vec<u8>,
    used: usize,
    open_at: Option<usize>,
    pub plain_len: u64,
}

/// Sealing buffers kept between appends: a new one is a fresh zeroed mapping the
/// kernel faults in page by page, which showed in pushes of many small blobs.
static SPARE_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
const SPARE_MAX: usize = 4;

impl Sealer {
    /// A buffer for [`Flush`] callees to swap in (a spare one when there is one).
    pub fn new_buffer() -> Vec<u8> {
        let spare = SPARE_BUFFERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        spare.unwrap_or_else(|| vec![0u8; SEAL_BUFFER])
    }

    /// Keeps a buffer from [`Sealer::new_buffer`] for reuse.
    pub fn recycle(buf: Vec<u8>) {
        if buf.len() != SEAL_BUFFER {
            return;
        }
        let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    }

    pub fn write(&mut self, mut data: &[u8], flush: &mut Flush<'_>) -> Result<(), CryptError> {
        self.plain_len += data.len() as u64;
        // Complete the open segment first.
        if let Some(start) = self.open_at {
            let fill = self.used - start - NONCE_LEN;
            let take = (SEGMENT - fill).min(data.len());
            self.buf[self.used..self.used + take].copy_from_slice(&data[..take]);
            self.used += take;
            data = &data[take..];
            if fill + take < SEGMENT {
                return Ok(());
            }
            self.used = seal_in_place(&self.key, self.index, false, &mut self.buf, start, SEGMENT)?;
            self.open_at = None;
            self.index += 1;
            self.flush_if_full(flush)?;
        }
        // Whole segments: sealed from the chunk straight into the buffer.
        while data.len() >= SEGMENT {
            let (seg, rest) = data.split_at(SEGMENT);
            self.used = seal_from(&self.key, self.index, seg, &mut self.buf, self.used)?;
            self.index += 1;
            data = rest;
            self.flush_if_full(flush)?;
        }
        // A short rest opens the next segment.
        if !data.is_empty() {
            let start = self.used;
            let at = start + NONCE_LEN;
            self.buf[at..at + data.len()].copy_from_slice(data);
            self.used = at + data.len();
            self.open_at = Some(start);
        }
        Ok(())
    }

    fn flush_if_full(&mut self, flush: &mut Flush<'_>) -> Result<(), CryptError> {
        if self.used >= FLUSH_AT {
            self.hand_over(flush)?;
        }
        Ok(())
    }

    /// Hands the sealed bytes over; only called with no segment open.
    fn hand_over(&mut self, flush: &mut Flush<'_>) -> Result<(), CryptError> {
        debug_assert!(self.open_at.is_none());
        if self.used > 0 {
            flush(&mut self.buf, self.used)?;
            debug_assert_eq!(self.buf.len(), SEAL_BUFFER);
            self.used = 0;
        }
        Ok(())
    }

    /// Seals a partial tail as a non-final segment and hands everything over.
    pub fn finish(mut self, flush: &mut Flush<'_>) -> Result<(), CryptError> {
        if let Some(start) = self.open_at.take() {
            let len = self.used - start - NONCE_LEN;
            self.used = seal_in_place(&self.key, self.index, false, &mut self.buf, start, len)?;
        }
        self.hand_over(flush)
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        if self.open_at.is_some() {
            // An abandoned append's partial segment: plaintext, not kept around.
            self.buf.fill(0);
        }
        Sealer::recycle(std::mem::take(&mut self.buf));
    }
}

/// Appends plaintext to a staged (not yet finished) segmented file holding
/// `plain_len` bytes. The partial tail segment, if any, is opened and re-sealed
/// with a fresh nonce. Call [`SegmentWriter::finish`] after the last chunk, or
/// take it apart with [`SegmentWriter::into_parts`] to seal and write on two
/// threads.
pub struct SegmentWriter {
    file: File,
    sealer: Sealer,
    writeback: Writeback,
}

impl SegmentWriter {
    pub fn open(
        mut file: File,
        key: &DataKey,
        plain_len: u64,
    ) -> Result<SegmentWriter, CryptError> {
        let key = aead(key.bytes());
        if plain_len == 0 {
            // A fresh upload's file is empty; an earlier append that died part-way
            // may have left bytes behind, which are cut (only then: a truncate is a
            // journaled metadata change that the commit's fsync would wait for).
            if file.metadata()?.len() != 0 {
                file.set_len(0)?;
            }
            file.seek(SeekFrom::Start(0))?;
            write_header(&mut file)?;
        } else {
            check_header(&mut file)?;
        }
        let full_segments = plain_len / SEGMENT as u64;
        let tail = (plain_len % SEGMENT as u64) as usize;
        let mut buf = Sealer::new_buffer();
        let mut used = 0;
        let mut open_at = None;
        if tail > 0 {
            // Re-open the partial tail in place so new bytes extend it.
            let off = segment_offset(full_segments);
            let seg = &mut buf[..tail + OVERHEAD];
            file.seek(SeekFrom::Start(off))?;
            file.read_exact(seg).map_err(|_| CryptError::Tampered)?;
            let n = open_segment(&key, full_segments, false, seg)?.len();
            debug_assert_eq!(n, tail);
            used = NONCE_LEN + tail;
            open_at = Some(0);
            // The re-sealed tail is written back from `off`; a longer file (an
            // append that died part-way) is cut there.
            if file.metadata()?.len() != off + (tail + OVERHEAD) as u64 {
                file.set_len(off)?;
            }
            file.seek(SeekFrom::Start(off))?;
        } else {
            let file_len = file.metadata()?.len();
            let expect = segment_offset(full_segments);
            if file_len < expect {
                return Err(CryptError::Tampered);
            }
            if file_len != expect {
                file.set_len(expect)?;
            }
            file.seek(SeekFrom::Start(expect))?;
        }
        let end = file.stream_position()?;
        Ok(SegmentWriter {
            file,
            sealer: Sealer {
                key,
                index: full_segments,
                buf,
                used,
                open_at,
                plain_len,
            },
            writeback: Writeback::new(end, Writeback::SEALED_HOLD_BACK),
        })
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), CryptError> {
        let SegmentWriter {
            file,
            sealer,
            writeback,
        } = self;
        sealer.write(data, &mut |buf, n| write_out(file, writeback, &buf[..n]))
    }

    /// Writes everything buffered (a partial tail as a non-final segment) and starts
    /// writeback of what is still dirty.
    pub fn finish(self) -> Result<File, CryptError> {
        let SegmentWriter {
            mut file,
            sealer,
            mut writeback,
        } = self;
        sealer.finish(&mut |buf, n| write_out(&mut file, &mut writeback, &buf[..n]))?;
        writeback.kick(&file);
        Ok(file)
    }

    /// The sealer, and the file positioned where its output goes, with its
    /// writeback state; see [`write_out`].
    pub fn into_parts(self) -> (Sealer, File, Writeback) {
        (self.sealer, self.file, self.writeback)
    }
}

/// Appends sealed bytes from a [`Sealer`] to its file.
pub fn write_out(
    file: &mut File,
    writeback: &mut Writeback,
    sealed: &[u8],
) -> Result<(), CryptError> {
    file.write_all(sealed)?;
    writeback.wrote(file, sealed.len() as u64);
    Ok(())
}

/// Starts the kernel's writeback of a file being appended to every
/// [`Writeback::STEP`] bytes (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does
/// not wait), so the `fsync` at commit finds little dirty data left instead of the
/// whole upload. Durability is unchanged: only the final `sync_all` counts.
///
/// Writeback stops short of the last `hold_back` bytes, rounded down to a page: a
/// page under writeback cannot be changed until its I/O completes, and the end of
/// a staged file is written again (the last segment is re-sealed as final at
/// commit, a partial tail is re-sealed by the next append, and the next append
/// fills a partial last page). Kicking those pages made every small push wait for
/// the disk at commit (+2 ms per 1 MiB push here).
pub struct Writeback {
    /// File offset up to which writeback was started.
    started: u64,
    /// Current end of what was written.
    end: u64,
    hold_back: u64,
}

const PAGE: u64 = 4096;

impl Writeback {
    pub const STEP: u64 = 4 * 1024 * 1024;

    /// For sealed files: holds back the last segment.
    pub const SEALED_HOLD_BACK: u64 = (SEGMENT + OVERHEAD) as u64;

    pub fn new(offset: u64, hold_back: u64) -> Writeback {
        Writeback {
            started: offset & !(PAGE - 1),
            end: offset,
            hold_back,
        }
    }

    pub fn wrote(&mut self, file: &File, n: u64) {
        self.end += n;
        if self.end - self.started >= Self::STEP + self.hold_back {
            self.kick(file);
        }
    }

    /// Starts writeback of what was written since the last kick, except the tail
    /// held back.
    pub fn kick(&mut self, file: &File) {
        let limit = self.end.saturating_sub(self.hold_back) & !(PAGE - 1);
        if limit > self.started {
            start_writeback(file, self.started, limit - self.started);
            self.started = limit;
        }
    }
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own; it only reads its arguments.
    // A failure (say, a filesystem without support) is harmless: it is a hint, and
    // the commit's fsync still makes the bytes durable.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Marks the last segment of a staged file as final (re-sealing it with a fresh
/// nonce); an empty blob gets one empty final segment.
pub fn seal_final(file: &mut File, key: &DataKey, plain_len: u64) -> Result<(), CryptError> {
    let key = aead(key.bytes());
    if plain_len == 0 {
        if file.metadata()?.len() != 0 {
            file.set_len(0)?;
        }
        file.seek(SeekFrom::Start(0))?;
        write_header(file)?;
        let mut out = Vec::new();
        seal_segment(&key, 0, true, &[], &mut out)?;
        file.write_all(&out)?;
        return Ok(());
    }
    check_header(file)?;
    let n = segment_count(plain_len);
    let last = n - 1;
    let len = (plain_len - last * SEGMENT as u64) as usize;
    let off = segment_offset(last);
    let mut seg = vec![0u8; len + OVERHEAD];
    file.seek(SeekFrom::Start(off))?;
    file.read_exact(&mut seg)
        .map_err(|_| CryptError::Tampered)?;
    // Open and re-seal in the same buffer. The sealed segment is as long as before
    // (only its additional data changes), so it overwrites itself in place: no
    // truncate, which on ext4 is a journaled change the commit's fsync waits for.
    open_segment(&key, last, false, &mut seg)?;
    let end = seal_in_place(&key, last, true, &mut seg, 0, len)?;
    debug_assert_eq!(end, seg.len());
    file.seek(SeekFrom::Start(off))?;
    file.write_all(&seg)?;
    let end = off + seg.len() as u64;
    if file.metadata()?.len() != end {
        file.set_len(end)?;
    }
    Ok(())
}

/// The sealed object's header (see the module comment).
pub fn header() -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&(SEGMENT as u32).to_be_bytes());
    h
}

/// Sealed length of a staged (not yet final-marked) stream of `plain_len` bytes:
/// the header and every segment, the partial last one included.
pub fn staged_len(plain_len: u64) -> u64 {
    let full = plain_len / SEGMENT as u64;
    let rem = plain_len % SEGMENT as u64;
    segment_offset(full) + if rem > 0 { rem + OVERHEAD as u64 } else { 0 }
}

impl Sealer {
    /// A sealer for a stream that holds `plain_len` bytes so far, for the object
    /// pipeline (no file). When `plain_len` is not a multiple of [`SEGMENT`],
    /// `partial` is its last, partial segment as sealed (non-final); it is opened
    /// and its plaintext extended by the next writes (re-sealed with a fresh
    /// nonce).
    pub fn resume(key: &DataKey, plain_len: u64, partial: &[u8]) -> Result<Sealer, CryptError> {
        let key = aead(key.bytes());
        let index = plain_len / SEGMENT as u64;
        let tail = (plain_len % SEGMENT as u64) as usize;
        let mut buf = Sealer::new_buffer();
        let (used, open_at) = if tail > 0 {
            if partial.len() != tail + OVERHEAD {
                return Err(CryptError::Tampered);
            }
            let seg = &mut buf[..tail + OVERHEAD];
            seg.copy_from_slice(partial);
            let n = open_segment(&key, index, false, seg)?.len();
            debug_assert_eq!(n, tail);
            (NONCE_LEN + tail, Some(0))
        } else {
            (0, None)
        };
        Ok(Sealer {
            key,
            index,
            buf,
            used,
            open_at,
            plain_len,
        })
    }
}

/// Re-seals the last segment of a staged stream of `plain_len` bytes (`seg`, as
/// sealed, non-final) as the final one, in place; for an empty stream, `seg` must
/// be empty and becomes one empty final segment.
pub fn seal_final_segment(
    key: &DataKey,
    plain_len: u64,
    seg: &mut Vec<u8>,
) -> Result<(), CryptError> {
    let key = aead(key.bytes());
    if plain_len == 0 {
        if !seg.is_empty() {
            return Err(CryptError::Tampered);
        }
        return seal_segment(&key, 0, true, &[], seg);
    }
    let last = segment_count(plain_len) - 1;
    let len = (plain_len - last * SEGMENT as u64) as usize;
    if seg.len() != len + OVERHEAD {
        return Err(CryptError::Tampered);
    }
    open_segment(&key, last, false, seg)?;
    seal_in_place(&key, last, true, seg, 0, len)?;
    Ok(())
}

/// Opens sealed segments `first..` of a finished blob of `plain_len` bytes as they
/// arrive from an object read, for the object pipeline: [`Opener::push`] takes
/// ciphertext in any pieces and hands out the wanted plaintext
/// (`[offset, offset+len)` of the blob) in batches of up to [`READ_BATCH`] segments.
pub struct Opener {
    key: LessSafeKey,
    plain_len: u64,
    offset: u64,
    end: u64,
    /// The next segment to open.
    index: u64,
    last_needed: u64,
    buf: Vec<u8>,
}

impl Opener {
    /// The opener for `[offset, offset+len)` (`len > 0`) and the byte range of the
    /// sealed object to fetch for it.
    pub fn new(
        key: &DataKey,
        plain_len: u64,
        offset: u64,
        len: u64,
    ) -> Result<(Opener, std::ops::Range<u64>), CryptError> {
        let end = offset.checked_add(len).ok_or(CryptError::Tampered)?;
        if len == 0 || end > plain_len {
            return Err(CryptError::Tampered);
        }
        let first = offset / SEGMENT as u64;
        let last_needed = (end - 1) / SEGMENT as u64;
        let o = Opener {
            key: aead(key.bytes()),
            plain_len,
            offset,
            end,
            index: first,
            last_needed,
            buf: Vec::new(),
        };
        let range =
            segment_offset(first)..segment_offset(last_needed) + o.sealed(last_needed) as u64;
        Ok((o, range))
    }

    fn sealed(&self, i: u64) -> usize {
        let n = segment_count(self.plain_len);
        let plain = if i == n - 1 {
            (self.plain_len - i * SEGMENT as u64) as usize
        } else {
            SEGMENT
        };
        plain + OVERHEAD
    }

    /// Whether every wanted segment has been opened.
    pub fn done(&self) -> bool {
        self.index > self.last_needed
    }

    /// Takes ciphertext; returns the plaintext of the batch it completed, if any.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, CryptError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.done() {
                return Err(CryptError::Tampered);
            }
            let batch_end = (self.index + READ_BATCH as u64 - 1).min(self.last_needed);
            let want: usize = (self.index..=batch_end).map(|j| self.sealed(j)).sum();
            let take = (want - self.buf.len()).min(data.len());
            if self.buf.capacity() < want {
                // One allocation per batch (the batch leaves as the plaintext
                // chunk), not a doubling series of copies as pieces arrive.
                self.buf.reserve_exact(want - self.buf.len());
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == want {
                out.push(self.open_batch(batch_end)?);
            }
        }
        Ok(out)
    }

    fn open_batch(&mut self, batch_end: u64) -> Result<Vec<u8>, CryptError> {
        let n = segment_count(self.plain_len);
        let mut buf = std::mem::take(&mut self.buf);
        let (mut r, mut w) = (0usize, 0usize);
        for j in self.index..=batch_end {
            let sl = self.sealed(j);
            let plain = open_segment(&self.key, j, j == n - 1, &mut buf[r..r + sl])?;
            let seg_start = j * SEGMENT as u64;
            let from = self.offset.saturating_sub(seg_start) as usize;
            let to = ((self.end - seg_start) as usize).min(plain.len());
            let src = r + NONCE_LEN + from;
            buf.copy_within(src..src + (to - from), w);
            w += to - from;
            r += sl;
        }
        buf.truncate(w);
        self.index = batch_end + 1;
        Ok(buf)
    }
}

/// Segments read and opened per batch by [`read_range_batched`] (256 KiB).
pub const READ_BATCH: usize = 4;

/// Reads plaintext `[offset, offset+len)` of a finished segmented file, calling
/// `sink` with each decrypted piece in order. `finished` selects whether the last
/// segment must carry the final mark (a finished blob) or not (a staged upload).
pub fn read_range(
    file: &mut File,
    key: &DataKey,
    offset: u64,
    len: u64,
    finished: bool,
    mut sink: impl FnMut(&[u8]) -> Result<(), CryptError>,
) -> Result<(), CryptError> {
    let mut buf = Vec::new();
    read_range_batched(file, key, offset, len, finished, &mut buf, |b| sink(b))
}

/// [`read_range`] in batches of up to [`READ_BATCH`] segments: each batch is read
/// with one `read`, opened in place and compacted to contiguous plaintext at the
/// front of `buf`, then handed to `sink`. The sink may keep the buffer (say
/// `std::mem::take` it into a `Bytes`, no copy); an emptied `buf` is re-allocated.
pub fn read_range_batched(
    file: &mut File,
    key: &DataKey,
    offset: u64,
    len: u64,
    finished: bool,
    buf: &mut Vec<u8>,
    mut sink: impl FnMut(&mut Vec<u8>) -> Result<(), CryptError>,
) -> Result<(), CryptError> {
    let key = aead(key.bytes());
    check_header(file)?;
    let file_len = file.metadata()?.len();
    let plain_len = plaintext_len(file_len).ok_or(CryptError::Tampered)?;
    if finished && plain_len == 0 {
        // One empty final segment.
        let mut seg = [0u8; OVERHEAD];
        file.seek(SeekFrom::Start(HEADER))?;
        file.read_exact(&mut seg)
            .map_err(|_| CryptError::Tampered)?;
        open_segment(&key, 0, true, &mut seg)?;
        return if len == 0 {
            Ok(())
        } else {
            Err(CryptError::Tampered)
        };
    }
    if len == 0 {
        return Ok(());
    }
    let end = offset.checked_add(len).ok_or(CryptError::Tampered)?;
    if end > plain_len {
        return Err(CryptError::Tampered);
    }
    let n = segment_count(plain_len);
    let first = offset / SEGMENT as u64;
    let last_needed = (end - 1) / SEGMENT as u64;
    let seg_plain = |i: u64| {
        if i == n - 1 {
            (plain_len - i * SEGMENT as u64) as usize
        } else {
            SEGMENT
        }
    };
    file.seek(SeekFrom::Start(segment_offset(first)))?;
    let mut i = first;
    while i <= last_needed {
        let batch_end = (i + READ_BATCH as u64 - 1).min(last_needed);
        let cipher_len: usize = (i..=batch_end).map(|j| seg_plain(j) + OVERHEAD).sum();
        if buf.capacity() == 0 {
            *buf = Vec::with_capacity(READ_BATCH * (SEGMENT + OVERHEAD));
        }
        buf.clear();
        buf.resize(cipher_len, 0);
        file.read_exact(buf).map_err(|_| CryptError::Tampered)?;
        // Open each segment where it lies, then move its wanted plaintext down to
        // `w` (an overlapping move within the buffer, no second buffer).
        let (mut r, mut w) = (0usize, 0usize);
        for j in i..=batch_end {
            let sl = seg_plain(j) + OVERHEAD;
            let plain = open_segment(&key, j, finished && j == n - 1, &mut buf[r..r + sl])?;
            let seg_start = j * SEGMENT as u64;
            let from = offset.saturating_sub(seg_start) as usize;
            let to = ((end - seg_start) as usize).min(plain.len());
            let src = r + NONCE_LEN + from;
            buf.copy_within(src..src + (to - from), w);
            w += to - from;
            r += sl;
        }
        buf.truncate(w);
        sink(buf)?;
        i = batch_end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("berth-crypt-{}", uuid::Uuid::new_v4()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        (p, f)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn read_all(f: &mut File, key: &DataKey, len: u64) -> Result<Vec<u8>, CryptError> {
        let mut out = Vec::new();
        read_range(f, key, 0, len, true, |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn chunked_appends_round_trip_and_ranges() {
        let key = DataKey::generate().unwrap();
        let all = data(3 * SEGMENT + 1234);
        let (p, f) = tmp();
        let mut f = f;
        // Appends at awkward boundaries, re-opening the staged file each time.
        let mut written = 0u64;
        for chunk in [1usize, 70_000, SEGMENT, 5, SEGMENT + 100, 1000] {
            let end = (written as usize + chunk).min(all.len());
            let mut w = SegmentWriter::open(f, &key, written).unwrap();
            w.write(&all[written as usize..end]).unwrap();
            written = end as u64;
            f = w.finish().unwrap();
        }
        let mut w = SegmentWriter::open(f, &key, written).unwrap();
        w.write(&all[written as usize..]).unwrap();
        let mut f = w.finish().unwrap();
        seal_final(&mut f, &key, all.len() as u64).unwrap();
        assert_eq!(
            plaintext_len(f.metadata().unwrap().len()),
            Some(all.len() as u64)
        );
        assert_eq!(read_all(&mut f, &key, all.len() as u64).unwrap(), all);
        for (o, l) in [
            (0u64, 1u64),
            (SEGMENT as u64 - 1, 2),
            (100_000, 70_000),
            (all.len() as u64 - 1, 1),
        ] {
            let mut out = Vec::new();
            read_range(&mut f, &key, o, l, true, |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(out, &all[o as usize..(o + l) as usize]);
        }
        // The raw file holds no plaintext run.
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw
            .windows(64)
            .any(|w| all.windows(64).take(10).any(|a| a == w)));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn tampering_truncation_and_wrong_keys_fail() {
        let key = DataKey::generate().unwrap();
        let all = data(2 * SEGMENT + 10);
        let (p, f) = tmp();
        let mut w = SegmentWriter::open(f, &key, 0).unwrap();
        w.write(&all).unwrap();
        let mut f = w.finish().unwrap();
        seal_final(&mut f, &key, all.len() as u64).unwrap();
        let good = std::fs::read(&p).unwrap();
        for pos in [
            HEADER as usize + 3,
            HEADER as usize + 40_000,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[pos] ^= 1;
            std::fs::write(&p, &bad).unwrap();
            let mut f = File::open(&p).unwrap();
            assert!(
                read_all(&mut f, &key, all.len() as u64).is_err(),
                "flip at {pos}"
            );
        }
        // Dropping the final segment: the new last one lacks the final mark.
        let cut = segment_offset(2) as usize;
        std::fs::write(&p, &good[..cut]).unwrap();
        let mut f = File::open(&p).unwrap();
        assert!(read_all(&mut f, &key, 2 * SEGMENT as u64).is_err());
        std::fs::write(&p, &good).unwrap();
        let mut f = File::open(&p).unwrap();
        assert!(read_all(&mut f, &DataKey::generate().unwrap(), all.len() as u64).is_err());
        assert_eq!(read_all(&mut f, &key, all.len() as u64).unwrap(), all);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn batched_reads_cross_batch_boundaries() {
        let key = DataKey::generate().unwrap();
        let n = (2 * READ_BATCH + 1) * SEGMENT + 777;
        let all = data(n);
        let (p, f) = tmp();
        let mut w = SegmentWriter::open(f, &key, 0).unwrap();
        // Odd-sized chunks, as a request body arrives.
        for c in all.chunks(100_003) {
            w.write(c).unwrap();
        }
        let mut f = w.finish().unwrap();
        seal_final(&mut f, &key, n as u64).unwrap();
        let seg = SEGMENT as u64;
        let batch = READ_BATCH as u64 * seg;
        for (o, l) in [
            (0u64, n as u64),
            (batch - 1, 2),
            (batch - 5, batch + 10),
            (seg + 3, 2 * batch),
            (n as u64 - 800, 800),
        ] {
            let mut out = Vec::new();
            let mut pieces = 0;
            let mut buf = Vec::new();
            read_range_batched(&mut f, &key, o, l, true, &mut buf, |b| {
                pieces += 1;
                // The sink may take the buffer; the reader allocates a new one.
                out.extend_from_slice(&std::mem::take(b));
                Ok(())
            })
            .unwrap();
            assert_eq!(out, &all[o as usize..(o + l) as usize], "range {o}+{l}");
            assert!(pieces <= l.div_ceil(batch) as usize + 1);
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn every_chunking_reads_back_the_same() {
        // Chunks shorter than, equal to and longer than a segment, in one append and
        // across re-opened appends: whole segments are sealed straight from the
        // chunk, straddling ones gathered first; all must read back identically.
        let key = DataKey::generate().unwrap();
        let n = 5 * SEGMENT + 4321;
        let all = data(n);
        let s = SEGMENT;
        for sizes in [
            vec![n],
            vec![s; 6],
            vec![s - 1, s + 1, 1, 2 * s, s - 1],
            vec![1, 2 * s + 3, s, 7],
            vec![3 * s, 3 * s],
            vec![100_003; 6],
        ] {
            for reopen in [false, true] {
                let (p, f) = tmp();
                let mut w = SegmentWriter::open(f, &key, 0).unwrap();
                let mut at = 0;
                for size in sizes.iter().copied().cycle() {
                    if at >= n {
                        break;
                    }
                    let end = (at + size).min(n);
                    if reopen {
                        let f = w.finish().unwrap();
                        w = SegmentWriter::open(f, &key, at as u64).unwrap();
                    }
                    w.write(&all[at..end]).unwrap();
                    at = end;
                }
                let mut f = w.finish().unwrap();
                seal_final(&mut f, &key, n as u64).unwrap();
                assert_eq!(
                    read_all(&mut f, &key, n as u64).unwrap(),
                    all,
                    "chunks {sizes:?}, reopen {reopen}"
                );
                std::fs::remove_file(p).unwrap();
            }
        }
    }

    #[test]
    fn opener_takes_ciphertext_in_any_pieces() {
        let key = DataKey::generate().unwrap();
        let n = 3 * SEGMENT + 500;
        let all = data(n);
        let (p, f) = tmp();
        let mut w = SegmentWriter::open(f, &key, 0).unwrap();
        w.write(&all).unwrap();
        let mut f = w.finish().unwrap();
        seal_final(&mut f, &key, n as u64).unwrap();
        let raw = std::fs::read(&p).unwrap();
        for (o, l) in [(0, n), (SEGMENT - 1, 2), (SEGMENT, SEGMENT), (n - 1, 1)] {
            for piece in [1usize, 1000, 70_000] {
                let (mut op, range) = Opener::new(&key, n as u64, o as u64, l as u64).unwrap();
                let mut out = Vec::new();
                for c in raw[range.start as usize..range.end as usize].chunks(piece) {
                    for b in op.push(c).unwrap() {
                        out.extend_from_slice(&b);
                    }
                }
                assert!(op.done());
                assert_eq!(out, &all[o..o + l], "range {o}+{l}, pieces of {piece}");
            }
        }
        // A flipped byte, or bytes past the range, fail.
        let (mut op, range) = Opener::new(&key, n as u64, 0, n as u64).unwrap();
        let mut bad = raw[range.start as usize..range.end as usize].to_vec();
        bad[HEADER as usize + 5] ^= 1;
        assert!(op.push(&bad).is_err());
        let (mut op, range) = Opener::new(&key, n as u64, 0, 10).unwrap();
        let mut more = raw[range.start as usize..range.end as usize].to_vec();
        more.push(0);
        assert!(op.push(&more).is_err());
        assert!(
            Opener::new(&key, n as u64, n as u64 - 1, 2).is_err(),
            "past the end"
        );
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn resumed_sealer_and_final_segment_match_the_file_format() {
        // A stream sealed in pieces by resumed sealers (the object pipeline)
        // reads back with the file reader.
        let key = DataKey::generate().unwrap();
        let n = 2 * SEGMENT + 777;
        let all = data(n);
        let mut out = header().to_vec();
        let mut at = 0usize;
        for len in [10usize, SEGMENT, 5, SEGMENT + 762] {
            // Split off the open (partial) last segment, as the pipeline's tail does.
            let rem = at % SEGMENT;
            let cut = if rem > 0 {
                out.len() - (rem + OVERHEAD)
            } else {
                out.len()
            };
            let partial = out.split_off(cut);
            let mut s = Sealer::resume(&key, at as u64, &partial).unwrap();
            s.write(&all[at..at + len], &mut |b: &mut Vec<u8>, k| {
                out.extend_from_slice(&b[..k]);
                Ok(())
            })
            .unwrap();
            s.finish(&mut |b: &mut Vec<u8>, k| {
                out.extend_from_slice(&b[..k]);
                Ok(())
            })
            .unwrap();
            at += len;
            assert_eq!(out.len() as u64, staged_len(at as u64));
        }
        let last = n - SEGMENT * 2 + OVERHEAD;
        let mut seg = out.split_off(out.len() - last);
        seal_final_segment(&key, n as u64, &mut seg).unwrap();
        out.extend_from_slice(&seg);
        let (p, _) = tmp();
        std::fs::write(&p, &out).unwrap();
        let mut f = File::open(&p).unwrap();
        assert_eq!(read_all(&mut f, &key, n as u64).unwrap(), all);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn one_segment() {
        let key = DataKey::generate().unwrap();
        let mut out = Vec::new();
        let k = aead(key.bytes());
        seal_segment(&k, 0, false, &[1, 2, 3], &mut out).unwrap();
        let mut seg = out.clone();
        assert_eq!(open_segment(&k, 0, false, &mut seg).unwrap(), &[1, 2, 3]);
        let full = vec![7u8; SEGMENT];
        let mut out2 = Vec::new();
        seal_segment(&k, 1, false, &full, &mut out2).unwrap();
    }

    #[test]
    fn empty_blob_and_sealed_values() {
        let key = DataKey::generate().unwrap();
        let (p, mut f) = tmp();
        seal_final(&mut f, &key, 0).unwrap();
        assert_eq!(read_all(&mut f, &key, 0).unwrap(), Vec::<u8>::new());
        std::fs::remove_file(p).unwrap();
        let k = [9u8; 32];
        let s = seal(&k, b"ctx", b"hello").unwrap();
        assert_eq!(open(&k, b"ctx", &s).unwrap(), b"hello");
        assert!(open(&k, b"other", &s).is_err());
        assert!(open(&[8u8; 32], b"ctx", &s).is_err());
        assert_eq!(plaintext_len(HEADER), Some(0));
        assert_eq!(plaintext_len(HEADER + 5), None);
    }
}
