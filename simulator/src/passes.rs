//! Monthly passes in the simulated world, through the API like everything else: each lot sells
//! a weekday pass (mon–fri 07–19 h, any vehicle, no spot kept), and a few of its commuters who
//! drive up hold one — an account, their car, and the pass bought by card as the world begins.
//! They enter by plate and park free inside the pass's hours.

use super::*;
use futures_util::{StreamExt, stream};
use parkflow_api::accounts::{Accounts, Credentials, NewVehicle};
use parkflow_api::domain::Actor;
use parkflow_api::services::monthly::{BuyPass, NewProduct};
use std::collections::HashMap;
use warehouse_schema::VehicleType;

/// Holders per lot at most: each costs an account (a password hash), so they are few.
const HOLDERS_PER_LOT: usize = 3;
const PASS_CENTS: i64 = 12_000;

/// The scenario's commuters who hold a pass, and the account that holds it.
pub(crate) type Holders = HashMap<UserId, UserId>;

/// Put a pass on sale at each lot with commuters who drive up, and sell it to a few of them.
pub(crate) async fn sell(
    service: &Services,
    accounts: &Accounts,
    seed: u64,
    drivers: &[Driver],
) -> Result<(Holders, u64), Error> {
    // Each lot's commuters who drive up, in order of first arrival; one in four, by who they
    // are, wants a pass.
    let mut wanting: Vec<(LotId, UserId, String, VehicleType)> = Vec::new();
    for d in drivers {
        let a = &d.arrival;
        let (ArrivalKind::Commuter, Intent::DriveUp, Some(user), Some(plate)) =
            (a.kind, d.intent, a.user_id, a.plate.as_ref())
        else {
            continue;
        };
        let wants = (user.0.as_u128() ^ u128::from(seed)).is_multiple_of(4);
        let known = wanting.iter().any(|(_, u, _, _)| *u == user);
        let room = wanting.iter().filter(|(l, ..)| *l == a.lot_id).count() < HOLDERS_PER_LOT;
        if wants && !known && room {
            wanting.push((a.lot_id, user, plate.clone(), a.vehicle_type));
        }
    }
    // Their accounts first, two at a time: each is a password hash of tens of milliseconds on
    // a blocking thread, and two cores hash two at once (300 holders in 100 lots).
    let register = |commuter: UserId| async move {
        let credentials = Credentials {
            email: format!("commuter-{}@demo.parkflow.example", commuter.0.simple()),
            password: format!("demo-password-{seed}"),
        };
        accounts.register(credentials).await
    };
    let registered: Vec<_> = stream::iter(wanting.iter().map(|(_, c, ..)| register(*c)))
        .buffered(2)
        .collect()
        .await;
    let mut products = HashMap::new();
    let mut holders = Holders::new();
    let mut bought = 0;
    for ((lot, commuter, plate, vehicle_type), holder) in wanting.into_iter().zip(registered) {
        let holder = match holder {
            Ok(user) => user,
            // A world replayed on the same data directory: the account is there already.
            Err(e) if refused(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let product = match products.get(&lot) {
            Some(p) => *p,
            None => {
                let new = NewProduct {
                    name: "Weekday commuter".into(),
                    days: ["mon", "tue", "wed", "thu", "fri"]
                        .map(String::from)
                        .to_vec(),
                    from_hour: 7,
                    until_hour: 19,
                    vehicle_types: VehicleType::ALL.to_vec(),
                    price_cents: PASS_CENTS,
                    spots: HOLDERS_PER_LOT as i64,
                    keeps_spot: false,
                };
                let p = service
                    .monthly_passes()
                    .create_product(&Actor::admin_token(), lot, new)
                    .await?
                    .id;
                products.insert(lot, p);
                p
            }
        };
        let car = NewVehicle {
            plate,
            region: "D".into(),
            vehicle_type,
        };
        let vehicle = accounts.add_vehicle(holder, car).await?;
        let buy = BuyPass {
            product_id: product,
            vehicle_id: vehicle.id,
            payment: PaymentMethod::Card {
                token: "tok_ok".into(),
                last4: "4242".into(),
            },
        };
        match service.monthly_passes().buy(holder, buy, "demo-pass").await {
            Ok(_) => {
                holders.insert(commuter, holder);
                bought += 1;
            }
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((holders, bought))
}
