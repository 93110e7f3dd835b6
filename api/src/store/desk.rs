//! The operator's desk: `inquiries` (drivers ask, admins answer once) and `admin_audit` (every
//! admin action, written in the transaction of the change it records). What an admin may do
//! is `crate::admin`'s.

use super::Db;
use crate::domain::Actor;
use crate::domain::error::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;
use warehouse_schema::UserId;

/// Record `action` on `target` by `actor`, inside the caller's transaction.
pub async fn audit<'c>(
    db: impl Db<'c>,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: Value,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO admin_audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now.timestamp_millis())
    .bind(actor.as_str())
    .bind(action)
    .bind(target)
    .bind(detail.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// An audit entry as read, with the acting account's e-mail while the account exists.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    pub email: Option<String>,
}

from_row!(AuditRow {
    at,
    actor,
    action,
    target,
    detail,
    email
});

/// The newest `limit` audit entries, newest first.
pub async fn audit_log<'c>(db: impl Db<'c>, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT a.at, a.actor, a.action, a.target, a.detail, u.email
         FROM admin_audit a LEFT JOIN users u ON a.actor = 'account:' || u.id
         ORDER BY a.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A new inquiry.
#[derive(Debug, Clone, Copy)]
pub struct NewInquiry<'a> {
    pub id: &'a str,
    pub user: UserId,
    pub reservation: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub created_at: i64,
}

pub async fn insert_inquiry<'c>(db: impl Db<'c>, i: NewInquiry<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO inquiries (id, user_id, reservation_id, subject, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(i.id)
    .bind(i.user.0.to_string())
    .bind(i.reservation)
    .bind(i.subject)
    .bind(i.body)
    .bind(i.created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// An inquiry as read; `email` is the asking driver's (admins' reads only).
#[derive(Debug, Clone)]
pub struct InquiryRow {
    pub id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub reservation_id: Option<String>,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
    pub answer: Option<String>,
    pub answered_at: Option<i64>,
}

from_row!(InquiryRow {
    id,
    user_id,
    email,
    reservation_id,
    subject,
    body,
    created_at,
    answer,
    answered_at,
});

const INQUIRY: &str = "SELECT i.id, i.user_id, u.email, i.reservation_id, i.subject, i.body, \
                       i.created_at, i.answer, i.answered_at \
                       FROM inquiries i LEFT JOIN users u ON u.id = i.user_id";

/// `user`'s inquiries, newest first.
pub async fn inquiries_of<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<InquiryRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{INQUIRY} WHERE i.user_id = $1 ORDER BY i.created_at DESC, i.id DESC"
    )))
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// The unanswered inquiries oldest first, then (if `answered`) the answered ones newest
/// first; at most `limit`.
pub async fn inquiries<'c>(db: impl Db<'c>, answered: bool, limit: i64) -> Result<Vec<InquiryRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{INQUIRY} WHERE i.answered_at IS NULL OR $1 = 1
         ORDER BY CASE WHEN i.answered_at IS NULL THEN 0 ELSE 1 END,
                  CASE WHEN i.answered_at IS NULL THEN i.created_at ELSE -i.answered_at END, i.id
         LIMIT $2"
    )))
    .bind(i64::from(answered))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

pub async fn inquiry<'c>(db: impl Db<'c>, id: &str) -> Result<Option<InquiryRow>> {
    Ok(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{INQUIRY} WHERE i.id = $1")))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// Answer inquiry `id` by `actor`; `false` when it has an answer already (of two admins
/// answering at once, one does).
pub async fn answer<'c>(
    db: impl Db<'c>,
    id: &str,
    answer: &str,
    actor: &str,
    at: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE inquiries SET answer = $1, answered_by = $2, answered_at = $3
         WHERE id = $4 AND answered_at IS NULL",
    )
    .bind(answer)
    .bind(actor)
    .bind(at)
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Delete `user`'s inquiries (their own words go with the account).
pub async fn delete_inquiries_of<'c>(db: impl Db<'c>, user: UserId) -> Result<()> {
    sqlx::query("DELETE FROM inquiries WHERE user_id = $1")
        .bind(user.0.to_string())
        .execute(db)
        .await?;
    Ok(())
}
