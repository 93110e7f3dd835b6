//! Operational API: lots, spots, check-in/out, rates, outbox
