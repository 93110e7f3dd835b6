//! What happens to passes as time passes, run by the reservations job with its sweep: a reminder
//! `REMIND_DAYS` before a renewing pass's period ends; at the end, the renewal (charged the way
//! the pass was bought, keyed by the pass and period so a repeated sweep charges once) or, for a
//! cancelled pass, its end; a refused renewal ends the pass as `lapsed`. Pending passes whose
//! buyer went away mid-payment are settled (their payment resumed) after `PENDING_MINUTES`.

use super::buy::{payment_key, period_event};
use super::*;
use crate::domain::TimeRange;
use crate::domain::monthly::month_after;
use crate::domain::notification::{NewNotification, NotificationKind};
use crate::services::payments::{PaymentMethod, PaymentStatus};
use crate::services::reservations::SpotToKeep;
use chrono::Duration;
use warehouse_schema::{Event, EventPayload, SpotId};

/// Days before a period ends that a renewing holder is reminded.
pub const REMIND_DAYS: i64 = 3;
/// Minutes after which a pass still paying is settled by the sweep.
const PENDING_MINUTES: i64 = 15;

/// What one sweep of passes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassSweep {
    pub reminders: usize,
    pub renewed: usize,
    pub ended: usize,
    pub lapsed: usize,
    pub settled: usize,
}

impl MonthlyPasses<'_> {
    /// Remind, renew and end the passes due at `now`.
    pub async fn sweep_passes(&self, now: DateTime<Utc>) -> Result<PassSweep> {
        let mut report = PassSweep::default();
        let stale = (now - Duration::minutes(PENDING_MINUTES)).timestamp_millis();
        for row in rows::pending_since(self.store().pool(), stale).await? {
            if self.settle_first_period(row, None).await.is_ok() {
                report.settled += 1;
            }
        }
        let horizon = now + Duration::days(REMIND_DAYS);
        for row in rows::active_ending_by(self.store().pool(), horizon.timestamp_millis()).await? {
            if row.period_end > now.timestamp_millis() {
                if row.renews != 0 && self.remind(&row).await? {
                    report.reminders += 1;
                }
                continue;
            }
            match self.end_of_period(&row, now).await? {
                PeriodEnd::Renewed => report.renewed += 1,
                PeriodEnd::Ended => report.ended += 1,
                PeriodEnd::Lapsed => report.lapsed += 1,
                PeriodEnd::Moved => {}
            }
        }
        Ok(report)
    }

    async fn remind(&self, row: &PassRow) -> Result<bool> {
        let id = parse_pass_id(&row.id)?;
        let now = self.now();
        let mut change = self.store().begin_change(now).await?;
        if !rows::mark_reminded(&mut *change, id, row.period).await? {
            return Ok(false);
        }
        change.notify(NewNotification {
            user_id: user_of(row)?,
            kind: NotificationKind::MonthlyPass,
            dedup_key: format!("monthly-pass:{}:{}:reminder", id.0, row.period),
            lot_id: Some(LotId(row.lot_id)),
            title: row.name.clone(),
            body: format!(
                "Your monthly pass for {} renews on {} for {} {}; cancel before then to end it",
                row.plate,
                millis(row.period_end).format("%-d %b %Y"),
                crate::domain::Money::from_cents(row.price_cents),
                row.currency
            ),
        });
        change.commit().await?;
        Ok(true)
    }

    /// The period of `row` is over: renew it or end it.
    async fn end_of_period(&self, row: &PassRow, now: DateTime<Utc>) -> Result<PeriodEnd> {
        let id = parse_pass_id(&row.id)?;
        let holder = self.holder_of(row)?;
        if row.renews == 0 {
            return self.finish(row, PassStatus::Ended, now).await;
        }
        let Some(method) =
            PaymentMethod::from_stored(&row.method, row.token.as_deref(), row.last4.as_deref())
        else {
            return self.finish(row, PassStatus::Lapsed, now).await;
        };
        let next = row.period + 1;
        let paid = self
            .payments()
            .pay_monthly_pass(
                (holder.user, id),
                method,
                (row.price_cents, &row.currency),
                &payment_key(id, next),
            )
            .await?;
        if paid.status != PaymentStatus::Captured {
            return self.finish(row, PassStatus::Lapsed, now).await;
        }
        let start = millis(row.period_end);
        let window = TimeRange::new(start, month_after(start)?)?;
        let mut change = self.store().begin_change(now).await?;
        if let Some(hold) = &row.hold_id {
            rows::release_hold(&mut *change, hold).await?;
        }
        let kept = if row.keeps_spot != 0 {
            self.reservations()
                .keep_spot(
                    &mut change,
                    SpotToKeep {
                        pass: id,
                        period: next,
                        lot: holder.lot,
                        user: holder.user,
                        vehicle_type: holder.vehicle_type,
                        plate: &row.plate,
                        window,
                        prefer: row.spot_id.map(SpotId),
                    },
                )
                .await?
        } else {
            None
        };
        let hold = kept.as_ref().map(|k| (k.hold.0.to_string(), k.spot.0));
        let span = (
            window.start().timestamp_millis(),
            window.end().timestamp_millis(),
        );
        if !rows::renew(&mut *change, id, row.period, span, hold).await? {
            return Ok(PeriodEnd::Moved);
        }
        let renewed = PassRow {
            period: next,
            period_start: span.0,
            period_end: span.1,
            spot_id: kept.as_ref().map(|k| k.spot.0),
            ..row.clone()
        };
        change.event(Event::new(
            now,
            holder.lot,
            EventPayload::MonthlyPassRenewed(period_event(&renewed, id, holder.user)?),
        ));
        let spot_note = match (&kept, row.keeps_spot != 0) {
            (Some(k), _) => format!("; spot {} is kept for you", k.label),
            (None, true) => "; no spot could be kept this month, park in any free one".into(),
            (None, false) => String::new(),
        };
        change.notify(NewNotification {
            user_id: holder.user,
            kind: NotificationKind::MonthlyPass,
            dedup_key: format!("monthly-pass:{}:{next}:renewed", id.0),
            lot_id: Some(holder.lot),
            title: row.name.clone(),
            body: format!(
                "Your monthly pass for {} renewed until {}{spot_note}",
                row.plate,
                window.end().format("%-d %b %Y")
            ),
        });
        change.commit().await?;
        self.unindex(row);
        if let Some(k) = &kept {
            self.reservations().index_kept(holder.lot, k, window);
        }
        Ok(PeriodEnd::Renewed)
    }

    /// End `row` as `status` (`ended`: cancelled; `lapsed`: the renewal was refused).
    async fn finish(
        &self,
        row: &PassRow,
        status: PassStatus,
        now: DateTime<Utc>,
    ) -> Result<PeriodEnd> {
        let id = parse_pass_id(&row.id)?;
        let lapsed = status == PassStatus::Lapsed;
        let reason = if lapsed { "lapsed" } else { "cancelled" };
        let mut change = self.store().begin_change(now).await?;
        if !self
            .end_within(&mut change, row, (status, reason), now)
            .await?
        {
            return Ok(PeriodEnd::Moved);
        }
        if lapsed {
            change.notify(NewNotification {
                user_id: user_of(row)?,
                kind: NotificationKind::MonthlyPass,
                dedup_key: format!("monthly-pass:{}:{}:lapsed", id.0, row.period),
                lot_id: Some(LotId(row.lot_id)),
                title: row.name.clone(),
                body: format!(
                    "Your monthly pass for {} could not be renewed: the payment did not go through",
                    row.plate
                ),
            });
        }
        change.commit().await?;
        self.unindex(row);
        Ok(if lapsed {
            PeriodEnd::Lapsed
        } else {
            PeriodEnd::Ended
        })
    }
}

enum PeriodEnd {
    Renewed,
    Ended,
    Lapsed,
    /// Another sweep moved the pass first.
    Moved,
}
