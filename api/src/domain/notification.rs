//! What a driver is told: the kinds of message and the message a change proposes. The
//! deduplication key makes proposing idempotent; storing and delivering are elsewhere.

use super::Money;
use chrono::{DateTime, Utc};
use serde::Serialize;
use warehouse_schema::{LotId, UserId};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A reservation was made.
    ReservationConfirmed,
    /// A reservation's window, vehicle or spot changed.
    ReservationModified,
    /// A reservation was cancelled by the driver.
    ReservationCancelled,
    /// "Lot A: 12 spaces left, expected full by 08:40", sent before a driver's likely arrival.
    ArrivalForecast,
    /// A reservation starts soon.
    ReservationReminder,
    /// A reservation has started and nobody has entered.
    NoShowWarning,
    /// A reservation was cancelled because nobody entered.
    NoShow,
    /// A payment was declined, failed or reversed, and its reservation cancelled.
    PaymentProblem,
    /// A waiter was booked automatically.
    WaitlistBooked,
    /// A waiter is told a spot is free for their window.
    WaitlistSpotFree,
    /// A waiter could not be served (their window no longer fits the booking rules).
    WaitlistEnded,
    /// An admin answered the driver's inquiry.
    InquiryAnswered,
    /// A new rate, and why, announced ahead to drivers who park at that lot and time.
    RateAnnounced,
    /// A monthly pass was bought, renews soon, renewed, or ended.
    MonthlyPass,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservationConfirmed => "reservation_confirmed",
            Self::ReservationModified => "reservation_modified",
            Self::ReservationCancelled => "reservation_cancelled",
            Self::ArrivalForecast => "arrival_forecast",
            Self::ReservationReminder => "reservation_reminder",
            Self::NoShowWarning => "no_show_warning",
            Self::NoShow => "no_show",
            Self::PaymentProblem => "payment_problem",
            Self::WaitlistBooked => "waitlist_booked",
            Self::WaitlistSpotFree => "waitlist_spot_free",
            Self::WaitlistEnded => "waitlist_ended",
            Self::InquiryAnswered => "inquiry_answered",
            Self::RateAnnounced => "rate_announced",
            Self::MonthlyPass => "monthly_pass",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub user_id: UserId,
    pub kind: NotificationKind,
    /// One message per key, ever.
    pub dedup_key: String,
    pub lot_id: Option<LotId>,
    pub title: String,
    pub body: String,
}

/// The message about a reservation event (confirmation, change, cancellation), with its
/// deduplication key: one per reservation and kind (and, for a change, per new window and spot).
#[allow(clippy::too_many_arguments)]
pub fn about_reservation(
    kind: NotificationKind,
    user: UserId,
    lot: LotId,
    reservation: warehouse_schema::ReservationId,
    tz: chrono_tz::Tz,
    window: (DateTime<Utc>, DateTime<Utc>),
    spot_label: &str,
    amount: (i64, &str),
) -> NewNotification {
    let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %d %b %H:%M").to_string();
    let (what, key) = match kind {
        NotificationKind::ReservationConfirmed => ("Reservation confirmed", "confirmed".to_owned()),
        NotificationKind::ReservationModified => (
            "Reservation changed",
            format!(
                "modified:{}-{}-{spot_label}",
                window.0.timestamp_millis(),
                window.1.timestamp_millis()
            ),
        ),
        _ => ("Reservation cancelled", "cancelled".to_owned()),
    };
    NewNotification {
        user_id: user,
        kind,
        dedup_key: format!("reservation:{}:{key}", reservation.0),
        lot_id: Some(lot),
        title: what.to_owned(),
        body: format!(
            "{what}: spot {spot_label}, {} to {}, {} {}",
            fmt(window.0),
            fmt(window.1),
            Money::from_cents(amount.0),
            amount.1
        ),
    }
}
