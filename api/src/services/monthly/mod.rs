//! Monthly passes: the products an operator sells per lot, the passes drivers buy, renew and
//! cancel, and what a gate asks of them.
//!
//! - A **product** (`pass_products`) covers weekdays and whole local hours (`domain::monthly::
//!   Rights`) for some vehicle types, at a monthly price; at most `spots` passes are held at
//!   once, and a product that `keepsSpot` keeps one spot per holder for the whole period (a
//!   reservation row of the pass: see `reservations::keep`), which availability, bookings and
//!   drive-ups then leave alone.
//! - A **pass** (`monthly_passes`) is bought for one registered vehicle: `pending` while its
//!   first payment runs (its place and kept spot already taken, so no payment is taken for a
//!   place that is gone), then `active` for a calendar month. The sweep reminds the holder
//!   before the period ends, then renews it (charging the way it was bought) or, when the
//!   holder cancelled, ends it at the period's end; a refused renewal ends it as `lapsed`.
//! - At the **gate** the holder is recognised by the pass's QR code or by the vehicle's plate;
//!   the stay is free inside the rights and charged by the tariff outside them (`gates/stays.rs`).
//!
//! Purchases and renewals are events (`monthly_pass_purchased`, `monthly_pass_renewed`), and a
//! holder's entry is a `check_in` carrying the pass, so the lake and the report see them.

use crate::domain::PassStatus;
use crate::domain::error::{Error, Result};
use crate::domain::monthly::{ProductLimits, Rights};
use crate::services::MonthlyPasses;
use crate::store::monthly as rows;
use crate::store::monthly::{PassRow, ProductRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warehouse_schema::{LotId, MonthlyPassId, UserId, VehicleType};

mod buy;
mod sweep;

pub use buy::BuyPass;
pub use sweep::PassSweep;

/// A product as an operator defines it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewProduct {
    #[schema(schema_with = crate::domain::schema::line_200)]
    pub name: String,
    #[schema(schema_with = crate::domain::schema::pass_days)]
    pub days: Vec<String>,
    #[schema(schema_with = crate::domain::schema::from_hour)]
    pub from_hour: u8,
    #[schema(schema_with = crate::domain::schema::until_hour)]
    pub until_hour: u8,
    #[schema(schema_with = crate::domain::schema::vehicle_types)]
    pub vehicle_types: Vec<VehicleType>,
    #[schema(schema_with = crate::domain::schema::pass_price)]
    pub price_cents: i64,
    #[schema(schema_with = crate::domain::schema::pass_spots)]
    pub spots: i64,
    /// Each holder gets one spot kept for the whole period.
    pub keeps_spot: bool,
}

/// A product on sale (or retired).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PassProduct)]
pub struct Product {
    pub id: Uuid,
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub name: String,
    pub days: Vec<String>,
    pub from_hour: u8,
    pub until_hour: u8,
    /// The rights in words ("mon–fri 07–19 h").
    pub rights: String,
    #[schema(schema_with = crate::domain::schema::vehicle_types)]
    pub vehicle_types: Vec<VehicleType>,
    pub price_cents: i64,
    pub currency: String,
    pub spots: i64,
    /// Places still to sell.
    pub available: i64,
    pub keeps_spot: bool,
    pub retired: bool,
}

/// A driver's pass.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyPass {
    #[schema(value_type = String)]
    pub id: MonthlyPassId,
    pub product_id: Uuid,
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub name: String,
    pub rights: String,
    pub plate: String,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    /// `pending` (paying), `active`, `ended` (cancelled, at its period's end), `lapsed`
    /// (a renewal was refused) or `payment_failed`.
    pub status: PassStatus,
    /// The current period, numbered from 1, and its bounds.
    pub period: i64,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Whether it renews at the period's end (false once cancelled).
    pub renews: bool,
    pub price_cents: i64,
    pub currency: String,
    /// The spot kept for the holder in this period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot_label: Option<String>,
    /// The QR code that opens the gate, while the pass is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
}

/// A pass as the gate and the exit need it.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub(crate) pass: MonthlyPassId,
    pub(crate) user: UserId,
    pub(crate) lot: LotId,
    pub(crate) plate: String,
    pub(crate) vehicle_type: VehicleType,
    pub(crate) rights: Rights,
    /// The kept spot's reservation row and spot.
    pub(crate) kept: Option<(warehouse_schema::ReservationId, i64)>,
}

fn parse_pass_id(id: &str) -> Result<MonthlyPassId> {
    id.parse()
        .map(MonthlyPassId)
        .map_err(|_| Error::Invalid(format!("stored pass id {id:?}")))
}

fn user_of(r: &PassRow) -> Result<UserId> {
    r.user_id
        .parse()
        .map(UserId)
        .map_err(|_| Error::Invalid(format!("stored user {:?}", r.user_id)))
}

fn status_of(r: &PassRow) -> Result<PassStatus> {
    r.status.parse().map_err(Error::Invalid)
}

fn vehicle_types_of(stored: &str) -> Vec<VehicleType> {
    stored.split(',').filter_map(|v| v.parse().ok()).collect()
}

fn product(row: ProductRow) -> Result<Product> {
    let rights = Rights::from_stored(row.days, row.from_hour, row.until_hour)?;
    let (from_hour, until_hour) = rights.hours();
    Ok(Product {
        id: row
            .id
            .parse()
            .map_err(|_| Error::Invalid(format!("stored product id {:?}", row.id)))?,
        lot_id: LotId(row.lot_id),
        name: row.name,
        days: rights.day_names(),
        from_hour,
        until_hour,
        rights: rights.describe(),
        vehicle_types: vehicle_types_of(&row.vehicle_types),
        price_cents: row.price_cents,
        currency: row.currency,
        available: (row.spots - row.held).max(0),
        spots: row.spots,
        keeps_spot: row.keeps_spot != 0,
        retired: row.retired != 0,
    })
}

/// The event of pass `id` of `lot` ending for `reason` (one of
/// `warehouse_schema::event::PASS_END_REASONS`).
fn ended_event(
    now: DateTime<Utc>,
    lot: LotId,
    id: MonthlyPassId,
    reason: &str,
) -> warehouse_schema::Event {
    warehouse_schema::Event::new(
        now,
        lot,
        warehouse_schema::EventPayload::MonthlyPassEnded(warehouse_schema::event::MonthlyPassEnd {
            monthly_pass_id: id,
            reason: reason.to_owned(),
        }),
    )
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl MonthlyPasses<'_> {
    /// An operator puts a product on sale at `lot`.
    pub async fn create_product(
        &self,
        actor: &crate::domain::Actor,
        lot: LotId,
        new: NewProduct,
    ) -> Result<Product> {
        let name = crate::text::line("name", &new.name, 200)?;
        let rights = Rights::new(&new.days, new.from_hour, new.until_hour)?;
        let max = crate::domain::monthly::MAX_VEHICLE_TYPE_ENTRIES;
        if new.vehicle_types.is_empty() || new.vehicle_types.len() > max {
            return Err(Error::Invalid(format!(
                "vehicleTypes lists 1 to {max} vehicle types"
            )));
        }
        let info = self.lots().lot(lot).await?;
        ProductLimits {
            price_cents: new.price_cents,
            spots: new.spots,
        }
        .check(info.capacity)?;
        let mut types: Vec<&str> = new.vehicle_types.iter().map(|v| v.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let row = ProductRow {
            id: Uuid::now_v7().to_string(),
            lot_id: lot.0,
            name,
            days: rights.day_mask(),
            from_hour: i64::from(rights.hours().0),
            until_hour: i64::from(rights.hours().1),
            vehicle_types: types.join(","),
            price_cents: new.price_cents,
            currency: info.currency,
            spots: new.spots,
            held: 0,
            keeps_spot: i32::from(new.keeps_spot),
            retired: 0,
        };
        let now = self.now();
        let mut change = self.store().begin_change(now).await?;
        rows::insert_product(&mut *change, &row, now.timestamp_millis()).await?;
        change.audit(
            actor,
            "pass_product.create",
            format!("lot:{lot}"),
            serde_json::json!({ "product": row.id, "name": row.name, "priceCents": row.price_cents }),
        );
        change.commit().await?;
        product(row)
    }

    /// `lot`'s products: on sale, or every one (`all`, for the portal).
    pub async fn products(&self, lot: LotId, all: bool) -> Result<Vec<Product>> {
        self.lots().lot(lot).await?;
        rows::products_of_lot(self.store().pool(), lot, all)
            .await?
            .into_iter()
            .map(product)
            .collect()
    }

    /// Stop selling a product; passes already held run on (and renew).
    pub async fn retire_product(
        &self,
        actor: &crate::domain::Actor,
        lot: LotId,
        id: Uuid,
    ) -> Result<Product> {
        let id = id.to_string();
        let mut change = self.store().begin_change(self.now()).await?;
        let found = rows::product(&mut *change, &id)
            .await?
            .filter(|p| p.lot_id == lot.0)
            .ok_or_else(|| Error::NotFound(format!("pass product {id} of lot {lot}")))?;
        if rows::retire_product(&mut *change, lot, &id).await? {
            change.audit(
                actor,
                "pass_product.retire",
                format!("lot:{lot}"),
                serde_json::json!({ "product": id }),
            );
            change.commit().await?;
        }
        let row = rows::product(self.store().pool(), &id)
            .await?
            .unwrap_or(found);
        product(row)
    }

    /// `lot`'s passes per state, for the portal.
    pub async fn count_by_status(&self, lot: LotId) -> Result<Vec<(String, i64)>> {
        rows::count_by_status(self.store().pool(), lot).await
    }

    /// `user`'s passes, newest first.
    pub async fn passes_of(&self, user: UserId) -> Result<Vec<MonthlyPass>> {
        rows::passes_of_user(self.store().pool(), user)
            .await?
            .into_iter()
            .map(|r| self.shown(r))
            .collect()
    }

    /// One of `user`'s passes; another driver's is not found.
    pub async fn pass_of(&self, user: UserId, id: MonthlyPassId) -> Result<MonthlyPass> {
        let row = rows::pass(self.store().pool(), rows::PassLookup::Own(user, id))
            .await?
            .ok_or_else(|| Error::NotFound(format!("monthly pass {id}")))?;
        self.shown(row)
    }

    /// Cancel at the period's end: the pass stops renewing and ends when its period does.
    pub async fn cancel(&self, user: UserId, id: MonthlyPassId) -> Result<MonthlyPass> {
        let pass = self.pass_of(user, id).await?;
        if !matches!(pass.status, PassStatus::Pending | PassStatus::Active) {
            return Err(Error::conflict(
                "not_active",
                format!("monthly pass {id} is {}", pass.status),
            ));
        }
        rows::set_renews(self.store().writer(), id, false).await?;
        self.pass_of(user, id).await
    }

    fn shown(&self, r: PassRow) -> Result<MonthlyPass> {
        let id = parse_pass_id(&r.id)?;
        let rights = Rights::from_stored(r.days, r.from_hour, r.until_hour)?;
        let period_end = millis(r.period_end);
        let status = status_of(&r)?;
        let pass = (status == PassStatus::Active).then(|| {
            self.passes()
                .issue_monthly(&crate::domain::passes::MonthlyPassClaims {
                    pass_id: id,
                    lot_id: LotId(r.lot_id),
                    expires_at: period_end.timestamp(),
                })
        });
        Ok(MonthlyPass {
            id,
            product_id: r.product_id.parse().unwrap_or_default(),
            lot_id: LotId(r.lot_id),
            name: r.name,
            rights: rights.describe(),
            plate: r.plate,
            vehicle_type: r.vehicle_type.parse().map_err(Error::Invalid)?,
            status,
            period: r.period,
            period_start: millis(r.period_start),
            period_end,
            renews: r.renews != 0,
            price_cents: r.price_cents,
            currency: r.currency,
            spot_label: r.spot_label,
            pass,
        })
    }

    /// The holder of the monthly pass whose code a gate read; `Ok(None)` for a code of another
    /// kind (a reservation's pass). A pass that is not active now opens nothing.
    pub(crate) async fn holder_by_code(&self, lot: LotId, code: &str) -> Result<Option<Holder>> {
        let now = self.now();
        let Some(claims) = self.passes().verify_monthly(code, now) else {
            return Ok(None);
        };
        let claims = claims.map_err(super::gates::pass_error)?;
        if claims.lot_id != lot {
            return Err(Error::unprocessable(
                "wrong_lot",
                format!("this pass is for lot {}, not lot {lot}", claims.lot_id),
            ));
        }
        let row = rows::pass(self.store().pool(), rows::PassLookup::Id(claims.pass_id))
            .await?
            .ok_or_else(|| Error::unprocessable("invalid_pass", "no such monthly pass"))?;
        let status = status_of(&row)?;
        let live = status == PassStatus::Active
            && row.period_start <= now.timestamp_millis()
            && now.timestamp_millis() < row.period_end;
        if !live {
            return Err(Error::unprocessable(
                "pass_expired",
                format!("monthly pass {} is {status}", claims.pass_id),
            ));
        }
        self.holder_of(&row).map(Some)
    }

    /// The holder of the active pass of `plate` at `lot`, if any.
    pub(crate) async fn holder_by_plate(&self, lot: LotId, plate: &str) -> Result<Option<Holder>> {
        let now = self.now().timestamp_millis();
        rows::active_by_plate(self.store().pool(), lot, plate, now)
            .await?
            .as_ref()
            .map(|r| self.holder_of(r))
            .transpose()
    }

    /// The holder of pass `id` (any state: an exit charges by the rights the stay entered on).
    pub(crate) async fn holder_by_id(
        &self,
        conn: &mut crate::store::Conn,
        id: MonthlyPassId,
    ) -> Result<Option<Holder>> {
        rows::pass(conn, rows::PassLookup::Id(id))
            .await?
            .as_ref()
            .map(|r| self.holder_of(r))
            .transpose()
    }

    fn holder_of(&self, r: &PassRow) -> Result<Holder> {
        let kept = match (&r.hold_id, r.spot_id) {
            (Some(hold), Some(spot)) => hold
                .parse()
                .ok()
                .map(|h| (warehouse_schema::ReservationId(h), spot)),
            _ => None,
        };
        Ok(Holder {
            pass: parse_pass_id(&r.id)?,
            user: user_of(r)?,
            lot: LotId(r.lot_id),
            plate: r.plate.clone(),
            vehicle_type: r.vehicle_type.parse().map_err(Error::Invalid)?,
            rights: Rights::from_stored(r.days, r.from_hour, r.until_hour)?,
            kept,
        })
    }
}
