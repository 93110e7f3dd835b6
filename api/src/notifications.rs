//! The notification outbox: messages for drivers, written by the jobs that propose them and read
//! by the service that delivers them. A deduplication key makes proposing idempotent: the same
//! message proposed twice (a job re-run, a retry) is stored once.

use crate::domain::error::Result;
use crate::store::Store;
use crate::store::notifications as rows;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warehouse_schema::UserId;

pub use crate::domain::notification::{NewNotification, NotificationKind, about_reservation};

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

/// Store `n` unless a message with its key exists. Returns whether it was new. (A message
/// that reports a state change is sent with it instead: [`crate::store::Change::notify`].)
pub async fn enqueue(store: &Store, n: &NewNotification, now: DateTime<Utc>) -> Result<bool> {
    rows::insert_message(store.writer(), rows::NewMessage::of(n, now)).await
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

/// `user`'s messages after message `after`, oldest first (at most `limit`).
pub async fn of_user_after(
    store: &Store,
    user: UserId,
    after: i64,
    limit: i64,
) -> Result<Vec<Notification>> {
    let found = rows::of_user_after(store.pool(), user, after, limit).await?;
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
