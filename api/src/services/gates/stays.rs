//! Stays: a drive-up or reserved check-in takes a spot, a check-out closes the stay and charges
//! it by the tariff (paid from the prepaid balance where the driver has one).

use super::*;
use crate::domain::Money;
use crate::domain::error::{Error, Result};
use crate::domain::spot_choice::SpotPolicy;
use crate::domain::tariff::{Tariff, TariffRules};
use crate::services::lots::{rate_in_force_explained, scheduled_rates};
use crate::store::stays;
use crate::store::{Change, LostRace, lost_race};
use chrono::{DateTime, Utc};
use warehouse_schema::event::{CheckIn, Exit};
use warehouse_schema::{
    Cents, Event, EventPayload, LotId, MonthlyPassId, ReservationId, SessionId, SpotId, TimeBand,
    VehicleType,
};

impl Gates<'_> {
    /// A vehicle drives up without a reservation: it gets the best free spot its type may use
    /// that no reservation claims within the lot's drive-up horizon, or `lot_full`.
    ///
    /// On PostgreSQL two gates may pick the same free spot at once; the loser's insert hits the
    /// one-open-stay-per-spot index and it simply tries again with what is then free.
    pub async fn check_in(&self, lot: LotId, req: CheckInRequest) -> Result<CheckInReceipt> {
        // A known driver entering without a reservation pays from their prepaid balance: it
        // must hold the configured minimum.
        let min = self.payments.min_balance_cents;
        if let Some(user) = req.user_id
            && min > 0
        {
            let (balance, held) = self.payments().prepaid(user).await?;
            let lot_currency: Option<String> =
                crate::store::lots::currency(self.store.pool(), lot).await?;
            if let (Some(held), Some(charged)) = (held, lot_currency)
                && held != charged
            {
                return Err(Error::PaymentRequired {
                    code: "balance_currency",
                    message: format!(
                        "entry needs a prepaid balance in {charged}; this one is held in {held}"
                    ),
                });
            }
            if balance < min {
                return Err(Error::PaymentRequired {
                    code: "balance_too_low",
                    message: format!(
                        "entry needs a prepaid balance of at least {min} cents; it is {balance}"
                    ),
                });
            }
        }
        let req = &req;
        self.entering(|pick| self.try_check_in(lot, req, pick))
            .await
    }

    /// Run one entry `attempt` until it does not lose its spot to a concurrent entry. Each
    /// loss means the other entry committed, so the next attempt sees that spot taken; the
    /// losers then choose at random among the equally good spots left, so they do not all run
    /// for the same next one again. A transaction PostgreSQL aborted to break a deadlock runs
    /// again too.
    pub(crate) async fn entering<T, F>(&self, mut attempt: impl FnMut(Pick) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        const ATTEMPTS: usize = 16;
        let mut pick = Pick::First;
        for _ in 0..ATTEMPTS {
            match attempt(pick).await {
                Err(e) if matches!(lost_race(&e), Some(LostRace::Unique | LostRace::Aborted)) => {
                    pick = Pick::Spread(rand::random());
                }
                other => return other,
            }
        }
        Err(Error::conflict(
            "entry_contended",
            "every free spot offered went to another vehicle entering at the same moment; try again",
        ))
    }

    pub(super) async fn try_check_in(
        &self,
        lot: LotId,
        req: &CheckInRequest,
        pick: Pick,
    ) -> Result<CheckInReceipt> {
        if let Some(p) = &req.plate {
            crate::accounts::normalise_plate(p)?;
        }
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let info = self.lots().lot_row(&mut tx, lot).await?;
        let horizon = now + chrono::Duration::minutes(info.drive_up_horizon_minutes);
        let (spot_id, label) = self
            .free_spot_now(
                &mut tx,
                lot,
                (info.policy, req.vehicle_type),
                (now, horizon),
                None,
                pick,
            )
            .await?;
        let receipt = self
            .open_stay(
                &mut tx,
                SessionId::new(),
                NewStay {
                    lot,
                    spot: (spot_id, label),
                    vehicle_type: req.vehicle_type,
                    method: req.method,
                    plate: req.plate.as_deref(),
                    user: req.user_id,
                    reservation: None,
                    monthly_pass: None,
                },
                now,
            )
            .await?;
        tx.commit().await?;
        self.metrics.check_ins.inc();
        Ok(receipt)
    }

    /// Record, inside the caller's transaction, a stay that opens at `now`: its session row and
    /// its `check_in` event. Drive-ups and reservations entering at the gate both come here.
    pub(crate) async fn open_stay(
        &self,
        change: &mut Change,
        session: SessionId,
        stay: NewStay<'_>,
        now: DateTime<Utc>,
    ) -> Result<CheckInReceipt> {
        let (spot_id, label) = stay.spot;
        let row = stays::NewSessionRow {
            id: session,
            lot: stay.lot,
            spot: spot_id,
            vehicle_type: stay.vehicle_type.as_str(),
            method: stay.method.as_str(),
            plate: stay.plate,
            user: stay.user.map(|u| u.0.to_string()),
            entered_at: now.timestamp_millis(),
            reservation: stay.reservation,
            monthly_pass: stay.monthly_pass,
        };
        stays::insert(&mut **change, &row).await?;
        let event = Event::new(
            now,
            stay.lot,
            EventPayload::CheckIn(CheckIn {
                session_id: session,
                user_id: stay.user,
                reservation_id: stay.reservation,
                spot_id: Some(SpotId(spot_id)),
                vehicle_type: stay.vehicle_type,
                method: stay.method,
                monthly_pass_id: stay.monthly_pass,
            }),
        );
        let entered_at = event.occurred_at;
        change.event(event);
        Ok(CheckInReceipt {
            session_id: session,
            lot_id: stay.lot,
            spot_id: SpotId(spot_id),
            spot_label: label,
            entered_at,
            reservation_id: stay.reservation,
            monthly_pass_id: stay.monthly_pass,
        })
    }

    /// The best spot for `vehicle` that has no car in it now and that no reservation (other than
    /// `mine`) holds between `now` and `until`; `lot_full` when there is none.
    pub(crate) async fn free_spot_now(
        &self,
        conn: &mut crate::store::Conn,
        lot: LotId,
        (policy, vehicle): (SpotPolicy, VehicleType),
        (now, until): (DateTime<Utc>, DateTime<Utc>),
        mine: Option<ReservationId>,
        pick: Pick,
    ) -> Result<(i64, String)> {
        let window = (now.timestamp_millis(), until.timestamp_millis());
        let chosen = match pick {
            // The best rank is one spot type: the lowest id of the first type with a free spot.
            Pick::First => {
                let mut found = None;
                for spot_type in policy.ranked_spot_types(vehicle) {
                    found = stays::first_free_of_type(
                        &mut *conn,
                        lot,
                        spot_type.as_str(),
                        window,
                        mine,
                    )
                    .await?;
                    if found.is_some() {
                        break;
                    }
                }
                found
            }
            Pick::Spread(_) => {
                let free = stays::free_now(&mut *conn, lot, window, mine).await?;
                pick.choose(&free, policy, vehicle)
                    .map(|(id, label)| (id, label.to_owned()))
            }
        };
        match chosen {
            Some(spot) => Ok(spot),
            None => {
                self.metrics.lot_full.inc();
                Err(Error::conflict(
                    "lot_full",
                    format!("lot {lot} has no free spot for a {vehicle}"),
                ))
            }
        }
    }

    /// A vehicle leaves. A drive-up stay is charged by the tariff engine over the whole stay
    /// (each increment at the rate in force then, with the configured grace, free minutes and
    /// daily cap); a reserved stay pays its quote plus any time past the reserved end by the
    /// same engine, and its reservation is completed (the rest of its window is free again).
    pub async fn check_out(&self, lot: LotId, session: SessionId) -> Result<ExitReceipt> {
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        let info = self.lots().lot_row(&mut tx, lot).await?;
        let row = stays::for_exit(&mut *tx, session, lot)
            .await?
            .ok_or_else(|| Error::NotFound(format!("parking session {session} in lot {lot}")))?;
        if row.exited_at.is_some() {
            return Err(Error::conflict(
                "session_closed",
                format!("parking session {session} has already exited"),
            ));
        }
        let vt: VehicleType = row.vehicle_type.parse().map_err(Error::Invalid)?;
        let entered_at = row.entered_at;
        let duration_s = ((now.timestamp_millis() - entered_at) / 1000).max(0);
        let band = TimeBand::at(now, info.tz);
        let in_force =
            rate_in_force_explained(&mut tx, (lot, vt), (info.tz, &info.currency), now).await?;
        let (cents_per_hour, why) = match in_force {
            Some((cents, why)) => (cents, why),
            None => (info.default_cents_per_hour, None),
        };
        let (rate_reason, rate_explanation) = why.map_or((None, None), |(r, s)| (Some(r), Some(s)));
        let reservation: Option<ReservationId> = row
            .reservation_id
            .as_deref()
            .and_then(|r| r.parse().ok())
            .map(ReservationId);
        let monthly_pass: Option<MonthlyPassId> = row
            .monthly_pass_id
            .as_deref()
            .and_then(|m| m.parse().ok())
            .map(MonthlyPassId);
        let holder = match monthly_pass {
            Some(id) => self.monthly_passes().holder_by_id(&mut tx, id).await?,
            None => None,
        };
        let tariff = scheduled_rates(&mut tx, lot, vt, now).await?;
        let entered = DateTime::from_timestamp_millis(entered_at).unwrap_or(now);
        let amount = match reservation {
            // The quote covers the reserved window; time past its end is charged by the tariff,
            // with no grace or free minutes of its own.
            Some(_) => {
                let quote = row.quote_cents.unwrap_or(0);
                let end = row
                    .end_at
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(now);
                let overstay = Tariff::new(
                    TariffRules {
                        grace_minutes: 0,
                        free_minutes: 0,
                        ..self.tariff
                    },
                    info.tz,
                    info.default_cents_per_hour,
                    tariff,
                );
                let over = if now > end {
                    overstay.charge(end, now)?.cents
                } else {
                    0
                };
                Money::from_cents(quote)
                    .checked_add(Money::from_cents(over))?
                    .cents()
            }
            // A pass holder's stay is free inside the pass's rights.
            None => {
                let mut by_tariff =
                    Tariff::new(self.tariff, info.tz, info.default_cents_per_hour, tariff);
                if let Some(holder) = holder {
                    by_tariff = by_tariff.free_during(holder.rights);
                }
                by_tariff.charge(entered, now)?.cents
            }
        };
        let at = now.timestamp_millis();
        if !stays::close(&mut *tx, session, at, amount, &info.currency).await? {
            return Err(Error::conflict(
                "session_closed",
                format!("parking session {session} has already exited"),
            ));
        }
        // What is still to pay at the exit: a reserved stay owes its charge less what was paid
        // for the reservation ahead (an extension or an overstay of a paid booking is due here);
        // a drive-up of a driver with a prepaid account is paid from the balance.
        let due = match (reservation, &row.user_id) {
            (Some(r), _) => {
                let paid = crate::store::payments::captured_for(&mut *tx, r)
                    .await?
                    .map_or(0, |p| p.amount_cents);
                amount.saturating_sub(paid).max(0)
            }
            (None, Some(user)) => {
                let from_balance = self
                    .payments()
                    .pay_stay_from_balance(&mut tx, lot, session, user, amount, &info.currency, now)
                    .await?;
                if from_balance { 0 } else { amount }
            }
            (None, None) => amount,
        };
        if let Some(r) = reservation {
            crate::store::reservations::complete(&mut *tx, r).await?;
        }
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
        tx.event(event);
        tx.commit().await?;
        if let Some(r) = reservation {
            // The rest of the reserved window is free again.
            self.waitlist().released(lot, r).await;
        }
        self.metrics.exits.inc();
        Ok(ExitReceipt {
            session_id: session,
            duration_s,
            amount_cents: amount,
            due_cents: due,
            currency: info.currency,
            cents_per_hour,
            band,
            rate_reason,
            rate_explanation,
            reservation_id: reservation,
            monthly_pass_id: monthly_pass,
        })
    }
}
