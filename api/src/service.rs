//! The business rules of lots, spots, stays and rates. HTTP handlers and the in-process
//! simulator both call this layer; every state change and its event commit together.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::metrics::ApiMetrics;
use crate::store::{Store, append_event, is_unique_violation};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::Arc;
use warehouse_schema::event::{CheckIn, Exit, LotRegistered, RatePublished};
use warehouse_schema::{
    Cents, DayKind, EntryMethod, Event, EventPayload, LotId, SessionId, SpotId, TimeBand, UserId,
    VehicleType,
};

/// The largest lot one request may create; keeps a typo from creating a million spots.
pub const MAX_SPOTS_PER_LOT: u32 = 5_000;
/// An hourly rate above this is refused as a likely unit mistake (cents, not dollars).
pub const MAX_CENTS_PER_HOUR: i64 = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewLot {
    pub name: String,
    pub time_zone: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default = "default_currency")]
    pub currency: String,
    pub default_cents_per_hour: i64,
    /// Number of spots to create per spot type.
    pub spots: BTreeMap<VehicleType, u32>,
}

fn default_currency() -> String {
    "USD".into()
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lot {
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
}

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckInReceipt {
    pub session_id: SessionId,
    pub lot_id: LotId,
    pub spot_id: SpotId,
    pub spot_label: String,
    pub entered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExitRequest {
    pub session_id: SessionId,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExitReceipt {
    pub session_id: SessionId,
    pub duration_s: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub cents_per_hour: i64,
    pub band: TimeBand,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub vehicle_type: VehicleType,
    pub cents_per_hour: i64,
    /// When omitted on publishing: now.
    #[serde(default)]
    pub effective_from: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRates {
    pub rates: Vec<Rate>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateSchedule {
    pub lot_id: LotId,
    pub currency: String,
    pub default_cents_per_hour: i64,
    /// The rate in force now for every band, day kind and vehicle type that has one.
    pub current: Vec<Rate>,
    /// Rates announced to start later.
    pub upcoming: Vec<Rate>,
}

#[derive(Debug, Clone)]
pub struct ParkingService {
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: ApiMetrics,
}

struct LotRow {
    tz: Tz,
    currency: String,
    default_cents_per_hour: i64,
}

impl ParkingService {
    pub fn new(store: Store, clock: Arc<dyn Clock>, metrics: ApiMetrics) -> Self {
        Self {
            store,
            clock,
            metrics,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn create_lot(&self, new: NewLot) -> Result<Lot> {
        let tz: Tz = new
            .time_zone
            .parse()
            .map_err(|_| Error::Invalid(format!("unknown time zone `{}`", new.time_zone)))?;
        if new.name.trim().is_empty() || new.name.len() > 200 {
            return Err(Error::Invalid("name must be 1 to 200 characters".into()));
        }
        if !(-90.0..=90.0).contains(&new.latitude) || !(-180.0..=180.0).contains(&new.longitude) {
            return Err(Error::Invalid("latitude/longitude out of range".into()));
        }
        if new.currency.len() != 3 || !new.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::Invalid(
                "currency must be an ISO 4217 code such as USD".into(),
            ));
        }
        check_rate(new.default_cents_per_hour)?;
        let capacity: u32 = new.spots.values().sum();
        if capacity == 0 || capacity > MAX_SPOTS_PER_LOT {
            return Err(Error::Invalid(format!(
                "a lot needs 1 to {MAX_SPOTS_PER_LOT} spots"
            )));
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO lots (name, time_zone, latitude, longitude, currency, default_cents_per_hour, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&new.name)
        .bind(tz.name())
        .bind(new.latitude)
        .bind(new.longitude)
        .bind(&new.currency)
        .bind(new.default_cents_per_hour)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        for (vt, n) in &new.spots {
            for i in 1..=*n {
                sqlx::query("INSERT INTO spots (lot_id, label, vehicle_type) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(format!("{}-{i:03}", spot_prefix(*vt)))
                    .bind(vt.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let event = Event::new(
            now,
            LotId(id),
            EventPayload::LotRegistered(LotRegistered {
                name: new.name.clone(),
                time_zone: tz.name().to_owned(),
                latitude: new.latitude,
                longitude: new.longitude,
                capacity: capacity as i32,
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        self.lot(LotId(id)).await
    }

    pub async fn lot(&self, lot: LotId) -> Result<Lot> {
        self.lots_where(Some(lot))
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("lot {lot}")))
    }

    pub async fn lots(&self) -> Result<Vec<Lot>> {
        self.lots_where(None).await
    }

    async fn lots_where(&self, only: Option<LotId>) -> Result<Vec<Lot>> {
        let rows = sqlx::query(
            "SELECT l.id, l.name, l.time_zone, l.latitude, l.longitude, l.currency, l.default_cents_per_hour,
                    (SELECT COUNT(*) FROM spots s WHERE s.lot_id = l.id AND s.closed = 0) AS capacity,
                    (SELECT COUNT(*) FROM parking_sessions p WHERE p.lot_id = l.id AND p.exited_at IS NULL) AS occupied
             FROM lots l WHERE ($1 IS NULL OR l.id = $1) ORDER BY l.id",
        )
        .bind(only.map(|l| l.0))
        .fetch_all(self.store.pool())
        .await?;
        let now = self.now();
        let mut lots = Vec::with_capacity(rows.len());
        for r in rows {
            let id = LotId(r.get("id"));
            let tz_name: String = r.get("time_zone");
            let tz: Tz = tz_name.parse().unwrap_or(Tz::UTC);
            let capacity: i64 = r.get("capacity");
            let occupied: i64 = r.get("occupied");
            let default: i64 = r.get("default_cents_per_hour");
            let rate = self
                .rate_in_force(id, VehicleType::Car, tz, now)
                .await?
                .unwrap_or(default);
            lots.push(Lot {
                id,
                name: r.get("name"),
                time_zone: tz_name,
                latitude: r.get("latitude"),
                longitude: r.get("longitude"),
                currency: r.get("currency"),
                capacity,
                free_spots: (capacity - occupied).max(0),
                current_cents_per_hour: rate,
            });
        }
        Ok(lots)
    }

    async fn lot_row(&self, conn: &mut sqlx::AnyConnection, lot: LotId) -> Result<LotRow> {
        let row = sqlx::query(
            "SELECT time_zone, currency, default_cents_per_hour FROM lots WHERE id = $1",
        )
        .bind(lot.0)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("lot {lot}")))?;
        let tz: String = row.get("time_zone");
        Ok(LotRow {
            tz: tz.parse().unwrap_or(Tz::UTC),
            currency: row.get("currency"),
            default_cents_per_hour: row.get("default_cents_per_hour"),
        })
    }

    /// A vehicle enters: it gets the best free spot its type may use, or `lot_full`.
    ///
    /// On PostgreSQL two gates may pick the same free spot at once; the loser's insert hits the
    /// one-open-stay-per-spot index and it simply tries again with what is then free.
    pub async fn check_in(&self, lot: LotId, req: CheckInRequest) -> Result<CheckInReceipt> {
        const ATTEMPTS: usize = 8;
        for _ in 1..ATTEMPTS {
            match self.try_check_in(lot, &req).await {
                Err(Error::Storage(e)) if is_unique_violation(&e) => continue,
                other => return other,
            }
        }
        self.try_check_in(lot, &req).await
    }

    async fn try_check_in(&self, lot: LotId, req: &CheckInRequest) -> Result<CheckInReceipt> {
        if let Some(p) = &req.plate
            && (p.trim().is_empty() || p.len() > 16)
        {
            return Err(Error::Invalid("plate must be 1 to 16 characters".into()));
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        self.lot_row(&mut tx, lot).await?;
        let free: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT s.id, s.label, s.vehicle_type FROM spots s
             WHERE s.lot_id = $1 AND s.closed = 0
               AND NOT EXISTS (SELECT 1 FROM parking_sessions p WHERE p.spot_id = s.id AND p.exited_at IS NULL)
             ORDER BY s.id",
        )
        .bind(lot.0)
        .fetch_all(&mut *tx)
        .await?;
        let chosen = req
            .vehicle_type
            .preferred_spots()
            .iter()
            .find_map(|want| free.iter().find(|(_, _, vt)| vt == want.as_str()));
        let Some((spot_id, label, _)) = chosen.cloned() else {
            self.metrics.lot_full.inc();
            return Err(Error::conflict(
                "lot_full",
                format!("lot {lot} has no free spot for a {}", req.vehicle_type),
            ));
        };
        let session = SessionId::new();
        sqlx::query(
            "INSERT INTO parking_sessions (id, lot_id, spot_id, vehicle_type, method, plate, user_id, entered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session.0.to_string())
        .bind(lot.0)
        .bind(spot_id)
        .bind(req.vehicle_type.as_str())
        .bind(req.method.as_str())
        .bind(&req.plate)
        .bind(req.user_id.map(|u| u.0.to_string()))
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        let event = Event::new(
            now,
            lot,
            EventPayload::CheckIn(CheckIn {
                session_id: session,
                user_id: req.user_id,
                reservation_id: None,
                spot_id: Some(SpotId(spot_id)),
                vehicle_type: req.vehicle_type,
                method: req.method,
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        self.metrics.check_ins.inc();
        Ok(CheckInReceipt {
            session_id: session,
            lot_id: lot,
            spot_id: SpotId(spot_id),
            spot_label: label,
            entered_at: event.occurred_at,
        })
    }

    /// A vehicle leaves: the stay is charged at the rate in force at exit.
    pub async fn check_out(&self, lot: LotId, session: SessionId) -> Result<ExitReceipt> {
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let info = self.lot_row(&mut tx, lot).await?;
        let row = sqlx::query(
            "SELECT vehicle_type, entered_at, exited_at FROM parking_sessions WHERE id = $1 AND lot_id = $2",
        )
        .bind(session.0.to_string())
        .bind(lot.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("parking session {session} in lot {lot}")))?;
        if row.get::<Option<i64>, _>("exited_at").is_some() {
            return Err(Error::conflict(
                "session_closed",
                format!("parking session {session} has already exited"),
            ));
        }
        let vt: VehicleType = row
            .get::<String, _>("vehicle_type")
            .parse()
            .map_err(Error::Invalid)?;
        let entered_at: i64 = row.get("entered_at");
        let duration_s = ((now.timestamp_millis() - entered_at) / 1000).max(0);
        let band = TimeBand::at(now, info.tz);
        let cents_per_hour = self
            .rate_in_force_conn(&mut tx, lot, vt, info.tz, now)
            .await?
            .unwrap_or(info.default_cents_per_hour);
        let amount = charge(duration_s, cents_per_hour);
        sqlx::query("UPDATE parking_sessions SET exited_at = $1, amount_cents = $2, currency = $3 WHERE id = $4")
            .bind(now.timestamp_millis())
            .bind(amount)
            .bind(&info.currency)
            .bind(session.0.to_string())
            .execute(&mut *tx)
            .await?;
        let event = Event::new(
            now,
            lot,
            EventPayload::Exit(Exit {
                session_id: session,
                duration_s,
                amount_cents: Cents(amount),
                currency: info.currency.clone(),
            }),
        );
        append_event(&mut tx, &event).await?;
        tx.commit().await?;
        self.metrics.exits.inc();
        Ok(ExitReceipt {
            session_id: session,
            duration_s,
            amount_cents: amount,
            currency: info.currency,
            cents_per_hour,
            band,
        })
    }

    /// Pricing publishes rates for a lot; each becomes a schedule row and a `rate_published` event.
    pub async fn publish_rates(&self, lot: LotId, rates: Vec<Rate>) -> Result<usize> {
        if rates.is_empty() {
            return Err(Error::Invalid("no rates given".into()));
        }
        for r in &rates {
            check_rate(r.cents_per_hour)?;
        }
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        self.lot_row(&mut tx, lot).await?;
        for r in &rates {
            let from = r.effective_from.unwrap_or(now);
            sqlx::query(
                "INSERT INTO rates (lot_id, band, day_kind, vehicle_type, effective_from, cents_per_hour, published_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (lot_id, band, day_kind, vehicle_type, effective_from)
                 DO UPDATE SET cents_per_hour = excluded.cents_per_hour, published_at = excluded.published_at",
            )
            .bind(lot.0)
            .bind(r.band.as_str())
            .bind(r.day_kind.as_str())
            .bind(r.vehicle_type.as_str())
            .bind(from.timestamp_millis())
            .bind(r.cents_per_hour)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            let event = Event::new(
                now,
                lot,
                EventPayload::RatePublished(RatePublished {
                    band: r.band,
                    day_kind: r.day_kind,
                    vehicle_type: r.vehicle_type,
                    cents_per_hour: Cents(r.cents_per_hour),
                    effective_from: from,
                }),
            );
            append_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.metrics.rates_published.inc_by(rates.len() as u64);
        Ok(rates.len())
    }

    /// The rates in force now and those announced for later.
    pub async fn rate_schedule(&self, lot: LotId) -> Result<RateSchedule> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        let now = self.now().timestamp_millis();
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT r.band, r.day_kind, r.vehicle_type, r.cents_per_hour, r.effective_from FROM rates r
             WHERE r.lot_id = $1 AND (r.effective_from > $2 OR r.effective_from = (
                 SELECT MAX(x.effective_from) FROM rates x
                 WHERE x.lot_id = r.lot_id AND x.band = r.band AND x.day_kind = r.day_kind
                   AND x.vehicle_type = r.vehicle_type AND x.effective_from <= $2))
             ORDER BY r.effective_from, r.band, r.day_kind, r.vehicle_type",
        )
        .bind(lot.0)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let (mut current, mut upcoming) = (Vec::new(), Vec::new());
        for (band, day_kind, vt, cents, from) in rows {
            let rate = Rate {
                band: band.parse().map_err(Error::Invalid)?,
                day_kind: day_kind.parse().map_err(Error::Invalid)?,
                vehicle_type: vt.parse().map_err(Error::Invalid)?,
                cents_per_hour: cents,
                effective_from: DateTime::from_timestamp_millis(from),
            };
            if from > now {
                upcoming.push(rate)
            } else {
                current.push(rate)
            }
        }
        Ok(RateSchedule {
            lot_id: lot,
            currency: info.currency,
            default_cents_per_hour: info.default_cents_per_hour,
            current,
            upcoming,
        })
    }

    /// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot default if none was
    /// published).
    pub async fn rate_at(&self, lot: LotId, vt: VehicleType, at: DateTime<Utc>) -> Result<i64> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        Ok(self
            .rate_in_force_conn(&mut conn, lot, vt, info.tz, at)
            .await?
            .unwrap_or(info.default_cents_per_hour))
    }

    async fn rate_in_force(
        &self,
        lot: LotId,
        vt: VehicleType,
        tz: Tz,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let mut conn = self.store.pool().acquire().await?;
        self.rate_in_force_conn(&mut conn, lot, vt, tz, at).await
    }

    async fn rate_in_force_conn(
        &self,
        conn: &mut sqlx::AnyConnection,
        lot: LotId,
        vt: VehicleType,
        tz: Tz,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT cents_per_hour FROM rates
             WHERE lot_id = $1 AND band = $2 AND day_kind = $3 AND vehicle_type = $4 AND effective_from <= $5
             ORDER BY effective_from DESC LIMIT 1",
        )
        .bind(lot.0)
        .bind(TimeBand::at(at, tz).as_str())
        .bind(DayKind::at(at, tz).as_str())
        .bind(vt.as_str())
        .bind(at.timestamp_millis())
        .fetch_optional(conn)
        .await?)
    }
}

/// The charge for a stay: the hourly rate pro rata to the second, rounded up to the cent.
pub fn charge(duration_s: i64, cents_per_hour: i64) -> i64 {
    (duration_s.max(0) * cents_per_hour + 3599) / 3600
}

fn check_rate(cents: i64) -> Result<()> {
    if (0..=MAX_CENTS_PER_HOUR).contains(&cents) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "cents per hour must be 0 to {MAX_CENTS_PER_HOUR}, got {cents}"
        )))
    }
}

fn spot_prefix(vt: VehicleType) -> &'static str {
    match vt {
        VehicleType::Car => "C",
        VehicleType::Ev => "E",
        VehicleType::Motorcycle => "M",
        VehicleType::Van => "V",
    }
}

#[cfg(test)]
mod tests {
    use super::charge;

    #[test]
    fn charge_rounds_up_to_the_cent() {
        assert_eq!(charge(0, 300), 0);
        assert_eq!(charge(1, 300), 1);
        assert_eq!(charge(3600, 300), 300);
        assert_eq!(charge(5400, 250), 375);
        assert_eq!(charge(-5, 250), 0);
    }
}
