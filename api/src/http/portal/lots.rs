//! The lots pages: the dashboard with live occupancy, a new lot, a lot's settings and spots.

use super::*;
use crate::domain::error::Error;
use crate::http::{AppState, LotPath};
use crate::services::NewLot;
use crate::services::admin::LotChange;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use warehouse_schema::{LotId, SpotId, VehicleType};

pub(super) async fn dashboard(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
) -> PageResult {
    let email = state.accounts.email(admin.0).await?;
    // The same figures the live stream then pushes (`services::live`).
    let live = state.services.live();
    let mut lots = Vec::new();
    for l in state.services.lots().list().await? {
        let now = live.now_state(l.id).await?;
        lots.push(LotRow {
            id: l.id,
            name: l.name,
            capacity: now.capacity,
            occupied: now.occupied,
            free: now.free_spots,
            rate: money(now.current_cents_per_hour, &now.currency),
        });
    }
    Ok(render(&Dashboard {
        title: "Lots",
        email,
        at: state.services.now().format("%H:%M:%S UTC").to_string(),
        lots,
    })?
    .into_response())
}

pub(super) struct LotRow {
    id: LotId,
    name: String,
    capacity: i64,
    occupied: i64,
    free: i64,
    rate: String,
}

#[derive(Template)]
#[template(path = "portal/dashboard.html")]
pub(super) struct Dashboard {
    title: &'static str,
    email: String,
    at: String,
    lots: Vec<LotRow>,
}

pub(super) async fn new_lot_page() -> PageResult {
    Ok(render(&NewLotPage {
        title: "New lot",
        vehicle_types: VehicleType::ALL.iter().map(|v| v.as_str()).collect(),
    })?
    .into_response())
}

#[derive(Template)]
#[template(path = "portal/new_lot.html")]
pub(super) struct NewLotPage {
    title: &'static str,
    vehicle_types: Vec<&'static str>,
}

/// The new-lot form. Spot counts come as `spots_<vehicle type>`.
#[derive(Deserialize)]
pub(super) struct LotForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default, deserialize_with = "blank_is_none")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    longitude: Option<f64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    currency: Option<String>,
    #[serde(default, deserialize_with = "blank_is_none")]
    default_cents_per_hour: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    spots_car: Option<u32>,
    #[serde(default, deserialize_with = "blank_is_none")]
    spots_ev: Option<u32>,
    #[serde(default, deserialize_with = "blank_is_none")]
    spots_motorcycle: Option<u32>,
    #[serde(default, deserialize_with = "blank_is_none")]
    spots_van: Option<u32>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    ev_spots_open_to_cars: Option<String>,
}

impl LotForm {
    fn spots(&self, vt: VehicleType) -> Option<u32> {
        match vt {
            VehicleType::Car => self.spots_car,
            VehicleType::Ev => self.spots_ev,
            VehicleType::Motorcycle => self.spots_motorcycle,
            VehicleType::Van => self.spots_van,
        }
    }
}

pub(super) async fn create_lot(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    PortalForm(f): PortalForm<LotForm>,
) -> PageResult {
    let spots: BTreeMap<VehicleType, u32> = VehicleType::ALL
        .into_iter()
        .filter_map(|vt| f.spots(vt).filter(|n| *n > 0).map(|n| (vt, n)))
        .collect();
    let required = |value: &str, name: &str| {
        let value = value.trim();
        if value.is_empty() {
            Err(PortalError::from(Error::Invalid(format!(
                "`{name}` is required"
            ))))
        } else {
            Ok(value.to_owned())
        }
    };
    let new = NewLot {
        name: required(&f.name, "name")?,
        time_zone: required(&f.time_zone, "time_zone")?,
        latitude: f.latitude.unwrap_or(0.0),
        longitude: f.longitude.unwrap_or(0.0),
        currency: f.currency.as_deref().unwrap_or("USD").to_uppercase(),
        default_cents_per_hour: f.default_cents_per_hour.ok_or_else(|| {
            PortalError::from(Error::Invalid(
                "`default_cents_per_hour` is required".into(),
            ))
        })?,
        spots,
        ev_spots_open_to_cars: f.ev_spots_open_to_cars.is_some(),
    };
    let lot = state
        .services
        .lots()
        .create_lot_by(Some(&admin.actor()), new)
        .await?;
    Ok(see_other(&format!("/admin/lots/{}", lot.id)))
}

pub(super) async fn lot_page(State(state): State<AppState>, LotPath(lot): LotPath) -> PageResult {
    let l = state.services.lots().lot(lot).await?;
    let schedule = state.services.lots().rate_schedule(lot).await?;
    let spots = state.services.admin().spots(lot).await?;
    let row = |r: &crate::services::Rate| RateRow {
        band: r.band.as_str(),
        days: r.day_kind.as_str(),
        vehicle: r.vehicle_type.as_str(),
        per_hour: money(r.cents_per_hour, &schedule.currency),
        since: r.effective_from.map_or(String::new(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        }),
        why: r.explanation.clone().unwrap_or_default(),
    };
    let (products, pass_counts) = super::passes::products_of(&state, lot).await?;
    let rates = schedule.current.iter().map(row).collect();
    let announced = schedule.upcoming.iter().map(row).collect();
    Ok(render(&LotPage {
        title: l.name.clone(),
        id: l.id,
        name: l.name,
        time_zone: l.time_zone,
        capacity: l.capacity,
        free: l.free_spots,
        default_cents: schedule.default_cents_per_hour,
        default_rate: money(schedule.default_cents_per_hour, &schedule.currency),
        rates,
        announced,
        spots,
        products,
        pass_counts,
        days: crate::domain::monthly::DAY_NAMES.to_vec(),
        vehicle_types: VehicleType::ALL.iter().map(|v| v.as_str()).collect(),
    })?
    .into_response())
}

pub(super) struct RateRow {
    band: &'static str,
    days: &'static str,
    vehicle: &'static str,
    per_hour: String,
    since: String,
    /// Why pricing set it, in a sentence (blank for a rate set by hand).
    why: String,
}

#[derive(Template)]
#[template(path = "portal/lot.html")]
pub(super) struct LotPage {
    title: String,
    id: LotId,
    name: String,
    time_zone: String,
    capacity: i64,
    free: i64,
    default_cents: i64,
    default_rate: String,
    rates: Vec<RateRow>,
    /// Rates announced to start later.
    announced: Vec<RateRow>,
    spots: Vec<crate::services::admin::SpotStatus>,
    /// Monthly pass products (retired ones too) and the passes per state.
    products: Vec<super::passes::ProductRow>,
    pass_counts: String,
    /// The new-product form's checkboxes.
    days: Vec<&'static str>,
    vehicle_types: Vec<&'static str>,
}

/// A lot's edit form: a blank field keeps the stored value.
#[derive(Deserialize)]
pub(super) struct LotEditForm {
    #[serde(default, deserialize_with = "blank_is_none")]
    name: Option<String>,
    #[serde(default, deserialize_with = "blank_is_none")]
    default_cents_per_hour: Option<i64>,
}

pub(super) async fn update_lot(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    LotPath(lot): LotPath,
    PortalForm(f): PortalForm<LotEditForm>,
) -> PageResult {
    let change = LotChange {
        name: f.name,
        default_cents_per_hour: f.default_cents_per_hour,
        ev_spots_open_to_cars: None,
    };
    state
        .services
        .admin()
        .update_lot(&admin.actor(), lot, change)
        .await?;
    Ok(see_other(&format!("/admin/lots/{lot}")))
}

pub(super) async fn close_or_reopen(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path((lot, spot, action)): Path<(String, String, String)>,
) -> PageResult {
    let not_found = || PortalError::from(Error::NotFound(format!("spot {spot} in lot {lot}")));
    let lot = LotId(lot.parse().map_err(|_| not_found())?);
    let spot_id = SpotId(spot.parse().map_err(|_| not_found())?);
    let closed = match action.as_str() {
        "close" => true,
        "reopen" => false,
        _ => return Err(PortalError::from(Error::NotFound("route".into()))),
    };
    state
        .services
        .admin()
        .set_spot_closed(&admin.actor(), lot, spot_id, closed)
        .await?;
    Ok(see_other(&format!("/admin/lots/{lot}")))
}
