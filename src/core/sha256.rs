//! SHA-256 (FIPS 180-4), hand-written: a crate would bring traits and generic buffering the tag
//! does not need. Inputs are short (an email, a phone number): each block's words are read from the
//! message and its padding byte by byte, one path for all. Tested against the NIST example vectors
//! below.

/// FIPS 180-4's constants, computed as the standard defines them rather than stored: the 288
/// bytes of tables did not compress (-161 B of gzip; keeping them in a thread_local once computed
/// cost 60 B of it back). `.0` is the initial hash (the first 32 bits of the fractional parts of
/// the square roots of the first 8 primes), `.1` the round constants (of the cube roots of the
/// first 64 primes). f64 is exact enough here and rounds the same everywhere (IEEE 754, no fused
/// operations); a test checks every word against the standard's tables. About 10 µs (wasm in V8)
/// once per digest: identify() hashes a few values.
fn constants() -> ([u32; 8], [u32; 64]) {
    fn fraction_bits(root: f64) -> u32 {
        ((root - (root as u32) as f64) * 4294967296.0) as u32
    }
    let (mut initial, mut rounds) = ([0; 8], [0; 64]);
    let (mut found, mut n) = (0, 2u32);
    while found < 64 {
        // Trial division in a loop, not take_while(..).all(..) over a range.
        let mut d = 2;
        while d * d <= n && n % d != 0 {
            d += 1;
        }
        if d * d > n {
            let prime = n as f64;
            // Newton's method for the cube root, from above: it falls to the root, then stops falling.
            let mut cube_root = prime;
            loop {
                let next = cube_root - (cube_root * cube_root * cube_root - prime) / (3.0 * cube_root * cube_root);
                if next >= cube_root {
                    break;
                }
                cube_root = next;
            }
            rounds[found] = fraction_bits(cube_root);
            if found < 8 {
                initial[found] = fraction_bits(prime.sqrt());
            }
            found += 1;
        }
        n += 1;
    }
    (initial, rounds)
}

/// One block: `w` holds its sixteen words first; the rest is the message schedule, filled here.
fn compress(h: &mut [u32; 8], rounds: &[u32; 64], w: &mut [u32; 64]) {
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
    }
    let mut v = *h;
    for i in 0..64 {
        let [a, b, c, d, e, f, g, hh] = v;
        let t1 = hh
            .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
            .wrapping_add((e & f) ^ (!e & g))
            .wrapping_add(rounds[i])
            .wrapping_add(w[i]);
        let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22)).wrapping_add((a & b) ^ (a & c) ^ (b & c));
        v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
    }
    // An index loop: zipping with an array linked its by-value iterator.
    for i in 0..8 {
        h[i] = h[i].wrapping_add(v[i]);
    }
}

/// The SHA-256 digest of `data`, as its eight words.
fn digest(data: &[u8]) -> [u32; 8] {
    let (mut h, rounds) = constants();
    let len = data.len();
    // The padded message (0x80, zeros, then the bit length big-endian) is made byte by byte in
    // the loop that reads the message into each block's words: one path for every block, where
    // whole blocks and a padded tail copied to the stack were two (inputs are a few dozen bytes).
    let blocks = (len + 9).div_ceil(64);
    let mut at = 0;
    for block in 0..blocks {
        let mut w = [0u32; 64];
        for i in 0..64 {
            let b = if at < len {
                data[at]
            } else if at == len {
                0x80
            } else {
                0
            };
            w[i / 4] |= u32::from(b) << (24 - 8 * (i % 4));
            at += 1;
        }
        if block + 1 == blocks {
            let bits = (len as u64).wrapping_mul(8);
            w[14] = (bits >> 32) as u32;
            w[15] = bits as u32;
        }
        compress(&mut h, &rounds, &mut w);
    }
    h
}

/// Lower-case hex of the SHA-256 of `text` (UTF-8), the form Meta, Google and TikTok take.
pub fn hex(text: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let h = digest(text.as_bytes());
    let mut s = String::with_capacity(64);
    // Read from the words a digit at a time, not through the digest's 32 bytes written out first.
    for i in 0..64 {
        s.push(DIGITS[(h[i / 8] >> (28 - 4 * (i % 8)) & 15) as usize] as char);
    }
    s
}

/// True for 64 hex digits (either case): a value the site already hashed. The digits are told by
/// url::hex, the one hex-digit rule, not a second test of them.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && crate::core::text::all(s, |b| crate::core::url::hex(b).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// url::hex takes the bytes is_ascii_hexdigit does, so is_hex64 accepts what it did.
    #[test]
    fn hex_digits_are_ascii_hexdigits() {
        for b in 0..=255u8 {
            assert_eq!(crate::core::url::hex(b).is_some(), b.is_ascii_hexdigit(), "{b}");
            let mut s = "a".repeat(63);
            s.insert(b as usize % 64, char::from(b));
            assert_eq!(is_hex64(&s), s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()), "{s:?}");
        }
    }

    #[test]
    fn constants_are_the_standards() {
        const INITIAL: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
            0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
            0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
            0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
            0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
            0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
            0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
        ];
        assert_eq!(constants(), (INITIAL, K));
    }

    #[test]
    fn nist_vectors() {
        // FIPS 180-4 examples (NIST CSRC "Examples with intermediate values": SHA256.pdf, SHA256 two-block).
        assert_eq!(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        );
        // One million 'a' (NIST long message).
        assert_eq!(hex(&"a".repeat(1_000_000)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }

    #[test]
    fn every_padding_boundary() {
        // Lengths around the 55/56/63/64-byte padding boundaries; expected values from coreutils
        // `sha256sum` (kept literal so the core test needs no crate).
        let cases = [
            (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
            (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
            (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
            (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
            (65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"),
        ];
        for (n, want) in cases {
            assert_eq!(hex(&"a".repeat(n)), want, "{n} bytes");
        }
        assert!(is_hex64(&hex("x").to_uppercase()) && !is_hex64("abc"));
    }
}
