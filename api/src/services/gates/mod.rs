//! Gates: what a scanner at the entry or exit of a lot sends, and how it becomes a stay.
//!
//! An entry presents one of three things:
//! - a **pass** (QR code or NFC) of a reservation: valid from `entry_grace_minutes` before the
//!   reservation's start until as many after it; the car gets its reserved spot;
//! - a **plate** read by a camera: a reservation of that plate starting within the same grace
//!   is entered as above; a plate registered to a driver without such a reservation enters as
//!   that driver's drive-up;
//! - nothing but a vehicle type: an anonymous drive-up.
//!
//! Entering a reservation flips it from `active` to `checked_in` with a guarded update, so two
//! gates reading the same pass at once open it only once.

use crate::accounts::normalise_plate;
use crate::domain::error::{Error, Result};
use crate::domain::passes::PassError;
use crate::services::Gates;
use crate::services::reservations::Reservation;
use crate::services::reservations::ReservationStatus;
use crate::store::reservations as rows;
use crate::store::stays as stay_rows;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde::Serialize;
use warehouse_schema::{
    EntryMethod, LotId, MonthlyPassId, ReservationId, SessionId, SpotId, TimeBand, UserId,
    VehicleType,
};

mod holders;
mod pick;
mod stays;

pub(crate) use pick::{NewStay, Pick};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckInRequest {
    pub vehicle_type: VehicleType,
    pub method: EntryMethod,
    #[serde(default)]
    pub plate: Option<String>,
    #[serde(default)]
    pub user_id: Option<UserId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckInReceipt {
    #[schema(value_type = String)]
    pub session_id: SessionId,
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    #[schema(value_type = i64)]
    pub spot_id: SpotId,
    pub spot_label: String,
    pub entered_at: DateTime<Utc>,
    /// The reservation this stay belongs to (entry by pass or by a reserved plate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reservation_id: Option<ReservationId>,
    /// The monthly pass the car entered on (by its code or its plate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub monthly_pass_id: Option<MonthlyPassId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitRequest {
    pub session_id: SessionId,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitReceipt {
    #[schema(value_type = String)]
    pub session_id: SessionId,
    pub duration_s: i64,
    /// What the stay cost: the tariff over a drive-up stay; a reserved stay's quote plus any
    /// time past its end.
    pub amount_cents: i64,
    /// What is still to pay here: the cost less what was paid for the reservation ahead, or
    /// taken from the driver's prepaid balance.
    pub due_cents: i64,
    pub currency: String,
    pub cents_per_hour: i64,
    #[schema(schema_with = crate::domain::schema::band)]
    pub band: TimeBand,
    /// Why pricing set the rate in force at the exit (none for the lot's default or a rate set
    /// by hand), and that in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_reason: Option<crate::domain::rate_reason::RateReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_explanation: Option<String>,
    /// A reserved stay pays its quote, plus any time past the reserved end at the rate above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reservation_id: Option<ReservationId>,
    /// A pass holder's stay: free inside the pass's rights, the tariff outside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub monthly_pass_id: Option<MonthlyPassId>,
}

/// What an entry scanner sends.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateEntry {
    /// How the gate identified the car (`qr`, `nfc`, `plate` or `staff`).
    #[schema(schema_with = crate::domain::schema::entry_method)]
    pub method: EntryMethod,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_non_empty)]
    pub pass: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_plate)]
    pub plate: Option<String>,
    /// Needed for a drive-up whose plate is not registered.
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_vehicle_type)]
    pub vehicle_type: Option<VehicleType>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_uuid)]
    pub user_id: Option<UserId>,
}

/// What an exit scanner sends: exactly one of the three.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GateExit {
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_uuid)]
    pub session_id: Option<SessionId>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_non_empty)]
    pub pass: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::domain::schema::nullable_plate)]
    pub plate: Option<String>,
}

pub(crate) fn pass_error(e: PassError) -> Error {
    match e {
        PassError::Invalid => Error::unprocessable("invalid_pass", e.to_string()),
        PassError::Expired => Error::unprocessable("pass_expired", e.to_string()),
    }
}

impl Gates<'_> {
    /// Open a stay for whatever the entry scanner presented.
    pub async fn enter(&self, lot: LotId, entry: GateEntry) -> Result<CheckInReceipt> {
        if let Some(pass) = &entry.pass
            && let Some(holder) = self.monthly_passes().holder_by_code(lot, pass).await?
        {
            return self.enter_holder(holder, entry.method).await;
        }
        if let Some(pass) = &entry.pass {
            let claims = self.passes().verify(pass, self.now()).map_err(pass_error)?;
            if claims.lot_id != lot {
                return Err(Error::unprocessable(
                    "wrong_lot",
                    format!("this pass is for lot {}, not lot {lot}", claims.lot_id),
                ));
            }
            let reservation = self
                .reservations()
                .reservation_of(claims.user_id, claims.reservation_id)
                .await
                .map_err(|_| Error::unprocessable("invalid_pass", "no such reservation"))?;
            return self
                .enter_reservation(lot, claims.user_id, reservation, entry.method)
                .await;
        }
        if let Some(raw) = &entry.plate {
            let plate = normalise_plate(raw)?;
            if let Some((user, reservation)) = self.reservation_arriving(lot, &plate).await? {
                return self
                    .enter_reservation(lot, user, reservation, entry.method)
                    .await;
            }
            if let Some(holder) = self.monthly_passes().holder_by_plate(lot, &plate).await? {
                return self.enter_holder(holder, entry.method).await;
            }
            let registered =
                crate::store::accounts::first_owner_of_plate(self.store().pool(), &plate).await?;
            let (user_id, vehicle_type) = match registered {
                Some((user, vt)) => (
                    user.parse().ok().map(UserId),
                    entry.vehicle_type.or(vt.parse().ok()),
                ),
                None => (entry.user_id, entry.vehicle_type),
            };
            let vehicle_type = vehicle_type.ok_or_else(|| {
                Error::Invalid(format!(
                    "plate {plate} is not registered: give the vehicleType of the drive-up"
                ))
            })?;
            return self
                .check_in(
                    lot,
                    CheckInRequest {
                        vehicle_type,
                        method: entry.method,
                        plate: Some(plate),
                        user_id,
                    },
                )
                .await;
        }
        let vehicle_type = entry.vehicle_type.ok_or_else(|| {
            Error::Invalid("give a pass, a plate or the vehicleType of a drive-up".into())
        })?;
        self.check_in(
            lot,
            CheckInRequest {
                vehicle_type,
                method: entry.method,
                plate: None,
                user_id: entry.user_id,
            },
        )
        .await
    }

    /// The active reservation of `plate` in `lot` whose entry window is open now, with its owner.
    async fn reservation_arriving(
        &self,
        lot: LotId,
        plate: &str,
    ) -> Result<Option<(UserId, Reservation)>> {
        let now = self.now();
        let grace = {
            let mut conn = self.store().pool().acquire().await?;
            self.lots()
                .lot_row(&mut conn, lot)
                .await?
                .entry_grace_minutes
        };
        let earliest = (now - Duration::minutes(grace)).timestamp_millis();
        let latest = (now + Duration::minutes(grace)).timestamp_millis();
        let found =
            rows::arriving_by_plate(self.store().pool(), lot, plate, earliest, latest).await?;
        let Some((id, user)) = found else {
            return Ok(None);
        };
        let (Ok(id), Ok(user)) = (id.parse(), user.parse()) else {
            return Ok(None);
        };
        let user = UserId(user);
        self.reservations()
            .reservation_of(user, warehouse_schema::ReservationId(id))
            .await
            .map(|r| Some((user, r)))
    }

    /// Open the stay of `user`'s `reservation` at the gate of `lot`.
    async fn enter_reservation(
        &self,
        lot: LotId,
        user: UserId,
        reservation: Reservation,
        method: EntryMethod,
    ) -> Result<CheckInReceipt> {
        // Another gate may take the fallback spot first: then pick again.
        let reservation = &reservation;
        self.entering(|pick| self.try_enter_reservation(lot, user, reservation, method, pick))
            .await
    }

    async fn try_enter_reservation(
        &self,
        lot: LotId,
        user: UserId,
        r: &Reservation,
        method: EntryMethod,
        pick: Pick,
    ) -> Result<CheckInReceipt> {
        if r.lot_id != lot {
            return Err(Error::unprocessable(
                "wrong_lot",
                format!(
                    "reservation {} is for lot {}, not lot {lot}",
                    r.id, r.lot_id
                ),
            ));
        }
        match r.status {
            ReservationStatus::Active => {}
            ReservationStatus::CheckedIn => {
                return Err(Error::conflict(
                    "already_entered",
                    format!("reservation {} has already entered", r.id),
                ));
            }
            other => {
                return Err(Error::conflict(
                    "not_active",
                    format!("reservation {} is {other}", r.id),
                ));
            }
        }
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let info = self.lots().lot_row(&mut tx, lot).await?;
        check_entry_window(r, now, Duration::minutes(info.entry_grace_minutes))?;
        // The reserved spot, unless a car is (wrongly) still in it: then the best other one
        // that no other reservation needs until this one ends.
        let reserved_free = stay_rows::spot_free(&mut *tx, r.spot_id.0).await?;
        let (spot_id, label) = match reserved_free {
            Some(label) => (r.spot_id.0, label),
            None => {
                self.free_spot_now(
                    &mut tx,
                    lot,
                    (info.policy, r.vehicle_type),
                    (now, r.end_at),
                    Some(r.id),
                    pick,
                )
                .await?
            }
        };
        let session = SessionId::new();
        if !rows::check_in(&mut *tx, r.id, session).await? {
            return Err(Error::conflict(
                "already_entered",
                format!("reservation {} has already entered", r.id),
            ));
        }
        let receipt = self
            .open_stay(
                &mut tx,
                session,
                NewStay {
                    lot,
                    spot: (spot_id, label),
                    vehicle_type: r.vehicle_type,
                    method,
                    plate: r.plate.as_deref(),
                    user: Some(user),
                    reservation: Some(r.id),
                    monthly_pass: None,
                },
                now,
            )
            .await?;
        tx.commit().await?;
        self.metrics().check_ins.inc();
        Ok(receipt)
    }

    /// Close the stay the exit scanner identified.
    pub async fn leave(&self, lot: LotId, exit: GateExit) -> Result<ExitReceipt> {
        let session = match (&exit.session_id, &exit.pass, &exit.plate) {
            (Some(session), None, None) => *session,
            (None, Some(pass), None) if self.passes().is_monthly(pass) => {
                let holder = self
                    .monthly_passes()
                    .holder_by_code(lot, pass)
                    .await?
                    .ok_or_else(|| Error::unprocessable("invalid_pass", "no such monthly pass"))?;
                let found =
                    stay_rows::open_by_plate(self.store().pool(), lot, &holder.plate).await?;
                found
                    .and_then(|s| s.parse().ok())
                    .map(SessionId)
                    .ok_or_else(|| {
                        Error::conflict(
                            "not_entered",
                            format!("monthly pass {} has no stay to close", holder.pass),
                        )
                    })?
            }
            (None, Some(pass), None) => {
                // A pass identifies its stay even after it expired (an overstay pays extra).
                let claims = self
                    .passes()
                    .verify(pass, DateTime::<Utc>::MIN_UTC)
                    .map_err(pass_error)?;
                let r = self
                    .reservations()
                    .reservation_of(claims.user_id, claims.reservation_id)
                    .await
                    .map_err(|_| Error::unprocessable("invalid_pass", "no such reservation"))?;
                r.session_id.ok_or_else(|| {
                    Error::conflict(
                        "not_entered",
                        format!("reservation {} has no stay to close", r.id),
                    )
                })?
            }
            (None, None, Some(raw)) => {
                let plate = normalise_plate(raw)?;
                let found = stay_rows::open_by_plate(self.store().pool(), lot, &plate).await?;
                found
                    .and_then(|s| s.parse().ok())
                    .map(SessionId)
                    .ok_or_else(|| {
                        Error::NotFound(format!("a car with plate {plate} in lot {lot}"))
                    })?
            }
            _ => {
                return Err(Error::Invalid(
                    "give exactly one of sessionId, pass and plate".into(),
                ));
            }
        };
        self.check_out(lot, session).await
    }
}

/// A reservation's pass opens the gate from `grace` before its start until `grace` after it
/// (and never after its end).
fn check_entry_window(r: &Reservation, now: DateTime<Utc>, grace: Duration) -> Result<()> {
    let (from, until) = (r.start_at - grace, (r.start_at + grace).min(r.end_at));
    if now < from {
        return Err(Error::conflict(
            "outside_entry_window",
            format!("too early: the gate opens for this reservation at {from}"),
        ));
    }
    if now > until {
        return Err(Error::conflict(
            "outside_entry_window",
            format!("too late: the gate opened for this reservation until {until}"),
        ));
    }
    Ok(())
}
