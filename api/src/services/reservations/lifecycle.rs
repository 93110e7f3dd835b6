//! What happens to a reservation as its time comes without the driver doing anything:
//! reminders before it starts, a no-show warning when nobody has entered a while after the
//! start, and at last the cancellation as `no_show`, which frees the spot.
//!
//! [`Services::sweep_reservations`] is run every minute by a job. Every step is idempotent:
//! messages are deduplicated by (reservation, kind) in the notification outbox, and the no-show
//! update only touches a reservation that is still `active`.

use crate::domain::ReservationStatus;
use crate::domain::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind};
use crate::services::Reservations;
use crate::services::monthly::PassSweep;
use crate::store::reservations as rows;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use warehouse_schema::event::ReservationRef;
use warehouse_schema::{Event, EventPayload, LotId, ReservationId, UserId};

/// When reminders, warnings and the no-show cancellation happen, in minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReservationTimers {
    /// Reminders this many minutes before the start; only the nearest one still ahead is sent.
    pub reminders_before_start: Vec<u32>,
    /// Warn the driver this long after the start if nobody has entered.
    pub no_show_warning_after: u32,
    /// Cancel as `no_show` this long after the start if nobody has entered.
    pub no_show_after: u32,
}

impl Default for ReservationTimers {
    fn default() -> Self {
        Self {
            reminders_before_start: vec![60, 15],
            no_show_warning_after: 15,
            no_show_after: 60,
        }
    }
}

impl ReservationTimers {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.no_show_after <= self.no_show_warning_after {
            return Err("no_show_after must be later than no_show_warning_after".into());
        }
        Ok(())
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub reminders: usize,
    pub warnings: usize,
    pub no_shows: usize,
}

/// What one run of the `reservations` job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobReport {
    pub reservations: SweepReport,
    /// Waiters the lots' waitlists booked.
    pub waitlist_served: usize,
    pub passes: PassSweep,
}

impl JobReport {
    /// Everything the run acted on.
    pub fn acted_on(&self) -> usize {
        let r = &self.reservations;
        let p = &self.passes;
        r.reminders
            + r.warnings
            + r.no_shows
            + self.waitlist_served
            + p.reminders
            + p.renewed
            + p.ended
            + p.lapsed
            + p.settled
    }
}

/// What a proposed message counts as in the [`SweepReport`] once stored.
enum Proposed {
    Reminder,
    Warning,
}

struct Due {
    id: ReservationId,
    user: UserId,
    lot: LotId,
    lot_name: String,
    tz: Tz,
    spot_label: String,
    start_at: DateTime<Utc>,
}

impl Due {
    /// The message of kind `kind` about this reservation, deduplicated by `key`.
    fn message(&self, kind: NotificationKind, key: &str, body: String) -> NewNotification {
        NewNotification {
            user_id: self.user,
            kind,
            dedup_key: format!("reservation:{}:{key}", self.id),
            lot_id: Some(self.lot),
            title: self.lot_name.clone(),
            body,
        }
    }
}

impl Reservations<'_> {
    /// The `reservations` job at `now`, for every lot: the reservations' reminders, warnings and
    /// no-shows; the waitlists of the lots with waiters (windows freed in another process, or
    /// expired); the monthly passes' reminders, renewals and ends. `parkflow serve` schedules
    /// it; the simulator runs it between its time slices.
    pub async fn run_reservations_job(
        &self,
        now: DateTime<Utc>,
        timers: &ReservationTimers,
    ) -> Result<JobReport> {
        let reservations = self.sweep_reservations(now, timers).await?;
        let mut waitlist_served = 0;
        for lot in self.waitlist().lots_with_waiters().await? {
            waitlist_served += self.waitlist().serve_waitlist(lot).await?;
        }
        let passes = self.monthly_passes().sweep_passes(now).await?;
        Ok(JobReport {
            reservations,
            waitlist_served,
            passes,
        })
    }

    /// Send the reminders and warnings that are due at `now`, and cancel the no-shows.
    ///
    /// Each no-show is a change of its own (with its event and its message); the reminders and
    /// warnings of the sweep are written together in one change at its end. A reservation is
    /// proposed its reminder on every run until it starts (four runs of the simulator's 15
    /// minutes for the 60-minute one); all but the first find its key stored.
    pub async fn sweep_reservations(
        &self,
        now: DateTime<Utc>,
        timers: &ReservationTimers,
    ) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let furthest = timers
            .reminders_before_start
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        let due = self
            .active_starting_by(now + Duration::minutes(i64::from(furthest)))
            .await?;
        let mut proposed: Vec<(NewNotification, Proposed)> = Vec::new();
        for r in due {
            let since_start = now - r.start_at;
            let local = r.start_at.with_timezone(&r.tz).format("%H:%M");
            if since_start >= Duration::minutes(i64::from(timers.no_show_after)) {
                let message = r.message(
                    NotificationKind::NoShow,
                    "no_show",
                    format!(
                        "{}: your reservation from {local} was cancelled because nobody entered within {} minutes; spot {} is free again",
                        r.lot_name, timers.no_show_after, r.spot_label
                    ),
                );
                if self.mark_no_show(&r, message, now).await? {
                    report.no_shows += 1;
                }
            } else if since_start >= Duration::minutes(i64::from(timers.no_show_warning_after)) {
                let left = i64::from(timers.no_show_after) - since_start.num_minutes();
                let message = r.message(
                    NotificationKind::NoShowWarning,
                    "no_show_warning",
                    format!(
                        "{}: your reservation started at {local}; enter within {left} minutes or it will be cancelled",
                        r.lot_name
                    ),
                );
                proposed.push((message, Proposed::Warning));
            } else if since_start < Duration::zero() {
                let ahead = (r.start_at - now).num_minutes();
                // The nearest reminder still ahead of the start: a reservation made ten
                // minutes before its start gets the 15-minute one only.
                let Some(minutes) = timers
                    .reminders_before_start
                    .iter()
                    .copied()
                    .filter(|m| i64::from(*m) >= ahead)
                    .min()
                else {
                    continue;
                };
                let message = r.message(
                    NotificationKind::ReservationReminder,
                    &format!("reminder_{minutes}m"),
                    format!(
                        "{}: your reservation starts at {local}, spot {}",
                        r.lot_name, r.spot_label
                    ),
                );
                proposed.push((message, Proposed::Reminder));
            }
        }
        if !proposed.is_empty() {
            let mut change = self.store().begin_change(now).await?;
            for (message, what) in &proposed {
                if change.notify_unless_sent(message).await? {
                    match what {
                        Proposed::Reminder => report.reminders += 1,
                        Proposed::Warning => report.warnings += 1,
                    }
                }
            }
            change.commit().await?;
        }
        Ok(report)
    }

    /// `active` reservations (nobody entered yet) starting by `to`; those long past their start
    /// are the no-shows a stopped job did not get to.
    async fn active_starting_by(&self, to: DateTime<Utc>) -> Result<Vec<Due>> {
        let due = rows::active_starting_by(self.store().pool(), to.timestamp_millis()).await?;
        due.into_iter()
            .map(|r| {
                let bad =
                    |what: &str| Error::Invalid(format!("stored reservation {}: {what}", r.id));
                Ok(Due {
                    id: ReservationId(r.id.parse().map_err(|_| bad("id"))?),
                    user: UserId(r.user_id.parse().map_err(|_| bad("user"))?),
                    lot: LotId(r.lot_id),
                    tz: r.time_zone.parse().map_err(|_| bad("time zone"))?,
                    start_at: DateTime::from_timestamp_millis(r.start_at)
                        .ok_or_else(|| bad("start"))?,
                    lot_name: r.name,
                    spot_label: r.label,
                })
            })
            .collect()
    }

    /// Cancel `r` as a no-show if it is still `active`, telling the driver with `message`;
    /// returns whether this call did it.
    async fn mark_no_show(
        &self,
        r: &Due,
        message: NewNotification,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.store().begin_change(now).await?;
        let no_show = ReservationStatus::NoShow;
        if !rows::end_active(&mut *tx, r.id, no_show, now.timestamp_millis(), None).await? {
            return Ok(false);
        }
        let event = Event::new(
            now,
            r.lot,
            EventPayload::ReservationNoShow(ReservationRef {
                reservation_id: r.id,
                reason: Some("no_entry".into()),
            }),
        );
        tx.event(event).notify(message);
        tx.commit().await?;
        self.waitlist().released(r.lot, r.id).await;
        Ok(true)
    }
}
