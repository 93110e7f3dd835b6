//! A monthly pass holder at the entry: the spot kept for them (or, when the pass keeps none or
//! a car is wrongly in it, the best free spot no booking needs within the drive-up horizon),
//! and a stay that carries the pass, so the exit charges only the time outside its rights.

use super::*;
use crate::services::monthly::Holder;

impl Gates<'_> {
    pub(super) async fn enter_holder(
        &self,
        holder: Holder,
        method: EntryMethod,
    ) -> Result<CheckInReceipt> {
        let holder = &holder;
        self.entering(|pick| self.try_enter_holder(holder, method, pick))
            .await
    }

    async fn try_enter_holder(
        &self,
        holder: &Holder,
        method: EntryMethod,
        pick: Pick,
    ) -> Result<CheckInReceipt> {
        let now = self.now();
        let lot = holder.lot;
        let mut tx = self.store().begin_change(now).await?;
        // One stay at a time on a pass (and the car is not in already): checked in the entry's
        // own transaction, and by a unique index when two gates read the pass at once — the
        // loser's next attempt finds the winner's stay here.
        let inside = match stay_rows::open_of_pass(&mut *tx, holder.pass).await? {
            Some(stay) => Some(stay),
            None => stay_rows::open_by_plate(&mut *tx, lot, &holder.plate).await?,
        };
        if inside.is_some() {
            return Err(Error::conflict(
                "already_entered",
                format!("{} is already in lot {lot}", holder.plate),
            ));
        }
        let info = self.lots().lot_row(&mut tx, lot).await?;
        let kept_free = match holder.kept {
            Some((_, spot)) => stay_rows::spot_free(&mut *tx, spot)
                .await?
                .map(|label| (spot, label)),
            None => None,
        };
        let spot = match kept_free {
            Some(spot) => spot,
            None => {
                let horizon = now + Duration::minutes(info.drive_up_horizon_minutes);
                self.free_spot_now(
                    &mut tx,
                    lot,
                    (info.policy, holder.vehicle_type),
                    (now, horizon),
                    holder.kept.map(|(hold, _)| hold),
                    pick,
                )
                .await?
            }
        };
        let receipt = self
            .open_stay(
                &mut tx,
                SessionId::new(),
                NewStay {
                    lot,
                    spot,
                    vehicle_type: holder.vehicle_type,
                    method,
                    plate: Some(&holder.plate),
                    user: Some(holder.user),
                    reservation: None,
                    monthly_pass: Some(holder.pass),
                },
                now,
            )
            .await?;
        tx.commit().await?;
        self.metrics().check_ins.inc();
        Ok(receipt)
    }
}
