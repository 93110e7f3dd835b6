//! Where each record is in its life, as enums: stored and sent by the same snake_case names, so
//! no module compares status strings. A stored name no enum knows is an error where the row is
//! read, never a silent string.

/// An enum of unit variants with the name each is stored and sent by: `ALL`, `as_str`,
/// `Display`, `FromStr` (its error lists the names) and serde, all from one list.
macro_rules! stored_names {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The name stored and sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|st| st.as_str()).collect();
                        format!("unknown status `{s}`: one of {}", names.join(", "))
                    })
            }
        }
    };
}

stored_names! {
    /// Where a reservation is in its life: it holds its spot while `Active` (booked) or
    /// `CheckedIn` (the car is in), and lets it go when `Completed`, `Cancelled` or `NoShow`.
    pub enum ReservationStatus {
        Active = "active",
        CheckedIn = "checked_in",
        Completed = "completed",
        Cancelled = "cancelled",
        NoShow = "no_show",
    }
}

stored_names! {
    /// Where a payment is: `Pending` until the gateway (or the balance) answers, then
    /// `Captured`, `Declined` or `Failed`; a captured one may later be `Reversed` (by the bank)
    /// or `Refunded`.
    pub enum PaymentStatus {
        Pending = "pending",
        Captured = "captured",
        Declined = "declined",
        Failed = "failed",
        Reversed = "reversed",
        Refunded = "refunded",
    }
}

stored_names! {
    /// Where a waitlist entry is: `Waiting` until a spot frees up for its window, then
    /// `Notified` (told to book) or `Booked` (booked for the driver); or it ends `Expired` (the
    /// window started first), `Withdrawn` (by the driver) or `Failed` (the window can never be
    /// served; the entry says why).
    pub enum WaitlistStatus {
        Waiting = "waiting",
        Notified = "notified",
        Booked = "booked",
        Expired = "expired",
        Withdrawn = "withdrawn",
        Failed = "failed",
    }
}

stored_names! {
    /// Where one message's delivery on one channel is: `Pending` while attempts remain, then
    /// `Delivered`, `Failed` (attempts used up) or `Skipped` (the driver turned the channel off
    /// or gave no address).
    pub enum DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
        Skipped = "skipped",
    }
}

stored_names! {
    /// Where a monthly pass is: `Pending` while its first payment runs (its place already
    /// taken), then `Active` period after period; it ends `Ended` (cancelled, at its period's
    /// end, or with its holder's account), `Lapsed` (a renewal was refused) or `PaymentFailed`
    /// (its first payment was refused, or a period's was reversed).
    pub enum PassStatus {
        Pending = "pending",
        Active = "active",
        Ended = "ended",
        Lapsed = "lapsed",
        PaymentFailed = "payment_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_name_and_its_json() {
        fn round_trip<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + std::fmt::Display,
            T: serde::Serialize + serde::de::DeserializeOwned,
        {
            for &st in all {
                let name = st.to_string();
                assert_eq!(name.parse::<T>().ok(), Some(st));
                assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{name}\""));
                assert_eq!(
                    serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(),
                    st
                );
            }
        }
        round_trip(ReservationStatus::ALL);
        round_trip(PaymentStatus::ALL);
        round_trip(WaitlistStatus::ALL);
        round_trip(DeliveryStatus::ALL);
        round_trip(PassStatus::ALL);
        assert_eq!(
            "gone".parse::<WaitlistStatus>().unwrap_err(),
            "unknown status `gone`: one of waiting, notified, booked, expired, withdrawn, failed"
        );
    }
}
