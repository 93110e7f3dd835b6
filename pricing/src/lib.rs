//! Pricing policies turning occupancy into rate schedules
