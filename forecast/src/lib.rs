//! Arrival forecasting with linfa and backtests against baselines
