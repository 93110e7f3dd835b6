//! Buying a pass: the place (and the kept spot) taken with the `pending` pass in one change, the
//! first period charged, then the pass activated — or ended and its place given back when the
//! payment did not go through. The buyer's Idempotency-Key names the pass: a retry carries the
//! same pass (and its payment, keyed by the pass) to its end instead of buying another.

use super::*;
use crate::domain::TimeRange;
use crate::domain::monthly::month_after;
use crate::domain::notification::NotificationKind;
use crate::notifications::NewNotification;
use crate::services::payments::{PaymentMethod, PaymentStatus};
use crate::services::reservations::SpotToKeep;
use crate::store::{LostRace, lost_race};
use warehouse_schema::event::MonthlyPassPeriod;
use warehouse_schema::{Cents, Event, EventPayload, SpotId};

/// What a driver sends to buy a pass.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuyPass {
    pub product_id: Uuid,
    /// One of the driver's registered vehicles: its plate opens the gate.
    pub vehicle_id: Uuid,
    /// How the first period and the renewals are paid.
    pub payment: PaymentMethod,
}

/// The payment key of period `period` of pass `id`: one charge per period, however often it is
/// retried.
pub(super) fn payment_key(id: MonthlyPassId, period: i64) -> String {
    format!("monthly-pass:{}:{period}", id.0)
}

impl MonthlyPasses<'_> {
    /// Buy a pass of `req.product_id` for one of `user`'s vehicles.
    pub async fn buy(&self, user: UserId, req: BuyPass, key: &str) -> Result<MonthlyPass> {
        if key.is_empty() || key.len() > 200 {
            return Err(Error::Invalid(
                "an Idempotency-Key of 1 to 200 characters is required".into(),
            ));
        }
        if let Some(row) =
            rows::pass(self.store().pool(), rows::PassLookup::ByKey(user, key)).await?
        {
            if row.product_id != req.product_id.to_string() {
                return Err(Error::conflict(
                    "idempotency_key_reused",
                    "this idempotency key bought another pass",
                ));
            }
            return self.settle_first_period(row, Some(req.payment)).await;
        }
        req.payment.validate()?;
        let product = rows::product(self.store().pool(), &req.product_id.to_string())
            .await?
            .ok_or_else(|| Error::NotFound(format!("pass product {}", req.product_id)))?;
        if product.retired != 0 {
            return Err(Error::conflict(
                "not_on_sale",
                format!("pass product {} is no longer sold", req.product_id),
            ));
        }
        let vehicle = crate::accounts::vehicle_of(self.store(), user, req.vehicle_id).await?;
        if !vehicle_types_of(&product.vehicle_types).contains(&vehicle.vehicle_type) {
            return Err(Error::unprocessable(
                "vehicle_not_covered",
                format!(
                    "{} does not cover a {} (it covers {})",
                    product.name, vehicle.vehicle_type, product.vehicle_types
                ),
            ));
        }
        let lot = LotId(product.lot_id);
        let now = self.now();
        // One live pass per plate and lot is the store's (a unique index): a second purchase
        // loses at its insert, below, before anything is charged.
        let window = TimeRange::new(now, month_after(now)?)?;
        let id = MonthlyPassId::new();
        // A kept spot another booking took at the same moment: choose again.
        let mut outcome = Err(Error::conflict("no_spot_available", "no spot to keep"));
        for _ in 0..4 {
            outcome = self
                .open_pending(id, user, (&product, &vehicle), window, &req.payment, key)
                .await;
            match &outcome {
                Err(e) if matches!(lost_race(e), Some(LostRace::Exclusion | LostRace::Aborted)) => {
                }
                _ => break,
            }
        }
        match outcome {
            // The same key won a concurrent purchase: carry that one on. Otherwise another
            // purchase for the same plate won (one live pass per plate and lot).
            Err(e) if lost_race(&e) == Some(LostRace::Unique) => {
                match rows::pass(self.store().pool(), rows::PassLookup::ByKey(user, key)).await? {
                    Some(row) => self.settle_first_period(row, Some(req.payment)).await,
                    None => Err(Error::conflict(
                        "already_held",
                        format!("{} already has a monthly pass at lot {lot}", vehicle.plate),
                    )),
                }
            }
            Err(e) => Err(e),
            Ok(kept) => {
                if let Some(kept) = &kept {
                    self.reservations().index_kept(lot, kept, window);
                }
                let row = rows::pass(self.store().pool(), rows::PassLookup::Id(id))
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("monthly pass {id}")))?;
                self.settle_first_period(row, Some(req.payment)).await
            }
        }
    }

    /// The `pending` pass with its place (and kept spot) taken, in one change.
    async fn open_pending(
        &self,
        id: MonthlyPassId,
        user: UserId,
        (product, vehicle): (&ProductRow, &crate::accounts::Vehicle),
        window: TimeRange,
        method: &PaymentMethod,
        key: &str,
    ) -> Result<Option<crate::services::reservations::KeptSpot>> {
        let now = self.now();
        let lot = LotId(product.lot_id);
        let mut change = self.store().begin_change(now).await?;
        if !rows::take_place(&mut *change, &product.id).await? {
            return Err(Error::conflict(
                "sold_out",
                format!("every place of {} is held", product.name),
            ));
        }
        rows::insert_pass(
            &mut *change,
            &rows::NewPass {
                id,
                product_id: &product.id,
                lot,
                user,
                vehicle_id: vehicle.id.to_string(),
                plate: &vehicle.plate,
                vehicle_type: vehicle.vehicle_type.as_str(),
                period_start: window.start().timestamp_millis(),
                period_end: window.end().timestamp_millis(),
                method: method.name(),
                token: method.token(),
                last4: method.last4(),
                key,
                now: now.timestamp_millis(),
            },
        )
        .await?;
        let mut kept = None;
        if product.keeps_spot != 0 {
            let spot = self
                .reservations()
                .keep_spot(
                    &mut change,
                    SpotToKeep {
                        pass: id,
                        period: 1,
                        lot,
                        user,
                        vehicle_type: vehicle.vehicle_type,
                        plate: &vehicle.plate,
                        window,
                        prefer: None,
                    },
                )
                .await?
                .ok_or_else(|| {
                    Error::conflict(
                        "no_spot_available",
                        format!(
                            "no {} spot is free for the whole month to keep",
                            vehicle.vehicle_type
                        ),
                    )
                })?;
            rows::keep_spot(&mut *change, id, &spot.hold.0.to_string(), spot.spot.0).await?;
            kept = Some(spot);
        }
        change.commit().await?;
        Ok(kept)
    }

    /// Carry a pass's first period to its end: charge it (once, keyed by the pass) and activate
    /// the pass, or end it and give its place back. A pass past `pending` is shown as it is.
    pub(super) async fn settle_first_period(
        &self,
        row: PassRow,
        method: Option<PaymentMethod>,
    ) -> Result<MonthlyPass> {
        let id = parse_pass_id(&row.id)?;
        let user = user_of(&row)?;
        if status_of(&row)? != PassStatus::Pending {
            return refused_if_unpaid(self.pass_of(user, id).await?);
        }
        let method = match method {
            Some(m) => m,
            None => {
                PaymentMethod::from_stored(&row.method, row.token.as_deref(), row.last4.as_deref())
                    .ok_or_else(|| {
                        Error::Invalid(format!("stored payment method {:?}", row.method))
                    })?
            }
        };
        // An error here (storage) leaves the pass pending: a retry, or the sweep, settles it.
        let paid = self
            .payments()
            .pay_monthly_pass(
                (user, id),
                method,
                (row.price_cents, &row.currency),
                &payment_key(id, 1),
            )
            .await?;
        let captured = paid.status == PaymentStatus::Captured;
        let now = self.now();
        let lot = LotId(row.lot_id);
        let mut change = self.store().begin_change(now).await?;
        if captured {
            if rows::activate(&mut *change, id).await? {
                change.event(Event::new(
                    now,
                    lot,
                    EventPayload::MonthlyPassPurchased(period_event(&row, id, user)?),
                ));
                change.notify(NewNotification {
                    user_id: user,
                    kind: NotificationKind::MonthlyPass,
                    dedup_key: format!("monthly-pass:{}:bought", id.0),
                    lot_id: Some(lot),
                    title: row.name.clone(),
                    body: format!(
                        "Your monthly pass for {} is active until {}{}",
                        row.plate,
                        millis(row.period_end).format("%-d %b %Y"),
                        row.spot_label
                            .as_deref()
                            .map(|l| format!("; spot {l} is kept for you"))
                            .unwrap_or_default()
                    ),
                });
            }
        } else {
            self.end_within(
                &mut change,
                &row,
                (PassStatus::PaymentFailed, "payment_failed"),
                now,
            )
            .await?;
        }
        change.commit().await?;
        if !captured {
            self.unindex(&row);
        }
        refused_if_unpaid(self.pass_of(user, id).await?)
    }

    /// End pass `row` inside `change` as `status` (`PaymentFailed`, `Ended`, `Lapsed`) for
    /// `reason` (one of `warehouse_schema::event::PASS_END_REASONS`): its place and kept spot
    /// given back and its `monthly_pass_ended` event written. False when it had ended already.
    /// Every end of a pass comes here; after the commit, [`unindex`](Self::unindex) the row.
    pub(crate) async fn end_within(
        &self,
        change: &mut crate::store::Change,
        row: &PassRow,
        (status, reason): (PassStatus, &str),
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let id = parse_pass_id(&row.id)?;
        if !rows::end_pass(&mut **change, id, status, now.timestamp_millis()).await? {
            return Ok(false);
        }
        rows::give_back_place(&mut **change, &row.product_id).await?;
        if let Some(hold) = &row.hold_id {
            rows::release_hold(&mut **change, hold).await?;
        }
        change.event(ended_event(now, LotId(row.lot_id), id, reason));
        Ok(true)
    }

    /// Drop a released kept spot from the availability index (after the change committed).
    pub(crate) fn unindex(&self, row: &PassRow) {
        if let Some(hold) = row.hold_id.as_deref().and_then(|h| h.parse().ok()) {
            self.availability()
                .release(LotId(row.lot_id), warehouse_schema::ReservationId(hold));
        }
    }
}

/// A pass whose first payment failed is refused, on the first request and every retry.
fn refused_if_unpaid(pass: MonthlyPass) -> Result<MonthlyPass> {
    if pass.status == PassStatus::PaymentFailed {
        return Err(Error::PaymentRequired {
            code: "payment_declined",
            message: format!(
                "the payment for monthly pass {} did not go through",
                pass.id
            ),
        });
    }
    Ok(pass)
}

/// The event of a paid period of `row`.
pub(super) fn period_event(
    row: &PassRow,
    id: MonthlyPassId,
    user: UserId,
) -> Result<MonthlyPassPeriod> {
    Ok(MonthlyPassPeriod {
        monthly_pass_id: id,
        user_id: user,
        vehicle_type: row.vehicle_type.parse().map_err(Error::Invalid)?,
        start_at: millis(row.period_start),
        end_at: millis(row.period_end),
        amount_cents: Cents(row.price_cents),
        currency: row.currency.clone(),
        spot_id: row.spot_id.map(SpotId),
    })
}
