//! Lots and their spots: creation (spots laid out in rows around the lot's centre), reads with
//! live free counts and the rate now, distances from a point.

mod arrival;
mod availability;

pub(crate) use availability::AVAILABILITY_EVENTS;
pub use availability::{RELEASING_EVENTS, Synced};
mod rates;

pub use arrival::{ArrivalChance, ForecastHour};
pub use rates::{PublishRates, Rate, RateSchedule};
pub(crate) use rates::{
    RateReasons, as_scheduled, check_rate, explained_rates, rate_in_force_conn,
    rate_in_force_explained, scheduled_rates,
};

use super::Lots;
use crate::domain::Actor;
use crate::domain::MAX_SPOTS_PER_LOT;
use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::{SpotPolicy, distance_m};
use crate::store::lots;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warehouse_schema::event::LotRegistered;
use warehouse_schema::{Event, EventPayload, LotId, VehicleType};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewLot {
    #[schema(schema_with = crate::domain::schema::line_200)]
    pub name: String,
    #[schema(schema_with = crate::domain::schema::time_zone)]
    pub time_zone: String,
    #[schema(schema_with = crate::domain::schema::latitude)]
    pub latitude: f64,
    #[schema(schema_with = crate::domain::schema::longitude)]
    pub longitude: f64,
    #[serde(default = "default_currency")]
    #[schema(schema_with = crate::domain::schema::currency, default = "USD")]
    pub currency: String,
    #[schema(schema_with = crate::domain::schema::cents)]
    pub default_cents_per_hour: i64,
    /// Number of spots to create per spot type.
    #[schema(schema_with = crate::domain::schema::spot_counts)]
    pub spots: BTreeMap<VehicleType, u32>,
    /// Let cars use EV spots (as their last choice); by default an EV spot takes only EVs.
    #[serde(default)]
    pub ev_spots_open_to_cars: bool,
}

/// The currency of a lot, and of a prepaid balance, when none is given.
pub const DEFAULT_CURRENCY: &str = "USD";

fn default_currency() -> String {
    DEFAULT_CURRENCY.into()
}

/// An ISO 4217 code as a client sends it: three capital letters.
pub fn currency_code(code: &str) -> Result<String> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err(Error::Invalid(
            "currency must be an ISO 4217 code such as USD".into(),
        ))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lot {
    #[schema(value_type = i64)]
    pub id: LotId,
    pub name: String,
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    pub currency: String,
    pub capacity: i64,
    pub free_spots: i64,
    /// The rate a car pays per hour right now.
    pub current_cents_per_hour: i64,
    /// Metres from the point the driver gave (their workplace), when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

pub(crate) struct LotRow {
    pub(crate) tz: Tz,
    pub(crate) currency: String,
    pub(crate) default_cents_per_hour: i64,
    pub(crate) entry_grace_minutes: i64,
    pub(crate) drive_up_horizon_minutes: i64,
    pub(crate) policy: SpotPolicy,
}

pub(super) fn spot_prefix(vt: VehicleType) -> &'static str {
    match vt {
        VehicleType::Car => "C",
        VehicleType::Ev => "E",
        VehicleType::Motorcycle => "M",
        VehicleType::Van => "V",
    }
}

/// Spots are laid out in rows of this many, so each gets a position inside the lot.
pub(super) const SPOTS_PER_ROW: u32 = 20;

/// Width of a spot and distance between rows, metres.
pub(super) const SPOT_WIDTH_M: f64 = 2.5;

pub(super) const ROW_PITCH_M: f64 = 6.0;

/// The spots of a new lot, counted without overflow: each count and their sum must lie in
/// 1..=[`MAX_SPOTS_PER_LOT`], so one request writes a bounded number of rows in its transaction.
pub fn lot_capacity(spots: &BTreeMap<VehicleType, u32>) -> Result<u32> {
    let out_of_range =
        || Error::Invalid(format!("a lot needs 1 to {MAX_SPOTS_PER_LOT} spots in all"));
    let total = spots
        .values()
        .try_fold(0u32, |sum, &n| sum.checked_add(n))
        .ok_or_else(out_of_range)?;
    if (1..=MAX_SPOTS_PER_LOT).contains(&total) {
        Ok(total)
    } else {
        Err(out_of_range())
    }
}

/// Where the `i`-th of `n` spots lies in a lot centred on `centre`: rows of spots around it.
pub(crate) fn spot_position(centre: (f64, f64), i: u32, n: u32) -> (f64, f64) {
    const METRES_PER_DEGREE: f64 = 111_320.0;
    let rows = n.div_ceil(SPOTS_PER_ROW);
    let east = (f64::from(i % SPOTS_PER_ROW) - f64::from(SPOTS_PER_ROW - 1) / 2.0) * SPOT_WIDTH_M;
    let north =
        (f64::from(i / SPOTS_PER_ROW) - f64::from(rows.saturating_sub(1)) / 2.0) * ROW_PITCH_M;
    let lat = centre.0 + north / METRES_PER_DEGREE;
    let lng = centre.1 + east / (METRES_PER_DEGREE * centre.0.to_radians().cos().max(0.01));
    (lat, lng)
}

impl Lots<'_> {
    pub async fn create_lot(&self, new: NewLot) -> Result<Lot> {
        self.create_lot_by(None, new).await
    }

    /// [`Self::create_lot`], recorded in the audit log when an admin asked for it.
    pub async fn create_lot_by(&self, actor: Option<&Actor>, new: NewLot) -> Result<Lot> {
        let tz: Tz = new
            .time_zone
            .parse()
            .map_err(|_| Error::Invalid(format!("unknown time zone `{}`", new.time_zone)))?;
        let name = crate::text::line("name", &new.name, 200)?;
        if !(-90.0..=90.0).contains(&new.latitude) || !(-180.0..=180.0).contains(&new.longitude) {
            return Err(Error::Invalid("latitude/longitude out of range".into()));
        }
        currency_code(&new.currency)?;
        check_rate(new.default_cents_per_hour)?;
        let capacity = lot_capacity(&new.spots)?;
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let row = lots::NewLotRow {
            name: &name,
            time_zone: tz.name(),
            latitude: new.latitude,
            longitude: new.longitude,
            currency: &new.currency,
            default_cents_per_hour: new.default_cents_per_hour,
            created_at: now.timestamp_millis(),
            ev_spots_open_to_cars: new.ev_spots_open_to_cars,
        };
        let id = lots::insert(&mut *tx, &row).await?;
        let mut placed = 0;
        for (vt, n) in &new.spots {
            for i in 1..=*n {
                let at = spot_position((new.latitude, new.longitude), placed, capacity);
                placed += 1;
                let label = format!("{}-{i:03}", spot_prefix(*vt));
                lots::insert_spot(&mut *tx, id, &label, vt.as_str(), at).await?;
            }
        }
        let event = Event::new(
            now,
            LotId(id),
            EventPayload::LotRegistered(LotRegistered {
                name: name.clone(),
                time_zone: tz.name().to_owned(),
                latitude: new.latitude,
                longitude: new.longitude,
                capacity: capacity as i32,
            }),
        );
        tx.event(event);
        if let Some(actor) = actor {
            let detail = serde_json::json!({ "name": name, "capacity": capacity });
            tx.audit(actor, "lot.create", format!("lot {id}"), detail);
        }
        tx.commit().await?;
        self.lot(LotId(id)).await
    }

    pub async fn lot(&self, lot: LotId) -> Result<Lot> {
        self.lots_where(Some(lot), None)
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("lot {lot}")))
    }

    pub async fn list(&self) -> Result<Vec<Lot>> {
        self.lots_where(None, None).await
    }

    /// Every lot with its distance from `near` (latitude, longitude), nearest first.
    pub async fn lots_near(&self, near: (f64, f64)) -> Result<Vec<Lot>> {
        let mut lots = self.lots_where(None, Some(near)).await?;
        lots.sort_by(|a, b| {
            a.distance_m
                .unwrap_or(f64::MAX)
                .total_cmp(&b.distance_m.unwrap_or(f64::MAX))
                .then(a.id.cmp(&b.id))
        });
        Ok(lots)
    }

    pub(super) async fn lots_where(
        &self,
        only: Option<LotId>,
        near: Option<(f64, f64)>,
    ) -> Result<Vec<Lot>> {
        let rows = lots::overview(self.store.pool(), only).await?;
        let now = self.now();
        let mut lots = Vec::with_capacity(rows.len());
        for r in rows {
            let id = LotId(r.id);
            let tz: Tz = r.time_zone.parse().unwrap_or(Tz::UTC);
            let rate = self
                .rate_in_force(id, VehicleType::Car, tz, now)
                .await?
                .unwrap_or(r.default_cents_per_hour);
            let (latitude, longitude) = (r.latitude, r.longitude);
            lots.push(Lot {
                id,
                name: r.name,
                time_zone: r.time_zone,
                latitude,
                longitude,
                distance_m: near.map(|n| distance_m((latitude, longitude), n).round()),
                currency: r.currency,
                capacity: r.capacity,
                free_spots: (r.capacity - r.occupied).max(0),
                current_cents_per_hour: rate,
            });
        }
        Ok(lots)
    }

    pub(crate) async fn lot_row(
        &self,
        conn: &mut crate::store::Conn,
        lot: LotId,
    ) -> Result<LotRow> {
        let row = lots::settings(conn, lot)
            .await?
            .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        Ok(LotRow {
            tz: row.time_zone.parse().unwrap_or(Tz::UTC),
            currency: row.currency,
            default_cents_per_hour: row.default_cents_per_hour,
            entry_grace_minutes: row.entry_grace_minutes,
            drive_up_horizon_minutes: row.drive_up_horizon_minutes,
            policy: SpotPolicy {
                ev_spots_open_to_cars: row.ev_spots_open_to_cars != 0,
            },
        })
    }
}
