//! The monthly passes a lot sells, on its page: each product with its places held and a button
//! to stop selling it, the passes by state, and the form that puts a new product on sale.

use super::*;
use crate::http::LotPath;
use crate::services::monthly::{NewProduct, Product};
use axum::extract::Path;
use warehouse_schema::VehicleType;

/// A product as the lot page lists it.
pub(super) struct ProductRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) rights: String,
    pub(super) vehicles: String,
    pub(super) price: String,
    pub(super) held: String,
    pub(super) keeps_spot: bool,
    pub(super) retired: bool,
}

/// `lot`'s products, retired ones too, and its passes per state ("2 active, 1 ended").
pub(super) async fn products_of(
    state: &AppState,
    lot: LotId,
) -> Result<(Vec<ProductRow>, String), PortalError> {
    let products = state.services.monthly_passes().products(lot, true).await?;
    let rows = products
        .into_iter()
        .map(|p: Product| ProductRow {
            id: p.id.to_string(),
            rights: p.rights,
            vehicles: p
                .vehicle_types
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            price: money(p.price_cents, &p.currency),
            held: format!("{} of {}", p.spots - p.available, p.spots),
            keeps_spot: p.keeps_spot,
            retired: p.retired,
            name: p.name,
        })
        .collect();
    let counts = state.services.monthly_passes().count_by_status(lot).await?;
    let counts = counts
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((rows, counts))
}

/// The new-product form: weekdays and vehicle types are checkboxes (present when ticked).
#[derive(Deserialize)]
pub(super) struct ProductForm {
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "blank_is_none")]
    from_hour: Option<u8>,
    #[serde(default, deserialize_with = "blank_is_none")]
    until_hour: Option<u8>,
    #[serde(default, deserialize_with = "blank_is_none")]
    price_cents: Option<i64>,
    #[serde(default, deserialize_with = "blank_is_none")]
    spots: Option<i64>,
    #[serde(default)]
    keeps_spot: Option<String>,
    #[serde(default)]
    day_mon: Option<String>,
    #[serde(default)]
    day_tue: Option<String>,
    #[serde(default)]
    day_wed: Option<String>,
    #[serde(default)]
    day_thu: Option<String>,
    #[serde(default)]
    day_fri: Option<String>,
    #[serde(default)]
    day_sat: Option<String>,
    #[serde(default)]
    day_sun: Option<String>,
    #[serde(default)]
    vehicle_car: Option<String>,
    #[serde(default)]
    vehicle_ev: Option<String>,
    #[serde(default)]
    vehicle_motorcycle: Option<String>,
    #[serde(default)]
    vehicle_van: Option<String>,
}

impl ProductForm {
    fn product(self) -> Result<NewProduct, PortalError> {
        let ticked = [
            ("mon", &self.day_mon),
            ("tue", &self.day_tue),
            ("wed", &self.day_wed),
            ("thu", &self.day_thu),
            ("fri", &self.day_fri),
            ("sat", &self.day_sat),
            ("sun", &self.day_sun),
        ];
        let days = ticked
            .iter()
            .filter(|(_, on)| on.is_some())
            .map(|(d, _)| (*d).to_owned())
            .collect();
        let vehicle_types = [
            (VehicleType::Car, &self.vehicle_car),
            (VehicleType::Ev, &self.vehicle_ev),
            (VehicleType::Motorcycle, &self.vehicle_motorcycle),
            (VehicleType::Van, &self.vehicle_van),
        ]
        .iter()
        .filter(|(_, on)| on.is_some())
        .map(|(v, _)| *v)
        .collect();
        let required = |v: Option<i64>, name: &str| {
            v.ok_or_else(|| PortalError::from(Error::Invalid(format!("`{name}` is required"))))
        };
        Ok(NewProduct {
            name: self.name,
            days,
            from_hour: self.from_hour.unwrap_or(0),
            until_hour: self.until_hour.unwrap_or(24),
            vehicle_types,
            price_cents: required(self.price_cents, "price_cents")?,
            spots: required(self.spots, "spots")?,
            keeps_spot: self.keeps_spot.is_some(),
        })
    }
}

pub(super) async fn create_product(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    LotPath(lot): LotPath,
    PortalForm(f): PortalForm<ProductForm>,
) -> PageResult {
    state
        .services
        .monthly_passes()
        .create_product(&admin.actor(), lot, f.product()?)
        .await?;
    Ok(see_other(&format!("/admin/lots/{lot}")))
}

pub(super) async fn retire_product(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path((lot, product)): Path<(String, String)>,
) -> PageResult {
    let not_found = || {
        PortalError::from(Error::NotFound(format!(
            "pass product {product} in lot {lot}"
        )))
    };
    let lot = LotId(lot.parse().map_err(|_| not_found())?);
    let id = product.parse().map_err(|_| not_found())?;
    state
        .services
        .monthly_passes()
        .retire_product(&admin.actor(), lot, id)
        .await?;
    Ok(see_other(&format!("/admin/lots/{lot}")))
}
