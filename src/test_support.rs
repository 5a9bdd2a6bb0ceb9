//! Helpers shared by the unit tests.

use rand::Rng;

/// A standard normal draw by Box–Muller (two uniforms per draw, in that order), for the
/// simulations of the statistics tests.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `n` uniform draws in `[-0.5, 0.5)` from a 64-bit LCG seeded with `seed`: fixed test
/// inputs for the kernels, the same on every platform.
pub fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

/// A model identity for records and calibrations in tests, told apart by `sha`.
pub fn identity(sha: &str) -> crate::model::ModelIdentity {
    crate::model::ModelIdentity {
        name: "m.gguf".into(),
        sha256: sha.into(),
        compute: "f32".into(),
        device: "cpu".into(),
        revision: None,
    }
}
