//! Seeded uniform samples of streams: the blind baseline's passages, drawn as a scan reads
//! its collection and as a calibration scores its non-members, without a second read.

/// A uniform random sample of at most `n` items of a stream (reservoir sampling, seeded):
/// the same stream and seed give the same sample on every machine.
pub struct Reservoir {
    rng: rand_chacha::ChaCha8Rng,
    n: usize,
    seen: usize,
    items: Vec<String>,
}

impl Reservoir {
    pub fn new(n: usize, seed: u64) -> Self {
        use rand::SeedableRng;
        Reservoir {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            n,
            seen: 0,
            items: Vec::with_capacity(n.min(4096)),
        }
    }

    /// Offers the next item of the stream.
    pub fn offer(&mut self, item: &str) {
        use rand::Rng;
        if self.n == 0 {
            return;
        }
        self.seen += 1;
        if self.items.len() < self.n {
            self.items.push(item.to_string());
        } else {
            let j = self.rng.random_range(0..self.seen);
            if j < self.n {
                self.items[j] = item.to_string();
            }
        }
    }

    pub fn into_items(self) -> Vec<String> {
        self.items
    }
}
