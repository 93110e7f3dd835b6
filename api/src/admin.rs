//! What lot admins do beyond the lot API: edit a lot, close and reopen spots, search
//! reservations, answer drivers' inquiries; and the audit log that every admin action writes in
//! the transaction of the change it records.

use crate::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind, enqueue_in};
use crate::reservations::ReservationStatus;
use crate::reservations::holding;
use crate::service::{Lot, ParkingService, check_rate};
use crate::store::append_event;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
use uuid::Uuid;
use warehouse_schema::event::LotCapacityChanged;
use warehouse_schema::{Event, EventPayload, LotId, ReservationId, SpotId, UserId};

/// Who did an admin action: an admin account, or a holder of the static admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn account(user: UserId) -> Self {
        Self(format!("account:{}", user.0))
    }

    pub fn admin_token() -> Self {
        Self("admin-token".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Record `action` on `target` by `actor`, inside the caller's transaction.
pub(crate) async fn audit(
    conn: &mut sqlx::AnyConnection,
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
    .execute(conn)
    .await?;
    Ok(())
}

/// The fields of a lot an admin may change; `None` keeps the current value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LotChange {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub default_cents_per_hour: Option<i64>,
    #[serde(default)]
    pub ev_spots_open_to_cars: Option<bool>,
}

/// A spot as an admin sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpotStatus {
    pub id: SpotId,
    pub label: String,
    pub vehicle_type: String,
    pub closed: bool,
    /// A car is parked in it now.
    pub occupied: bool,
    /// Reservations of it that have not ended.
    pub upcoming_reservations: i64,
}

/// Filters of the reservation search; every one is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationQuery {
    #[serde(default)]
    pub lot: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    /// The driver's e-mail, exactly (case does not matter).
    #[serde(default)]
    pub email: Option<String>,
    /// Reservations whose window overlaps `[from, to)`.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
}

/// One hit of the reservation search.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRow {
    pub id: ReservationId,
    pub lot_id: LotId,
    pub lot_name: String,
    pub spot_label: String,
    /// `None` once the driver erased their account.
    pub email: Option<String>,
    pub vehicle_type: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub status: ReservationStatus,
    pub quote_cents: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewInquiry {
    pub subject: String,
    pub message: String,
    /// The reservation it is about, if any (it must be the driver's own).
    #[serde(default)]
    pub reservation_id: Option<ReservationId>,
}

/// A driver's question and, once given, the answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Inquiry {
    pub id: Uuid,
    /// The asking driver's e-mail (admins' view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub reservation_id: Option<String>,
    pub subject: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub answer: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
}

/// One row of the audit log.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// The admin account's e-mail, when the actor is an account that still exists.
    pub actor_email: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn inquiry_of(r: &sqlx::any::AnyRow, with_email: bool) -> Result<Inquiry> {
    let id: String = r.get("id");
    Ok(Inquiry {
        id: id
            .parse()
            .map_err(|_| Error::Invalid(format!("stored inquiry id {id}")))?,
        email: if with_email { r.get("email") } else { None },
        reservation_id: r.get("reservation_id"),
        subject: r.get("subject"),
        message: r.get("body"),
        created_at: millis(r.get("created_at")),
        answer: r.get("answer"),
        answered_at: r.get::<Option<i64>, _>("answered_at").map(millis),
    })
}

impl ParkingService {
    /// Change a lot's name, default rate or EV-spot policy.
    pub async fn update_lot(&self, actor: &Actor, lot: LotId, change: LotChange) -> Result<Lot> {
        let name = change
            .name
            .as_deref()
            .map(|n| crate::text::line("name", n, 200))
            .transpose()?;
        if let Some(rate) = change.default_cents_per_hour {
            check_rate(rate)?;
        }
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        self.lot_row(&mut tx, lot).await?;
        sqlx::query(
            "UPDATE lots SET name = COALESCE($1, name),
                    default_cents_per_hour = COALESCE($2, default_cents_per_hour),
                    ev_spots_open_to_cars = COALESCE($3, ev_spots_open_to_cars)
             WHERE id = $4",
        )
        .bind(&name)
        .bind(change.default_cents_per_hour)
        .bind(change.ev_spots_open_to_cars.map(i64::from))
        .bind(lot.0)
        .execute(&mut *tx)
        .await?;
        let detail = json!({
            "name": name,
            "defaultCentsPerHour": change.default_cents_per_hour,
            "evSpotsOpenToCars": change.ev_spots_open_to_cars,
        });
        audit(
            &mut tx,
            actor,
            "lot.update",
            &format!("lot {lot}"),
            detail,
            now,
        )
        .await?;
        tx.commit().await?;
        // The EV-spot policy is part of the availability index.
        self.availability().invalidate(lot);
        self.lot(lot).await
    }

    /// Every spot of `lot`, by label.
    pub async fn spots(&self, lot: LotId) -> Result<Vec<SpotStatus>> {
        let pool = self.store().pool();
        {
            let mut conn = pool.acquire().await?;
            self.lot_row(&mut conn, lot).await?;
        }
        let now = self.now().timestamp_millis();
        let rows = sqlx::query(concat!(
            "SELECT s.id, s.label, s.vehicle_type, s.closed,
                    (SELECT COUNT(*) FROM parking_sessions p WHERE p.spot_id = s.id AND p.exited_at IS NULL) AS occupied,
                    (SELECT COUNT(*) FROM reservations r WHERE r.spot_id = s.id AND r.end_at > $2 AND ",
            holding!("r"),
            ") AS upcoming
             FROM spots s WHERE s.lot_id = $1 ORDER BY s.label"
        ))
        .bind(lot.0)
        .bind(now)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SpotStatus {
                id: SpotId(r.get("id")),
                label: r.get("label"),
                vehicle_type: r.get("vehicle_type"),
                closed: r.get::<i64, _>("closed") != 0,
                occupied: r.get::<i64, _>("occupied") > 0,
                upcoming_reservations: r.get("upcoming"),
            })
            .collect())
    }

    /// Close a spot (no new entries or reservations take it) or reopen it. A spot that
    /// reservations still hold cannot be closed: they would lose their spot. A change records a
    /// `lot_capacity_changed` event with the lot's open spots; asking for the state the spot is
    /// already in changes nothing.
    pub async fn set_spot_closed(
        &self,
        actor: &Actor,
        lot: LotId,
        spot: SpotId,
        closed: bool,
    ) -> Result<SpotStatus> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT label, closed FROM spots WHERE id = $1 AND lot_id = $2")
                .bind(spot.0)
                .bind(lot.0)
                .fetch_optional(&mut *tx)
                .await?;
        let (label, was_closed) =
            row.ok_or_else(|| Error::NotFound(format!("spot {spot} in lot {lot}")))?;
        if (was_closed != 0) != closed {
            if closed {
                let held: i64 = sqlx::query_scalar(concat!(
                    "SELECT COUNT(*) FROM reservations WHERE spot_id = $1 AND end_at > $2 AND ",
                    holding!()
                ))
                .bind(spot.0)
                .bind(now.timestamp_millis())
                .fetch_one(&mut *tx)
                .await?;
                if held > 0 {
                    return Err(Error::conflict(
                        "spot_reserved",
                        format!(
                            "spot {label} is held by {held} reservation(s) that have not ended; cancel them first"
                        ),
                    ));
                }
            }
            sqlx::query("UPDATE spots SET closed = $1 WHERE id = $2")
                .bind(i64::from(closed))
                .bind(spot.0)
                .execute(&mut *tx)
                .await?;
            let open: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM spots WHERE lot_id = $1 AND closed = 0")
                    .bind(lot.0)
                    .fetch_one(&mut *tx)
                    .await?;
            let event = Event::new(
                now,
                lot,
                EventPayload::LotCapacityChanged(LotCapacityChanged {
                    capacity: open as i32,
                }),
            );
            append_event(&mut tx, &event).await?;
            let action = if closed { "spot.close" } else { "spot.reopen" };
            let target = format!("lot {lot} spot {label}");
            audit(
                &mut tx,
                actor,
                action,
                &target,
                json!({ "openSpots": open }),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.availability().invalidate(lot);
        self.spots(lot)
            .await?
            .into_iter()
            .find(|s| s.id == spot)
            .ok_or_else(|| Error::NotFound(format!("spot {spot} in lot {lot}")))
    }

    /// Reservations matching `q`, newest window first; at most `limit`.
    pub async fn search_reservations(
        &self,
        q: &ReservationQuery,
        limit: i64,
    ) -> Result<Vec<ReservationRow>> {
        if let Some(s) = q.status.as_deref() {
            s.parse::<ReservationStatus>().map_err(Error::Invalid)?;
        }
        if let (Some(from), Some(to)) = (q.from, q.to)
            && from >= to
        {
            return Err(Error::Invalid("`from` must be before `to`".into()));
        }
        let email = q.email.as_deref().map(|e| e.trim().to_lowercase());
        let rows = sqlx::query(
            "SELECT r.id, r.lot_id, l.name AS lot_name, s.label, u.email, r.vehicle_type, r.start_at,
                    r.end_at, r.status, r.quote_cents, r.currency
             FROM reservations r
             JOIN lots l ON l.id = r.lot_id
             JOIN spots s ON s.id = r.spot_id
             LEFT JOIN users u ON u.id = r.user_id
             WHERE ($1 IS NULL OR r.lot_id = $1) AND ($2 IS NULL OR r.status = $2)
               AND ($3 IS NULL OR u.email = $3) AND ($4 IS NULL OR r.end_at > $4)
               AND ($5 IS NULL OR r.start_at < $5)
             ORDER BY r.start_at DESC, r.id LIMIT $6",
        )
        .bind(q.lot)
        .bind(q.status.as_deref())
        .bind(email)
        .bind(q.from.map(|t| t.timestamp_millis()))
        .bind(q.to.map(|t| t.timestamp_millis()))
        .bind(limit)
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get("id");
                Ok(ReservationRow {
                    id: ReservationId(
                        id.parse()
                            .map_err(|_| Error::Invalid(format!("stored reservation id {id}")))?,
                    ),
                    lot_id: LotId(r.get("lot_id")),
                    lot_name: r.get("lot_name"),
                    spot_label: r.get("label"),
                    email: r.get("email"),
                    vehicle_type: r.get("vehicle_type"),
                    start_at: millis(r.get("start_at")),
                    end_at: millis(r.get("end_at")),
                    status: r
                        .get::<String, _>("status")
                        .parse()
                        .map_err(Error::Invalid)?,
                    quote_cents: r.get("quote_cents"),
                    currency: r.get("currency"),
                })
            })
            .collect()
    }

    /// A driver asks the operator something.
    pub async fn open_inquiry(&self, user: UserId, new: NewInquiry) -> Result<Inquiry> {
        let subject = crate::text::line("subject", &new.subject, 200)?;
        let message = crate::text::paragraphs("message", &new.message, 4000)?;
        if let Some(r) = new.reservation_id {
            self.reservation_of(user, r).await?;
        }
        let id = Uuid::now_v7();
        let now = self.now();
        sqlx::query(
            "INSERT INTO inquiries (id, user_id, reservation_id, subject, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(user.0.to_string())
        .bind(new.reservation_id.map(|r| r.0.to_string()))
        .bind(&subject)
        .bind(&message)
        .bind(now.timestamp_millis())
        .execute(self.store().writer())
        .await?;
        Ok(Inquiry {
            id,
            email: None,
            reservation_id: new.reservation_id.map(|r| r.0.to_string()),
            subject,
            message,
            created_at: millis(now.timestamp_millis()),
            answer: None,
            answered_at: None,
        })
    }

    /// A driver's inquiries, newest first.
    pub async fn inquiries_of(&self, user: UserId) -> Result<Vec<Inquiry>> {
        sqlx::query(
            "SELECT id, reservation_id, subject, body, created_at, answer, answered_at
             FROM inquiries WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(user.0.to_string())
        .fetch_all(self.store().pool())
        .await?
        .iter()
        .map(|r| inquiry_of(r, false))
        .collect()
    }

    /// Inquiries for the admins: the unanswered ones oldest first, then (if asked) the answered
    /// ones newest first; at most `limit`.
    pub async fn inquiries(&self, include_answered: bool, limit: i64) -> Result<Vec<Inquiry>> {
        sqlx::query(
            "SELECT i.id, u.email, i.reservation_id, i.subject, i.body, i.created_at, i.answer, i.answered_at
             FROM inquiries i LEFT JOIN users u ON u.id = i.user_id
             WHERE i.answered_at IS NULL OR $1 = 1
             ORDER BY CASE WHEN i.answered_at IS NULL THEN 0 ELSE 1 END,
                      CASE WHEN i.answered_at IS NULL THEN i.created_at ELSE -i.answered_at END, i.id
             LIMIT $2",
        )
        .bind(i64::from(include_answered))
        .bind(limit)
        .fetch_all(self.store().pool())
        .await?
        .iter()
        .map(|r| inquiry_of(r, true))
        .collect()
    }

    /// Answer an inquiry, once; the driver gets the answer as a message.
    pub async fn answer_inquiry(&self, actor: &Actor, id: Uuid, answer: &str) -> Result<Inquiry> {
        let answer = crate::text::paragraphs("answer", answer, 4000)?;
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let row: Option<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT user_id, subject, answered_at FROM inquiries WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let (user, subject, answered) =
            row.ok_or_else(|| Error::NotFound(format!("inquiry {id}")))?;
        if answered.is_some() {
            return Err(Error::conflict(
                "already_answered",
                "this inquiry has an answer already",
            ));
        }
        sqlx::query(
            "UPDATE inquiries SET answer = $1, answered_by = $2, answered_at = $3 WHERE id = $4",
        )
        .bind(&answer)
        .bind(actor.as_str())
        .bind(now.timestamp_millis())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let user_id = UserId(
            user.parse()
                .map_err(|_| Error::Invalid(format!("stored user id {user}")))?,
        );
        let message = NewNotification {
            user_id,
            kind: NotificationKind::InquiryAnswered,
            dedup_key: format!("inquiry:{id}:answered"),
            lot_id: None,
            title: format!("Re: {subject}"),
            body: answer.clone(),
        };
        enqueue_in(&mut tx, &message, now).await?;
        audit(
            &mut tx,
            actor,
            "inquiry.answer",
            &format!("inquiry {id}"),
            json!({ "subject": subject }),
            now,
        )
        .await?;
        tx.commit().await?;
        let row = sqlx::query(
            "SELECT i.id, u.email, i.reservation_id, i.subject, i.body, i.created_at, i.answer, i.answered_at
             FROM inquiries i LEFT JOIN users u ON u.id = i.user_id WHERE i.id = $1",
        )
        .bind(id.to_string())
        .fetch_one(self.store().pool())
        .await?;
        inquiry_of(&row, true)
    }

    /// The newest `limit` entries of the audit log, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT a.at, a.actor, a.action, a.target, a.detail, u.email
             FROM admin_audit a LEFT JOIN users u ON a.actor = 'account:' || u.id
             ORDER BY a.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.store().pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at: millis(r.get("at")),
                actor: r.get("actor"),
                actor_email: r.get("email"),
                action: r.get("action"),
                target: r.get("target"),
                detail: r.get("detail"),
            })
            .collect())
    }
}
