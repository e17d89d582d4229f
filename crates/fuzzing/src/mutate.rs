//! A small mutational input generator for running the targets on a stable
//! toolchain (cargo-fuzz's coverage-guided libFuzzer needs nightly): seeds from
//! the committed corpus, changed by bit flips, byte sets, inserts, deletes,
//! duplications, splices and dictionary tokens.

/// xorshift64*: deterministic for a given seed, so a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Tokens that tend to reach deeper parser states.
const DICTIONARY: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"4294967296",
    b"18446744073709551615",
    b"1e999",
    b"*",
    b"?",
    b"/",
    b"..",
    b"%",
    b"%2F",
    b"\\u0000",
    b"sha256:",
    b"sha512:",
    b"arn:aws:",
    b"${aws:username}",
    b"ForAnyValue:",
    b"IfExists",
    b"StringLike",
    b"~",
    b"^",
    b"+",
    b"-",
    b"_",
    b".",
    b"\n\n",
    b"\0",
    b"\xff\xfe",
    b"AWS4-HMAC-SHA256 Credential=",
    b"SignedHeaders=",
    b"Signature=",
    b"X-Amz-Date",
    b"20261206T000000Z",
    b"ustar\0",
    b"\x1f\x8b",
    b"\x28\xb5\x2f\xfd",
    b"Package: ",
    b"Version: ",
    b"P:",
    b"V:",
];

/// Largest input the generator produces.
pub const MAX_LEN: usize = 256 * 1024;

/// One mutation of `input` (which may be empty), splicing from `other`.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(i..i, bytes);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(64));
                v.drain(i..i + n);
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below((v.len() - i).min(256));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(other.len());
                let n = 1 + rng.below((other.len() - j).min(512));
                v.truncate(i);
                v.extend_from_slice(&other[j..j + n]);
            }
            6 => {
                let t = DICTIONARY[rng.below(DICTIONARY.len())];
                let i = rng.below(v.len() + 1);
                v.splice(i..i, t.iter().copied());
            }
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            _ => v.push(rng.next_u64() as u8),
        }
    }
    v.truncate(MAX_LEN);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_bounded_and_deterministic() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let seed = vec![7u8; MAX_LEN];
        for _ in 0..200 {
            let x = mutate(&mut a, &seed, b"other");
            assert!(x.len() <= MAX_LEN);
            assert_eq!(x, mutate(&mut b, &seed, b"other"));
        }
    }
}
