//! The one pseudo-random generator of the crate: SplitMix64, small, fast and
//! deterministic from a seed. `SimStorage` draws its crash outcomes from it,
//! the tests and the fuzz checks their workloads, the CLI its demo, bench
//! and crash-test plans.
//!
//! It is the generator `SimStorage` has always used, seeded with the raw
//! seed, so every recorded simulation seed replays the same disk outcomes.
//! Not for anything that needs unpredictability (it is not a CSPRNG).
//!
//! This module sits at the bottom of the crate: it imports nothing from it.

/// The seed of a randomised test: `TICKETLOG_SEED` when set (to replay a
/// failure), else one drawn from the clock; printed on stderr with the
/// variable that replays it. Test support only: the library never prints,
/// so this exists only in test builds and with the `testing` feature.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("TICKETLOG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: seed {seed} (replay with TICKETLOG_SEED={seed})");
    seed
}

/// SplitMix64 (Steele, Lea and Flood), as in `java.util.SplittableRandom`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed` as given: the same seed gives the
    /// same sequence, and nearby seeds give unrelated ones.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n`; 0 when `n` is 0 (and then nothing is drawn).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use crate::rng::Rng;

    #[test]
    fn the_sequence_is_splitmix64_from_the_raw_seed() {
        // The first outputs of SplitMix64 seeded with 0 (the published
        // reference values): recorded simulation seeds depend on them.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_stays_in_range_and_below_zero_draws_nothing() {
        let mut rng = Rng::new(42);
        for n in 1..200 {
            assert!(rng.below(n) < n);
        }
        let before = rng.clone();
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng, before);
    }
}
