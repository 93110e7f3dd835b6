//! `notification_outbox` (one row per message, deduplicated by key), `notification_deliveries`
//! (one row per message and channel) and `notification_preferences`. What a message says is
//! `crate::notifications`'s; how it is sent, and retried, is `parkflow_delivery`'s.

use super::Db;
use crate::domain::DeliveryStatus;
use crate::domain::error::Result;
use crate::domain::notification::NewNotification;
use chrono::{DateTime, Utc};
use warehouse_schema::UserId;

/// A message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    pub user: UserId,
    pub kind: &'a str,
    pub dedup_key: &'a str,
    pub lot: Option<i64>,
    pub title: &'a str,
    pub body: &'a str,
    pub created_at: i64,
}

impl<'a> NewMessage<'a> {
    /// The row of `message`, proposed at `now`.
    pub fn of(message: &'a NewNotification, now: DateTime<Utc>) -> Self {
        Self {
            user: message.user_id,
            kind: message.kind.as_str(),
            dedup_key: &message.dedup_key,
            lot: message.lot_id.map(|l| l.0),
            title: &message.title,
            body: &message.body,
            created_at: now.timestamp_millis(),
        }
    }
}

/// A message as stored.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub user_id: String,
    pub kind: String,
    pub dedup_key: String,
    pub lot_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

from_row!(MessageRow {
    id,
    user_id,
    kind,
    dedup_key,
    lot_id,
    title,
    body,
    created_at,
    sent_at
});

/// A delivery whose next attempt is due, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub notification_id: i64,
    pub channel: String,
    pub attempts: i64,
    pub user_id: String,
    pub title: String,
    pub body: String,
    pub kind: String,
    pub created_at: i64,
    /// None when the account was erased meanwhile.
    pub email: Option<String>,
}

from_row!(DueDelivery {
    notification_id,
    channel,
    attempts,
    user_id,
    title,
    body,
    kind,
    created_at,
    email
});

const MESSAGE_COLUMNS: &str =
    "id, user_id, kind, dedup_key, lot_id, title, body, created_at, sent_at";

/// Store a message unless one with its key exists. True when it was new.
pub async fn insert_message<'c>(db: impl Db<'c>, m: NewMessage<'_>) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO notification_outbox (user_id, kind, dedup_key, lot_id, title, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(m.user.0.to_string())
    .bind(m.kind)
    .bind(m.dedup_key)
    .bind(m.lot)
    .bind(m.title)
    .bind(m.body)
    .bind(m.created_at)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Messages not delivered yet, oldest first.
pub async fn unsent<'c>(db: impl Db<'c>, limit: i64) -> Result<Vec<MessageRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM notification_outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// `user`'s messages, newest first.
pub async fn of_user<'c>(db: impl Db<'c>, user: UserId, limit: i64) -> Result<Vec<MessageRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM notification_outbox WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    )))
    .bind(user.0.to_string())
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// `user`'s messages after message `after`, oldest first.
pub async fn of_user_after<'c>(
    db: impl Db<'c>,
    user: UserId,
    after: i64,
    limit: i64,
) -> Result<Vec<MessageRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM notification_outbox WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(user.0.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// The newest message's id (0 when there is none).
pub async fn head<'c>(db: impl Db<'c>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notification_outbox")
            .fetch_one(db)
            .await?,
    )
}

/// Who the messages after `after` are for: (message id, user id), by id.
pub async fn recipients_after<'c>(
    db: impl Db<'c>,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id FROM notification_outbox WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// `user`'s channel choices as stored (None: never saved), e-mail then push.
pub async fn preferences<'c>(db: impl Db<'c>, user: UserId) -> Result<Option<(bool, bool)>> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT email, push FROM notification_preferences WHERE user_id = $1")
            .bind(user.0.to_string())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(email, push)| (email != 0, push != 0)))
}

pub async fn set_preferences<'c>(
    db: impl Db<'c>,
    user: UserId,
    email: bool,
    push: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, email, push) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET email = $2, push = $3",
    )
    .bind(user.0.to_string())
    .bind(i64::from(email))
    .bind(i64::from(push))
    .execute(db)
    .await?;
    Ok(())
}

/// Messages not fanned out to their channels yet, with their driver's choices (`defaults`
/// where none are saved): id, e-mail, push.
pub async fn not_fanned_out<'c>(
    db: impl Db<'c>,
    defaults: (bool, bool),
    limit: i64,
) -> Result<Vec<(i64, bool, bool)>> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT n.id, COALESCE(p.email, $2), COALESCE(p.push, $3) FROM notification_outbox n
         LEFT JOIN notification_preferences p ON p.user_id = n.user_id
         WHERE n.sent_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.id)
         ORDER BY n.id LIMIT $1",
    )
    .bind(limit)
    .bind(i64::from(defaults.0))
    .bind(i64::from(defaults.1))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, email, push)| (id, email != 0, push != 0))
        .collect())
}

/// A delivery row for one channel of a message (kept as it is if there is one).
pub async fn insert_delivery<'c>(
    db: impl Db<'c>,
    notification: i64,
    channel: &str,
    status: DeliveryStatus,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_deliveries (notification_id, channel, status, attempts, next_attempt_at, delivered_at)
         VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT (notification_id, channel) DO NOTHING",
    )
    .bind(notification)
    .bind(channel)
    .bind(status.as_str())
    .bind(now)
    .bind((status == DeliveryStatus::Delivered).then_some(now))
    .execute(db)
    .await?;
    Ok(())
}

/// Pending deliveries whose next attempt is due at `now`, soonest first.
pub async fn due<'c>(db: impl Db<'c>, now: i64, limit: i64) -> Result<Vec<DueDelivery>> {
    Ok(sqlx::query_as(
        "SELECT d.notification_id, d.channel, d.attempts, n.user_id, n.title, n.body, n.kind, n.created_at,
                u.email
         FROM notification_deliveries d
         JOIN notification_outbox n ON n.id = d.notification_id
         LEFT JOIN users u ON u.id = n.user_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1
         ORDER BY d.next_attempt_at, d.notification_id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A failed attempt that will be tried again at `next_attempt_at`.
pub async fn retry_later<'c>(
    db: impl Db<'c>,
    notification: i64,
    channel: &str,
    attempts: i64,
    error: &str,
    next_attempt_at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE notification_deliveries SET attempts = $1, last_error = $2, next_attempt_at = $3
         WHERE notification_id = $4 AND channel = $5",
    )
    .bind(attempts)
    .bind(error)
    .bind(next_attempt_at)
    .bind(notification)
    .bind(channel)
    .execute(db)
    .await?;
    Ok(())
}

/// A delivery that is over: `Delivered` (at `now`) or `Failed` with its last error.
pub async fn finish_delivery<'c>(
    db: impl Db<'c>,
    notification: i64,
    channel: &str,
    status: DeliveryStatus,
    attempts: i64,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE notification_deliveries SET status = $1, attempts = $2, last_error = $3, delivered_at = $4
         WHERE notification_id = $5 AND channel = $6",
    )
    .bind(status.as_str())
    .bind(attempts)
    .bind(error)
    .bind((status == DeliveryStatus::Delivered).then_some(now))
    .bind(notification)
    .bind(channel)
    .execute(db)
    .await?;
    Ok(())
}

/// Mark sent, at `now`, every fanned-out message with no delivery still pending.
pub async fn mark_finished_sent<'c>(db: impl Db<'c>, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE notification_outbox SET sent_at = $1
         WHERE sent_at IS NULL
           AND EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = notification_outbox.id)
           AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
                           WHERE d.notification_id = notification_outbox.id AND d.status = 'pending')",
    )
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Delete `user`'s messages, their deliveries and their channel choices (erasure, inside its
/// transaction). Returns the messages deleted.
pub async fn delete_user(conn: &mut crate::store::Conn, user: UserId) -> Result<u64> {
    let id = user.0.to_string();
    sqlx::query(
        "DELETE FROM notification_deliveries WHERE notification_id IN (SELECT id FROM notification_outbox WHERE user_id = $1)",
    )
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    let messages = sqlx::query("DELETE FROM notification_outbox WHERE user_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM notification_preferences WHERE user_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    Ok(messages)
}
