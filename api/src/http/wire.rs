//! The bodies the HTTP API answers with that are not a service's own type: lists under their
//! name, a created id, a page. Each is the one place its JSON shape is spelled, and the
//! OpenAPI document's schema of it is derived from it.

use crate::accounts::{Point, Vehicle};
use crate::domain::ReservationStatus;
use crate::domain::availability::FreeSpot;
use crate::notifications::Notification;
use crate::services::Lot;
use crate::services::admin::Inquiry;
use crate::services::privacy::Erasure;
use crate::services::reservations::{GatePass, Reservation};
use crate::services::waitlist::WaitlistEntry;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use warehouse_schema::{LotId, ReservationId, UserId};

/// The error envelope every refusal carries.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `validation_failed`, `not_found`, `spot_taken`, `lot_full`,
    /// `invalid_pass`, `idempotency_key_reused`, …
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
}

#[derive(Serialize, ToSchema)]
pub struct Workplace {
    pub workplace: Option<Point>,
}

#[derive(Serialize, ToSchema)]
pub struct Vehicles {
    pub vehicles: Vec<Vehicle>,
}

#[derive(Serialize, ToSchema)]
pub struct Lots {
    pub lots: Vec<Lot>,
}

#[derive(Serialize, ToSchema)]
pub struct Published {
    pub published: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Balance {
    pub cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WaitlistEntries {
    pub items: Vec<WaitlistEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct Inquiries {
    pub inquiries: Vec<Inquiry>,
}

#[derive(Serialize, ToSchema)]
pub struct Notifications {
    pub items: Vec<Notification>,
}

/// Whether a gateway event was new (a redelivery is acknowledged, and changes nothing).
#[derive(Serialize, ToSchema)]
pub struct Handled {
    pub handled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// An erased account: what the erasure did.
#[derive(Serialize, ToSchema)]
pub struct Erased {
    pub deleted: bool,
    pub erasure: Erasure,
}

/// A new reservation, with the pass that opens the gate (none when a retry finds it has
/// entered already).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationWithPass {
    #[serde(flatten)]
    pub reservation: Reservation,
    #[schema(value_type = String, format = Uuid)]
    pub reservation_id: ReservationId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<GatePass>,
}

/// An extension made: the reservation with its new end and quote, its new pass (while its car
/// is not in yet), and what the extra time cost and how it is paid.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionDone {
    pub reservation: Reservation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<GatePass>,
    pub extra_cents: i64,
    pub settlement: crate::services::reservations::Settlement,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationPage {
    pub items: Vec<Reservation>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    #[schema(value_type = String, format = Uuid)]
    pub reservation_id: ReservationId,
    pub cancellation_id: Option<Uuid>,
    pub status: ReservationStatus,
    /// What the refund policy gave back of the payment (0: not paid, nothing under the policy
    /// this close to the start, or the gateway refused — the cancellation stands).
    pub refunded_cents: i64,
    pub currency: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreeSpots {
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub spots: Vec<FreeSpot>,
}

#[derive(Serialize, ToSchema)]
pub struct PassProducts {
    pub items: Vec<crate::services::monthly::Product>,
}

#[derive(Serialize, ToSchema)]
pub struct MonthlyPasses {
    pub items: Vec<crate::services::monthly::MonthlyPass>,
}
