//! Scheduler and run records for the periodic jobs
