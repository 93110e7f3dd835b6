//! The spots a booking may take: the store's free spots for a window, the best of them (fit,
//! then nearest, then spread by the booking's key), and a spot the driver named.

use super::*;
use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::SpotPolicy;
use crate::store::Backend;
use crate::store::Conn;
use warehouse_schema::{LotId, ReservationId, SpotId, VehicleType};

/// Open spots of `lot` (only `only`, if given) that no holding reservation other than `except`
/// occupies during `window`.
pub(super) async fn free_spot_rows(
    conn: &mut Conn,
    backend: Backend,
    lot: LotId,
    window: TimeRange,
    only: Option<SpotId>,
    except: Option<ReservationId>,
) -> Result<Vec<SpotRow>> {
    let span = (
        window.start().timestamp_millis(),
        window.end().timestamp_millis(),
    );
    let rows =
        crate::store::reservations::free_spots(conn, backend, lot, only.map(|s| s.0), span, except)
            .await?;
    rows.into_iter()
        .map(|(id, label, vt, lat, lng)| {
            Ok(SpotRow {
                id,
                label,
                vehicle_type: vt.parse().map_err(Error::Invalid)?,
                position: lat.zip(lng),
            })
        })
        .collect()
}

/// A stable hash of `text` (FNV-1a), to spread spot choices.
pub(super) fn spread_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The one spot a request names: it must exist in the lot, fit the vehicle and be free.
pub(super) async fn named_spot(
    conn: &mut Conn,
    lot: LotId,
    spot: SpotId,
    policy: SpotPolicy,
    vehicle: VehicleType,
    free: Vec<SpotRow>,
) -> Result<SpotRow> {
    let kind = crate::store::lots::spot_kind(conn, lot, spot.0).await?;
    let kind: VehicleType = kind
        .ok_or_else(|| Error::NotFound(format!("spot {spot} in lot {lot}")))?
        .parse()
        .map_err(Error::Invalid)?;
    if policy.rank(vehicle, kind).is_none() {
        return Err(Error::Invalid(format!(
            "{} may not use {} spot",
            with_article(vehicle),
            with_article(kind)
        )));
    }
    free.into_iter().next().ok_or_else(|| {
        Error::conflict(
            "spot_taken",
            format!("spot {spot} is reserved for an overlapping window"),
        )
    })
}

/// The refusal of a booking or a change for any spot when none suits its vehicle for the window.
pub(super) fn no_spot(vehicle: VehicleType) -> Error {
    Error::conflict(
        "no_spot_available",
        format!("no {vehicle} spot is free for that window"),
    )
}
