//! Rates: publishing (validated, each with its event), the schedule in force and announced,
//! the rate in force at an instant.

use super::*;
use crate::domain::MAX_CENTS_PER_HOUR;
use crate::domain::error::{Error, Result};
use crate::domain::rate_reason::{RateAt, RateReason};
use crate::domain::tariff::ScheduledRate;
use crate::store::rates::{self as rows, RateKey};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use warehouse_schema::event::RatePublished;
use warehouse_schema::{Cents, DayKind, Event, EventPayload, LotId, TimeBand, VehicleType};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    #[schema(schema_with = crate::domain::schema::band)]
    pub band: TimeBand,
    #[schema(schema_with = crate::domain::schema::day_kind)]
    pub day_kind: DayKind,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    #[schema(schema_with = crate::domain::schema::cents)]
    pub cents_per_hour: i64,
    /// When omitted on publishing: now.
    #[serde(default)]
    pub effective_from: Option<DateTime<Utc>>,
    /// Why pricing set it (none for a rate set by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RateReason>,
    /// The reason in one sentence (in answers only).
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub explanation: Option<String>,
}

impl Rate {
    /// A rate set by hand, with no reason.
    pub fn new(
        (band, day_kind, vehicle_type): (TimeBand, DayKind, VehicleType),
        cents_per_hour: i64,
        effective_from: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            band,
            day_kind,
            vehicle_type,
            cents_per_hour,
            effective_from,
            reason: None,
            explanation: None,
        }
    }
}

impl From<RatePublished> for Rate {
    /// A rate as pricing announces it on the rates topic.
    fn from(r: RatePublished) -> Self {
        Self {
            reason: r.reason.map(RateReason::from),
            ..Self::new(
                (r.band, r.day_kind, r.vehicle_type),
                r.cents_per_hour.0,
                Some(r.effective_from),
            )
        }
    }
}

/// The reasons of a lot's published rates for one vehicle type, with what their sentences
/// need: a quote's or a receipt's stretches are explained from here.
pub(crate) struct RateReasons {
    by_start: std::collections::BTreeMap<(TimeBand, DayKind, i64), RateReason>,
    tz: Tz,
    currency: String,
}

/// The published rates of `lot` for `vt` that can apply up to `until`, for the tariff engine,
/// and their reasons, from one read.
pub(crate) async fn explained_rates(
    conn: &mut crate::store::Conn,
    (lot, vt): (LotId, VehicleType),
    until: DateTime<Utc>,
    (tz, currency): (Tz, &str),
) -> Result<(Vec<ScheduledRate>, RateReasons)> {
    let mut rates = Vec::new();
    let mut by_start = std::collections::BTreeMap::new();
    for (band, day_kind, from, cents, text) in
        rows::of_vehicle_explained(conn, lot, vt, until.timestamp_millis()).await?
    {
        let rate = scheduled(&band, &day_kind, from, cents)?;
        if let Some(why) = stored_reason(text.as_deref()) {
            by_start.insert((rate.band, rate.day_kind, from), why);
        }
        rates.push(rate);
    }
    let reasons = RateReasons {
        by_start,
        tz,
        currency: currency.to_owned(),
    };
    Ok((rates, reasons))
}

impl RateReasons {
    /// Why the rate of `band` and `day_kind` published from `from` is what it is, with its
    /// sentence (none for the lot's default, or a rate set by hand).
    pub(crate) fn of(
        &self,
        band: TimeBand,
        day_kind: DayKind,
        from: Option<DateTime<Utc>>,
    ) -> Option<(RateReason, String)> {
        let from = from?;
        let why = self
            .by_start
            .get(&(band, day_kind, from.timestamp_millis()))?;
        let sentence = why.sentence(RateAt {
            band,
            day_kind,
            effective_from: from,
            tz: self.tz,
            currency: &self.currency,
        });
        Some((why.clone(), sentence))
    }
}

/// A stored rate row as the API shows it, with its reason (no sentence yet).
fn stored_rate((band, day_kind, vt, cents, from, reason): rows::RateRow) -> Result<Rate> {
    let mut rate = Rate::new(
        (
            band.parse().map_err(Error::Invalid)?,
            day_kind.parse().map_err(Error::Invalid)?,
            vt.parse().map_err(Error::Invalid)?,
        ),
        cents,
        DateTime::from_timestamp_millis(from),
    );
    rate.reason = stored_reason(reason.as_deref());
    Ok(rate)
}

/// A stored reason (the contract's JSON text) as the API shows it; an unreadable one is
/// logged and left out rather than failing the answer.
pub(crate) fn stored_reason(text: Option<&str>) -> Option<RateReason> {
    let text = text?;
    match serde_json::from_str::<warehouse_schema::event::RateReason>(text) {
        Ok(r) => Some(r.into()),
        Err(e) => {
            tracing::warn!(error = %e, "a stored rate reason does not parse");
            None
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRates {
    #[schema(min_items = 1, max_items = 1000)]
    pub rates: Vec<Rate>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateSchedule {
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub currency: String,
    pub default_cents_per_hour: i64,
    /// The rate in force now for every band, day kind and vehicle type that has one.
    pub current: Vec<Rate>,
    /// Rates announced to start later.
    pub upcoming: Vec<Rate>,
}

/// The published rates of `lot` for `vt` that can apply up to `until`, for the tariff engine.
pub(crate) async fn scheduled_rates(
    conn: &mut crate::store::Conn,
    lot: LotId,
    vt: VehicleType,
    until: DateTime<Utc>,
) -> Result<Vec<ScheduledRate>> {
    as_scheduled(rows::of_vehicle(conn, lot, vt, until.timestamp_millis()).await?)
}

/// Stored rates (band, day kind, effective from, cents) as the tariff engine takes them.
pub(crate) fn as_scheduled(rates: Vec<(String, String, i64, i64)>) -> Result<Vec<ScheduledRate>> {
    rates
        .into_iter()
        .map(|(band, day_kind, from, cents)| scheduled(&band, &day_kind, from, cents))
        .collect()
}

/// A stored rate as the tariff engine takes it.
fn scheduled(band: &str, day_kind: &str, from: i64, cents: i64) -> Result<ScheduledRate> {
    Ok(ScheduledRate {
        band: band.parse().map_err(Error::Invalid)?,
        day_kind: day_kind.parse().map_err(Error::Invalid)?,
        effective_from: DateTime::from_timestamp_millis(from)
            .ok_or_else(|| Error::Invalid("rate start out of range".into()))?,
        cents_per_hour: cents,
    })
}

/// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot's time zone `tz` picks
/// band and day kind), if one was published; callers fall back to the lot default.
pub(crate) async fn rate_in_force_conn(
    conn: &mut crate::store::Conn,
    lot: LotId,
    vt: VehicleType,
    tz: Tz,
    at: DateTime<Utc>,
) -> Result<Option<i64>> {
    let key = RateKey {
        band: TimeBand::at(at, tz).as_str(),
        day_kind: DayKind::at(at, tz).as_str(),
        vehicle_type: vt.as_str(),
        effective_from: at.timestamp_millis(),
    };
    Ok(rows::in_force_explained(conn, lot, key)
        .await?
        .map(|(cents, ..)| cents))
}

/// The published rate a vehicle of type `vt` pays in `lot` at `at`, if any, with its reason
/// and the reason's sentence.
pub(crate) async fn rate_in_force_explained(
    conn: &mut crate::store::Conn,
    (lot, vt): (LotId, VehicleType),
    (tz, currency): (Tz, &str),
    at: DateTime<Utc>,
) -> Result<Option<(i64, Option<(RateReason, String)>)>> {
    let (band, day_kind) = (TimeBand::at(at, tz), DayKind::at(at, tz));
    let key = RateKey {
        band: band.as_str(),
        day_kind: day_kind.as_str(),
        vehicle_type: vt.as_str(),
        effective_from: at.timestamp_millis(),
    };
    let Some((cents, from, reason)) = rows::in_force_explained(conn, lot, key).await? else {
        return Ok(None);
    };
    let explained = stored_reason(reason.as_deref())
        .zip(DateTime::from_timestamp_millis(from))
        .map(|(why, from)| {
            let sentence = why.sentence(RateAt {
                band,
                day_kind,
                effective_from: from,
                tz,
                currency,
            });
            (why, sentence)
        });
    Ok(Some((cents, explained)))
}

/// Entries in one band and day kind that make a driver a regular there…
const HABIT_ENTRIES: usize = 3;
/// …within this many weeks.
const HABIT_WEEKS: i64 = 4;

pub(crate) fn check_rate(cents: i64) -> Result<()> {
    if (0..=MAX_CENTS_PER_HOUR).contains(&cents) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "cents per hour must be 0 to {MAX_CENTS_PER_HOUR}, got {cents}"
        )))
    }
}

impl Lots<'_> {
    /// Pricing publishes rates for a lot; each new or changed one becomes a schedule row and a
    /// `rate_published` event. A rate identical to the one already scheduled for the same band,
    /// day kind, vehicle type and start is a no-op, so the same rates arriving twice (over HTTP
    /// and over the rates topic, or a retry) change nothing. Returns how many rows changed.
    pub async fn publish_rates(&self, lot: LotId, rates: Vec<Rate>) -> Result<usize> {
        if rates.is_empty() {
            return Err(Error::Invalid("no rates given".into()));
        }
        for r in &rates {
            check_rate(r.cents_per_hour)?;
            if let Some(why) = &r.reason {
                why.check(r.cents_per_hour).map_err(Error::Invalid)?;
            }
        }
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let info = self.lot_row(&mut tx, lot).await?;
        let mut changed = 0;
        let mut announced = Vec::new();
        for r in &rates {
            let from = r.effective_from.unwrap_or(now);
            let key = RateKey {
                band: r.band.as_str(),
                day_kind: r.day_kind.as_str(),
                vehicle_type: r.vehicle_type.as_str(),
                effective_from: from.timestamp_millis(),
            };
            if rows::exact(&mut *tx, lot, key).await? == Some(r.cents_per_hour) {
                continue;
            }
            changed += 1;
            let at = now.timestamp_millis();
            let contract = r
                .reason
                .clone()
                .map(warehouse_schema::event::RateReason::from);
            let text = contract
                .as_ref()
                .map(|why| serde_json::to_string(why).expect("a reason serializes"));
            rows::upsert(&mut *tx, lot, key, (r.cents_per_hour, text.as_deref()), at).await?;
            let event = Event::new(
                now,
                lot,
                EventPayload::RatePublished(RatePublished {
                    band: r.band,
                    day_kind: r.day_kind,
                    vehicle_type: r.vehicle_type,
                    cents_per_hour: Cents(r.cents_per_hour),
                    effective_from: from,
                    reason: contract,
                }),
            );
            tx.event(event);
            if from > now
                && let Some(why) = &r.reason
            {
                let at = RateAt {
                    band: r.band,
                    day_kind: r.day_kind,
                    effective_from: from,
                    tz: info.tz,
                    currency: &info.currency,
                };
                announced.push((r, why.sentence(at)));
            }
        }
        self.tell_regulars(&mut tx, (lot, info.tz, &info.currency), &announced, now)
            .await?;
        tx.commit().await?;
        self.metrics.rates_published.inc_by(changed as u64);
        Ok(changed)
    }

    /// Inside the publishing change: each driver with a habit at `lot` — at least
    /// [`HABIT_ENTRIES`] entries in the last [`HABIT_WEEKS`] weeks in a band and day kind whose
    /// rate for their vehicle is `announced` ahead — gets one message about it, with its reason.
    async fn tell_regulars(
        &self,
        change: &mut crate::store::Change,
        (lot, tz, currency): (LotId, Tz, &str),
        announced: &[(&Rate, String)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        use crate::notifications::{NewNotification, NotificationKind};
        use std::collections::BTreeMap;
        if announced.is_empty() {
            return Ok(());
        }
        let since = (now - chrono::Duration::weeks(HABIT_WEEKS)).timestamp_millis();
        let entries = crate::store::stays::known_entries(&mut **change, lot, since).await?;
        let name = crate::store::lots::name(&mut **change, lot)
            .await?
            .unwrap_or_else(|| format!("Lot {lot}"));
        let mut habits: BTreeMap<(TimeBand, DayKind, String, String), usize> = BTreeMap::new();
        for (user, at, vt) in entries {
            let Some(at) = DateTime::from_timestamp_millis(at) else {
                continue;
            };
            let key = (TimeBand::at(at, tz), DayKind::at(at, tz), vt, user);
            *habits.entry(key).or_default() += 1;
        }
        for (rate, sentence) in announced {
            let from = rate.effective_from.unwrap_or(now);
            let local = from.with_timezone(&tz).format("%a %-d %b");
            for ((band, day_kind, vt, user), n) in &habits {
                let theirs = (*band, *day_kind, vt.as_str())
                    == (rate.band, rate.day_kind, rate.vehicle_type.as_str());
                let Ok(user) = user.parse::<uuid::Uuid>() else {
                    continue;
                };
                if !theirs || *n < HABIT_ENTRIES {
                    continue;
                }
                let previous = rate.reason.as_ref().map_or(0, |r| r.previous_cents);
                change.notify(NewNotification {
                    user_id: warehouse_schema::UserId(user),
                    kind: NotificationKind::RateAnnounced,
                    dedup_key: format!(
                        "rate:{lot}:{}:{}:{}:{}",
                        rate.band.as_str(),
                        rate.day_kind.as_str(),
                        rate.vehicle_type.as_str(),
                        from.timestamp_millis()
                    ),
                    lot_id: Some(lot),
                    title: format!("{name}: a new rate from {local}"),
                    body: format!(
                        "{name}, where you often park: {} → {} {currency} an hour. {sentence}",
                        crate::domain::Money::from_cents(previous),
                        crate::domain::Money::from_cents(rate.cents_per_hour),
                    ),
                });
            }
        }
        Ok(())
    }

    /// The rates in force now and those announced for later.
    pub async fn rate_schedule(&self, lot: LotId) -> Result<RateSchedule> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        let now = self.now().timestamp_millis();
        let stored = rows::schedule(&mut conn, lot, now).await?;
        let (mut current, mut upcoming) = (Vec::new(), Vec::new());
        for row in stored {
            let from = row.4;
            let mut rate = stored_rate(row)?;
            rate.explanation = rate
                .reason
                .as_ref()
                .zip(rate.effective_from)
                .map(|(why, at)| {
                    why.sentence(RateAt {
                        band: rate.band,
                        day_kind: rate.day_kind,
                        effective_from: at,
                        tz: info.tz,
                        currency: &info.currency,
                    })
                });
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

    /// Every rate ever published for `lot`, in start order (what a replay of history needs).
    pub async fn rate_history(&self, lot: LotId) -> Result<Vec<Rate>> {
        rows::history(self.store.pool(), lot)
            .await?
            .into_iter()
            .map(stored_rate)
            .collect()
    }

    /// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot default if none was
    /// published).
    pub async fn rate_at(&self, lot: LotId, vt: VehicleType, at: DateTime<Utc>) -> Result<i64> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        Ok(rate_in_force_conn(&mut conn, lot, vt, info.tz, at)
            .await?
            .unwrap_or(info.default_cents_per_hour))
    }

    pub(super) async fn rate_in_force(
        &self,
        lot: LotId,
        vt: VehicleType,
        tz: Tz,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let mut conn = self.store.pool().acquire().await?;
        rate_in_force_conn(&mut conn, lot, vt, tz, at).await
    }
}
