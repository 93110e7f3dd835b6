//! What lot admins do beyond the lot API: edit a lot, close and reopen spots, search
//! reservations, answer drivers' inquiries; and the audit log that every admin action writes in
//! the transaction of the change it records.

use crate::domain::error::{Error, Result};
use crate::notifications::{NewNotification, NotificationKind};
use crate::services::reservations::ReservationStatus;
use crate::services::{Admin, Lot, check_rate};
use crate::store::{desk, lots, reservations};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use warehouse_schema::event::LotCapacityChanged;
use warehouse_schema::{Event, EventPayload, LotId, ReservationId, SpotId, UserId};

pub use crate::domain::Actor;
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

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewInquiry {
    #[schema(schema_with = crate::domain::schema::line_200)]
    pub subject: String,
    #[schema(schema_with = crate::domain::schema::paragraphs_4000)]
    pub message: String,
    /// The reservation it is about, if any (it must be the driver's own).
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_uuid)]
    pub reservation_id: Option<ReservationId>,
}

/// A driver's question and, once given, the answer.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
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

fn inquiry_of(r: desk::InquiryRow, with_email: bool) -> Result<Inquiry> {
    Ok(Inquiry {
        id: r
            .id
            .parse()
            .map_err(|_| Error::Invalid(format!("stored inquiry id {}", r.id)))?,
        email: if with_email { r.email } else { None },
        reservation_id: r.reservation_id,
        subject: r.subject,
        message: r.body,
        created_at: millis(r.created_at),
        answer: r.answer,
        answered_at: r.answered_at.map(millis),
    })
}

impl Admin<'_> {
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
        let mut tx = self.store().begin_change(now).await?;
        self.lots().lot_row(&mut tx, lot).await?;
        let edit = lots::LotEdit {
            name: name.as_deref(),
            default_cents_per_hour: change.default_cents_per_hour,
            ev_spots_open_to_cars: change.ev_spots_open_to_cars,
        };
        lots::edit(&mut *tx, lot, edit).await?;
        let detail = json!({
            "name": name,
            "defaultCentsPerHour": change.default_cents_per_hour,
            "evSpotsOpenToCars": change.ev_spots_open_to_cars,
        });
        tx.audit(actor, "lot.update", format!("lot {lot}"), detail);
        tx.commit().await?;
        // The EV-spot policy is part of the availability index.
        self.availability().invalidate(lot);
        self.lots().lot(lot).await
    }

    /// Every spot of `lot`, by label.
    pub async fn spots(&self, lot: LotId) -> Result<Vec<SpotStatus>> {
        let pool = self.store().pool();
        {
            let mut conn = pool.acquire().await?;
            self.lots().lot_row(&mut conn, lot).await?;
        }
        let now = self.now().timestamp_millis();
        let rows = lots::spot_states(pool, lot, now).await?;
        Ok(rows
            .into_iter()
            .map(|r| SpotStatus {
                id: SpotId(r.id),
                label: r.label,
                vehicle_type: r.vehicle_type,
                closed: r.closed != 0,
                occupied: r.occupied > 0,
                upcoming_reservations: r.upcoming,
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
        let mut tx = self.store().begin_change(now).await?;
        let (label, was_closed) = lots::spot(&mut *tx, lot, spot.0)
            .await?
            .ok_or_else(|| Error::NotFound(format!("spot {spot} in lot {lot}")))?;
        if was_closed != closed {
            if closed {
                let held = lots::holds_on_spot(&mut *tx, spot.0, now.timestamp_millis()).await?;
                if held > 0 {
                    return Err(Error::conflict(
                        "spot_reserved",
                        format!(
                            "spot {label} is held by {held} reservation(s) that have not ended; cancel them first"
                        ),
                    ));
                }
            }
            lots::set_spot_closed(&mut *tx, spot.0, closed).await?;
            let open = lots::open_spot_count(&mut *tx, lot).await?;
            let event = Event::new(
                now,
                lot,
                EventPayload::LotCapacityChanged(LotCapacityChanged {
                    capacity: i32::try_from(open).unwrap_or(i32::MAX),
                }),
            );
            tx.event(event);
            let action = if closed { "spot.close" } else { "spot.reopen" };
            let target = format!("lot {lot} spot {label}");
            tx.audit(actor, action, &target, json!({ "openSpots": open }));
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
        let search = reservations::Search {
            lot: q.lot,
            status: q.status.as_deref(),
            email: email.as_deref(),
            from: q.from.map(|t| t.timestamp_millis()),
            to: q.to.map(|t| t.timestamp_millis()),
        };
        reservations::search(self.store().pool(), search, limit)
            .await?
            .into_iter()
            .map(|r| {
                Ok(ReservationRow {
                    id: ReservationId(
                        r.id.parse().map_err(|_| {
                            Error::Invalid(format!("stored reservation id {}", r.id))
                        })?,
                    ),
                    lot_id: LotId(r.lot_id),
                    lot_name: r.lot_name,
                    spot_label: r.label,
                    email: r.email,
                    vehicle_type: r.vehicle_type,
                    start_at: millis(r.start_at),
                    end_at: millis(r.end_at),
                    status: r.status.parse().map_err(Error::Invalid)?,
                    quote_cents: r.quote_cents,
                    currency: r.currency,
                })
            })
            .collect()
    }

    /// A driver asks the operator something.
    pub async fn open_inquiry(&self, user: UserId, new: NewInquiry) -> Result<Inquiry> {
        let subject = crate::text::line("subject", &new.subject, 200)?;
        let message = crate::text::paragraphs("message", &new.message, 4000)?;
        if let Some(r) = new.reservation_id {
            self.reservations().reservation_of(user, r).await?;
        }
        let id = Uuid::now_v7();
        let now = self.now();
        let reservation = new.reservation_id.map(|r| r.0.to_string());
        let row = desk::NewInquiry {
            id: &id.to_string(),
            user,
            reservation: reservation.as_deref(),
            subject: &subject,
            body: &message,
            created_at: now.timestamp_millis(),
        };
        desk::insert_inquiry(self.store().writer(), row).await?;
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
        desk::inquiries_of(self.store().pool(), user)
            .await?
            .into_iter()
            .map(|r| inquiry_of(r, false))
            .collect()
    }

    /// Inquiries for the admins: the unanswered ones oldest first, then (if asked) the answered
    /// ones newest first; at most `limit`.
    pub async fn inquiries(&self, include_answered: bool, limit: i64) -> Result<Vec<Inquiry>> {
        desk::inquiries(self.store().pool(), include_answered, limit)
            .await?
            .into_iter()
            .map(|r| inquiry_of(r, true))
            .collect()
    }

    /// Answer an inquiry, once; the driver gets the answer as a message.
    pub async fn answer_inquiry(&self, actor: &Actor, id: Uuid, answer: &str) -> Result<Inquiry> {
        let answer = crate::text::paragraphs("answer", answer, 4000)?;
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let asked = desk::inquiry(&mut *tx, &id.to_string())
            .await?
            .ok_or_else(|| Error::NotFound(format!("inquiry {id}")))?;
        // Only an inquiry without an answer takes one: of two admins answering at once, one.
        let at = now.timestamp_millis();
        if !desk::answer(&mut *tx, &id.to_string(), &answer, actor.as_str(), at).await? {
            return Err(Error::conflict(
                "already_answered",
                "this inquiry has an answer already",
            ));
        }
        let user_id = UserId(
            asked
                .user_id
                .parse()
                .map_err(|_| Error::Invalid(format!("stored user id {}", asked.user_id)))?,
        );
        let subject = asked.subject;
        let message = NewNotification {
            user_id,
            kind: NotificationKind::InquiryAnswered,
            dedup_key: format!("inquiry:{id}:answered"),
            lot_id: None,
            title: format!("Re: {subject}"),
            body: answer.clone(),
        };
        tx.notify(message);
        tx.audit(
            actor,
            "inquiry.answer",
            format!("inquiry {id}"),
            json!({ "subject": subject }),
        );
        tx.commit().await?;
        let row = desk::inquiry(self.store().pool(), &id.to_string())
            .await?
            .ok_or_else(|| Error::NotFound(format!("inquiry {id}")))?;
        inquiry_of(row, true)
    }

    /// The newest `limit` entries of the audit log, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        Ok(desk::audit_log(self.store().pool(), limit)
            .await?
            .into_iter()
            .map(|r| AuditEntry {
                at: millis(r.at),
                actor: r.actor,
                actor_email: r.email,
                action: r.action,
                target: r.target,
                detail: r.detail,
            })
            .collect())
    }
}
