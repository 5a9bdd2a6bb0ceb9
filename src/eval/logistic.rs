//! L2-regularised logistic regression on sparse features, trained by deterministic
//! shuffled SGD: the blind baseline's text classifier and the dataset test's combination of
//! scores.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A sparse feature vector: `(index, value)`.
pub type Features = Vec<(u32, f64)>;

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub epochs: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            epochs: 30,
            learning_rate: 0.2,
            l2: 1e-4,
            seed: 0,
        }
    }
}

/// A trained model: weights over `dim` features and a bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    /// Fits `P(y = 1 | x)`.
    pub fn fit(x: &[Features], y: &[bool], dim: usize, s: Settings) -> Logistic {
        let mut w = vec![0f64; dim];
        let mut b = 0f64;
        let mut order: Vec<usize> = (0..x.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        for epoch in 0..s.epochs {
            order.shuffle(&mut rng);
            let lr = s.learning_rate / (1.0 + epoch as f64 * 0.1);
            for &i in &order {
                let z = b + x[i].iter().map(|&(j, v)| w[j as usize] * v).sum::<f64>();
                let g = sigmoid(z) - if y[i] { 1.0 } else { 0.0 };
                for &(j, v) in &x[i] {
                    let wj = &mut w[j as usize];
                    *wj -= lr * (g * v + s.l2 * *wj);
                }
                b -= lr * g;
            }
        }
        Logistic {
            weights: w,
            bias: b,
        }
    }

    /// The decision value `w·x + b` (monotone in the probability; higher = class 1).
    pub fn decision(&self, x: &Features) -> f64 {
        self.bias
            + x.iter()
                .map(|&(j, v)| self.weights[j as usize] * v)
                .sum::<f64>()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Stratified k-fold assignment: fold index per sample, classes spread evenly, shuffled with
/// the seed.
pub fn folds(y: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; y.len()];
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        idx.shuffle(&mut rng);
        for (n, i) in idx.into_iter().enumerate() {
            fold[i] = n % k;
        }
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_a_separable_problem() {
        let x: Vec<Features> = (0..40)
            .map(|i| vec![(0, i as f64 / 40.0), (1, 1.0)])
            .collect();
        let y: Vec<bool> = (0..40).map(|i| i >= 20).collect();
        let m = Logistic::fit(
            &x,
            &y,
            2,
            Settings {
                epochs: 200,
                learning_rate: 1.0,
                ..Default::default()
            },
        );
        assert!(m.decision(&x[39]) > m.decision(&x[0]));
        assert!(m.decision(&x[35]) > 0.0 && m.decision(&x[5]) < 0.0);
    }

    #[test]
    fn folds_are_stratified() {
        let y: Vec<bool> = (0..100).map(|i| i % 4 == 0).collect();
        let f = folds(&y, 5, 1);
        for k in 0..5 {
            let pos = (0..100).filter(|&i| f[i] == k && y[i]).count();
            assert_eq!(pos, 5);
        }
    }
}
