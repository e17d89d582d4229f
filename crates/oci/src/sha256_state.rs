//! SHA-256 whose state can be saved and resumed in another process: the running
//! hash of an upload is stored with the upload row after each append, so a node
//! that completes an upload another node (or this node before a restart) wrote
//! need not read the whole object back to hash it (`docs/architecture.md`,
//! "Several nodes"). Neither `ring` nor `sha2` 0.10 exposes a serializable
//! state, so this keeps the FIPS 180-4 state itself (the eight words of the
//! midstate, the unprocessed bytes of the last partial block, the length) and
//! leaves the compression function to `sha2::compress256` (SHA-NI or AVX2 where
//! the CPU has them).

use sha2::digest::generic_array::GenericArray;

const INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Blocks handed to the compression function at once (copied into an aligned
/// batch: `compress256` takes a slice of blocks).
const BATCH: usize = 64;

#[derive(Clone)]
pub struct Sha256State {
    h: [u32; 8],
    /// Bytes hashed so far (the unprocessed ones included).
    len: u64,
    buf: [u8; 64],
    buf_len: usize,
}

impl Default for Sha256State {
    fn default() -> Self {
        Self::new()
    }
}

type Block = GenericArray<u8, sha2::digest::consts::U64>;

impl Sha256State {
    pub fn new() -> Self {
        Sha256State {
            h: INIT,
            len: 0,
            buf: [0; 64],
            buf_len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = *Block::from_slice(&self.buf);
            sha2::compress256(&mut self.h, std::slice::from_ref(&block));
            self.buf_len = 0;
        }
        let mut batch = [Block::default(); BATCH];
        let mut blocks = data.chunks_exact(64);
        loop {
            let mut n = 0;
            for (slot, b) in batch.iter_mut().zip(blocks.by_ref()) {
                slot.copy_from_slice(b);
                n += 1;
            }
            if n == 0 {
                break;
            }
            sha2::compress256(&mut self.h, &batch[..n]);
            if n < BATCH {
                break;
            }
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut tail = [0u8; 128];
        tail[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        tail[self.buf_len] = 0x80;
        let n = if self.buf_len < 56 { 64 } else { 128 };
        tail[n - 8..n].copy_from_slice(&bits.to_be_bytes());
        for b in tail[..n].chunks_exact(64) {
            sha2::compress256(&mut self.h, std::slice::from_ref(Block::from_slice(b)));
        }
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// The state as text: `sha256-state:v1:<len>:<midstate hex>:<pending bytes hex>`.
    pub fn export(&self) -> String {
        let mut mid = [0u8; 32];
        for (o, w) in mid.chunks_exact_mut(4).zip(self.h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        format!(
            "sha256-state:v1:{}:{}:{}",
            self.len,
            hex::encode(mid),
            hex::encode(&self.buf[..self.buf_len])
        )
    }

    /// Parses [`Self::export`]'s text; None when it is not a consistent state.
    pub fn import(text: &str) -> Option<Sha256State> {
        let rest = text.strip_prefix("sha256-state:v1:")?;
        let mut it = rest.split(':');
        let len: u64 = it.next()?.parse().ok()?;
        let mid = hex::decode(it.next()?).ok()?;
        let pending = hex::decode(it.next()?).ok()?;
        if it.next().is_some() || mid.len() != 32 || pending.len() >= 64 {
            return None;
        }
        if len % 64 != pending.len() as u64 {
            return None;
        }
        let mut h = [0u32; 8];
        for (w, b) in h.iter_mut().zip(mid.chunks_exact(4)) {
            *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        }
        let mut buf = [0u8; 64];
        buf[..pending.len()].copy_from_slice(&pending);
        Some(Sha256State {
            h,
            len,
            buf,
            buf_len: pending.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn matches_sha2_on_random_splits_with_saves_and_resumes() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for round in 0..300 {
            let len = match round % 4 {
                0 => rng.below(130),
                1 => rng.below(5000),
                _ => rng.below(300_000),
            };
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let want: [u8; 32] = sha2::Sha256::digest(&data).into();
            let mut s = Sha256State::new();
            let mut at = 0;
            while at < data.len() {
                let n = 1 + rng.below((data.len() - at).min(70_000));
                s.update(&data[at..at + n]);
                at += n;
                if rng.below(2) == 0 {
                    // Saved after the append, resumed "on another node".
                    let text = s.export();
                    s = Sha256State::import(&text).expect("a state it wrote");
                    assert_eq!(s.len(), at as u64);
                }
            }
            assert_eq!(s.finish(), want, "round {round}, {len} bytes");
        }
    }

    #[test]
    fn known_answers() {
        let hex_of = |d: &[u8]| {
            let mut s = Sha256State::new();
            s.update(d);
            hex::encode(s.finish())
        };
        assert_eq!(
            hex_of(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex_of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn inconsistent_states_are_refused() {
        let mut s = Sha256State::new();
        s.update(b"hello");
        let good = s.export();
        assert!(Sha256State::import(&good).is_some());
        for bad in [
            "",
            "sha256-state:v2:5:00:00",
            &good.replace(":5:", ":6:"),
            &good.replace("sha256-state:v1:", "sha256-state:v1:x"),
            &format!("{good}:00"),
        ] {
            assert!(Sha256State::import(bad).is_none(), "{bad}");
        }
    }
}
