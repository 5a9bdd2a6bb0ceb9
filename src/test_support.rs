//! Helpers shared by the unit tests.

use rand::Rng;

/// A standard normal draw by Box–Muller (two uniforms per draw, in that order), for the
/// simulations of the statistics tests.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
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
