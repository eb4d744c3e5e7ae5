//! xorshift64*: the small deterministic generator the CLI's workloads use to
//! pick operations and generate ticket text (the peers harness uses the same
//! one, so `bench` generates exactly its tickets).

/// A xorshift64* generator.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Starts from `seed` as given (0 becomes 1): the peers harness's seeding.
    pub fn from_raw(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Starts from a scrambled `seed`, so nearby seeds give unrelated streams.
    pub fn scrambled(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform-ish in `1..=n` (`n` at least 1).
    pub fn range1(&mut self, n: u64) -> u64 {
        1 + self.below(n)
    }
}
