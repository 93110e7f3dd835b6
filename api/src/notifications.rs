//! The notification outbox: messages for drivers, written by the jobs that propose them and read
//! by the service that delivers them. A deduplication key makes proposing idempotent: the same
//! message proposed twice (a job re-run, a retry) is stored once.

use crate::error::Result;
use crate::store::Store;
use crate::store::notifications as rows;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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
            "{what}: spot {spot_label}, {} to {}, {}.{:02} {}",
            fmt(window.0),
            fmt(window.1),
            amount.0 / 100,
            amount.0 % 100,
            amount.1
        ),
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: i64,
    pub user_id: String,
    pub kind: String,
    #[serde(skip)]
    pub dedup_key: String,
    pub lot_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Store `n` unless a message with its key exists. Returns whether it was new.
pub async fn enqueue(store: &Store, n: &NewNotification, now: DateTime<Utc>) -> Result<bool> {
    let mut conn = store.writer().acquire().await?;
    enqueue_in(&mut conn, n, now).await
}

/// [`enqueue`] inside the caller's transaction: the message commits with the change it reports.
pub async fn enqueue_in(
    conn: &mut sqlx::AnyConnection,
    n: &NewNotification,
    now: DateTime<Utc>,
) -> Result<bool> {
    let message = rows::NewMessage {
        user: n.user_id,
        kind: n.kind.as_str(),
        dedup_key: &n.dedup_key,
        lot: n.lot_id.map(|l| l.0),
        title: &n.title,
        body: &n.body,
        created_at: now.timestamp_millis(),
    };
    rows::insert_message(conn, message).await
}

/// Messages not delivered yet, oldest first.
pub async fn unsent(store: &Store, limit: i64) -> Result<Vec<Notification>> {
    let found = rows::unsent(store.pool(), limit).await?;
    Ok(found.into_iter().map(notification).collect())
}

/// `user`'s messages, newest first (the in-app inbox).
pub async fn of_user(store: &Store, user: UserId, limit: i64) -> Result<Vec<Notification>> {
    let found = rows::of_user(store.pool(), user, limit).await?;
    Ok(found.into_iter().map(notification).collect())
}

fn notification(row: rows::MessageRow) -> Notification {
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Notification {
        id: row.id,
        user_id: row.user_id,
        kind: row.kind,
        dedup_key: row.dedup_key,
        lot_id: row.lot_id,
        title: row.title,
        body: row.body,
        created_at: at(row.created_at),
        sent_at: row.sent_at.map(at),
    }
}

/// A driver's channel choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    pub email: bool,
    pub push: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            email: true,
            push: true,
        }
    }
}

pub async fn preferences(store: &Store, user: UserId) -> Result<Preferences> {
    let saved = crate::store::notifications::preferences(store.pool(), user).await?;
    Ok(
        saved.map_or_else(Preferences::default, |(email, push)| Preferences {
            email,
            push,
        }),
    )
}

pub async fn set_preferences(store: &Store, user: UserId, p: Preferences) -> Result<()> {
    crate::store::notifications::set_preferences(store.writer(), user, p.email, p.push).await
}
