//! Synthetic lots, drivers and demand for demo, benchmarks and evaluation
