//! Evaluation of membership scores on labelled passages: ROC statistics with bootstrap
//! intervals, TPR at fixed low FPR, a blind baseline that never sees the model, a learned
//! combination of scores, and the dataset-level test.

pub mod baseline;
pub mod dataset;
pub mod logistic;
pub mod plot;
pub mod roc;
