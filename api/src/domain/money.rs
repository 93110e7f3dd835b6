//! Money: an amount in the smallest unit of its currency (cents), whose arithmetic is checked.
//! An amount that would not fit is an error (`validation_failed`: it can only come from input
//! far outside what a lot charges), never a wrapped or truncated number.

use super::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

fn out_of_range() -> Error {
    Error::Invalid("the amount is out of range".into())
}

impl Money {
    pub const ZERO: Self = Self(0);

    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Self) -> Result<Self> {
        self.0
            .checked_add(other.0)
            .map(Self)
            .ok_or_else(out_of_range)
    }

    pub fn checked_sub(self, other: Self) -> Result<Self> {
        self.0
            .checked_sub(other.0)
            .map(Self)
            .ok_or_else(out_of_range)
    }

    /// The sum of `amounts`, or an error if it does not fit.
    pub fn sum(amounts: impl IntoIterator<Item = Self>) -> Result<Self> {
        amounts
            .into_iter()
            .try_fold(Self::ZERO, |sum, m| sum.checked_add(m))
    }

    /// `percent` % of this amount, rounded down to the cent (a refund never exceeds its share).
    pub fn percent(self, percent: u32) -> Result<Self> {
        let share = i128::from(self.0) * i128::from(percent) / 100;
        Self::fit(share)
    }

    /// An exact amount in cent-milliseconds of an hourly rate (rate × milliseconds), rounded
    /// up to the cent.
    pub fn from_cent_millis(cent_ms: i128) -> Result<Self> {
        const MS_PER_HOUR: i128 = 3_600_000;
        Self::fit(cent_ms.div_euclid(MS_PER_HOUR) + i128::from(cent_ms.rem_euclid(MS_PER_HOUR) > 0))
    }

    fn fit(cents: i128) -> Result<Self> {
        i64::try_from(cents).map(Self).map_err(|_| out_of_range())
    }
}

/// `12.34` (the currency is shown by the caller).
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::Money;

    #[test]
    fn arithmetic_is_checked_and_rounding_is_stated() {
        let m = Money::from_cents;
        assert_eq!(m(150).checked_add(m(250)).unwrap(), m(400));
        assert!(m(i64::MAX).checked_add(m(1)).is_err());
        assert!(m(i64::MIN).checked_sub(m(1)).is_err());
        assert!(Money::sum([m(i64::MAX), m(1)]).is_err());
        assert_eq!(Money::sum([m(1), m(2), m(3)]).unwrap(), m(6));
        // Refunds round down, charges up.
        assert_eq!(m(999).percent(50).unwrap(), m(499));
        assert_eq!(m(i64::MAX).percent(100).unwrap(), m(i64::MAX));
        // An hourly rate × milliseconds, rounded up to the cent: 1 s at 300/h is 1 cent,
        // 90 min at 250/h is 375, nothing is nothing, and an amount past i64 is an error.
        let ms = |s: i128| s * 1000;
        assert_eq!(Money::from_cent_millis(ms(1) * 300).unwrap(), m(1));
        assert_eq!(Money::from_cent_millis(ms(5400) * 250).unwrap(), m(375));
        assert_eq!(Money::from_cent_millis(0).unwrap(), Money::ZERO);
        assert!(Money::from_cent_millis(i128::from(i64::MAX) * 3_600_001).is_err());
        assert_eq!(m(123_456).to_string(), "1234.56");
        assert_eq!(m(-5).to_string(), "-0.05");
        assert_eq!(m(i64::MIN).to_string(), "-92233720368547758.08");
    }
}
