//! The refund policy of a cancellation: how much of what was paid comes back, by the notice
//! given before the reservation's start.

use super::Money;
use super::error::Result;
use serde::{Deserialize, Serialize};

/// The share refunded when cancelling at least `before_start_minutes` before the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundTier {
    pub before_start_minutes: u32,
    pub percent: u32,
}

/// Tiers, longest notice first; the first tier that applies wins, none applying refunds
/// nothing. In the configuration it is the list of tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefundPolicy(pub Vec<RefundTier>);

impl Default for RefundPolicy {
    /// Everything back a day ahead, half an hour ahead, nothing after.
    fn default() -> Self {
        Self(vec![
            RefundTier {
                before_start_minutes: 24 * 60,
                percent: 100,
            },
            RefundTier {
                before_start_minutes: 60,
                percent: 50,
            },
        ])
    }
}

impl RefundPolicy {
    /// Percent refunded when cancelling `notice_minutes` before the start (at most 100).
    pub fn percent(&self, notice_minutes: i64) -> u32 {
        self.0
            .iter()
            .find(|t| notice_minutes >= i64::from(t.before_start_minutes))
            .map_or(0, |t| t.percent.min(100))
    }

    /// What comes back of `paid` when cancelling `notice_minutes` before the start (rounded
    /// down to the cent), and the percent that gives.
    pub fn refund(&self, paid: Money, notice_minutes: i64) -> Result<(Money, u32)> {
        let percent = self.percent(notice_minutes);
        Ok((paid.percent(percent)?, percent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_follow_the_notice_given() {
        let c = RefundPolicy::default();
        assert_eq!(c.percent(2 * 24 * 60), 100);
        assert_eq!(c.percent(24 * 60), 100);
        assert_eq!(c.percent(90), 50);
        assert_eq!(c.percent(59), 0);
        assert_eq!(c.percent(-5), 0, "after the start");
        let paid = Money::from_cents(1_999);
        assert_eq!(c.refund(paid, 90).unwrap(), (Money::from_cents(999), 50));
        let generous = RefundPolicy(vec![RefundTier {
            before_start_minutes: 0,
            percent: 250,
        }]);
        assert_eq!(generous.percent(10), 100, "never more than was paid");
    }
}
