//! Vehicle types, entry methods and which spots a vehicle may use.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of vehicle, which is also the kind of spot built for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleType {
    Car,
    Ev,
    Motorcycle,
    Van,
}

impl VehicleType {
    pub const ALL: [VehicleType; 4] = [Self::Car, Self::Ev, Self::Motorcycle, Self::Van];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Car => "car",
            Self::Ev => "ev",
            Self::Motorcycle => "motorcycle",
            Self::Van => "van",
        }
    }

    /// Whether a vehicle of this type may park in a spot built for `spot`.
    ///
    /// EV spots are kept for EVs (they have chargers); a van needs a van spot; anything smaller may
    /// use a bigger spot.
    pub fn fits(self, spot: VehicleType) -> bool {
        use VehicleType::*;
        matches!(
            (self, spot),
            (Car, Car)
                | (Car, Van)
                | (Ev, Ev)
                | (Ev, Car)
                | (Ev, Van)
                | (Motorcycle, Motorcycle)
                | (Motorcycle, Car)
                | (Van, Van)
        )
    }

    /// Spot types this vehicle may use, best fit first.
    pub fn preferred_spots(self) -> &'static [VehicleType] {
        use VehicleType::*;
        match self {
            Car => &[Car, Van],
            Ev => &[Ev, Car, Van],
            Motorcycle => &[Motorcycle, Car],
            Van => &[Van],
        }
    }
}

impl fmt::Display for VehicleType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VehicleType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("unknown vehicle type `{s}` (expected car, ev, motorcycle or van)")
            })
    }
}

/// How a vehicle was identified at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryMethod {
    Qr,
    Nfc,
    Plate,
    Staff,
}

impl EntryMethod {
    pub const ALL: [EntryMethod; 4] = [Self::Qr, Self::Nfc, Self::Plate, Self::Staff];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qr => "qr",
            Self::Nfc => "nfc",
            Self::Plate => "plate",
            Self::Staff => "staff",
        }
    }
}

impl FromStr for EntryMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown entry method `{s}` (expected qr, nfc, plate or staff)"))
    }
}
