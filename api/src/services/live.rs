//! Live availability: what a driver's app shows of a lot (free spots per vehicle type, the rate
//! now, the next announced change), pushed to watchers as it changes.
//!
//! The change signal is the outbox, as for the availability index: every change of any API
//! process on the database writes its event there, so one follower per process reads the
//! outbox after the last position it saw and recomputes the lots that changed — this
//! process's changes as soon as they commit (the store's `committed` wake-up), other
//! processes' within `live.poll_ms`. A lot is recomputed only while someone watches it, and a
//! new state is pushed only when what a driver sees differs. Each state carries the outbox
//! position it reflects, which is the stream's event id: a client that reconnects with
//! `Last-Event-ID` gets a lot again only if it changed after that position.

use super::Live;
use crate::config::LiveConfig;
use crate::domain::error::{Error, Result};
use crate::services::lots::{AVAILABILITY_EVENTS, rate_in_force_conn};
use crate::store::{notifications as messages, rates, stays};
use chrono::{DateTime, Duration, Utc};
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, watch};
use warehouse_schema::{LotId, UserId, VehicleType};

/// A lot as a driver's app shows it, live.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LotLive {
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    /// The outbox position whose changes this state reflects: the stream's event id.
    pub position: i64,
    /// When it was computed.
    pub at: DateTime<Utc>,
    /// Open spots.
    pub capacity: i64,
    /// Open spots with a car in them.
    pub occupied: i64,
    /// Spots with no car in them and no reservation holding them now.
    pub free_spots: i64,
    /// Free spots a vehicle of each type may take now (an EV spot counts for cars where the
    /// lot opens EV spots to cars).
    #[schema(value_type = std::collections::HashMap<String, i64>)]
    pub free_for: BTreeMap<VehicleType, i64>,
    pub currency: String,
    /// The rate a car pays per hour now.
    pub current_cents_per_hour: i64,
    /// The next rate change for cars announced ahead, if any.
    pub next_rate_change: Option<AnnouncedRate>,
}

impl LotLive {
    /// Whether a driver would see a difference (the position and the time aside).
    fn shows_same(&self, other: &Self) -> bool {
        (
            self.capacity,
            self.occupied,
            self.free_spots,
            &self.free_for,
            &self.currency,
            self.current_cents_per_hour,
            &self.next_rate_change,
        ) == (
            other.capacity,
            other.occupied,
            other.free_spots,
            &other.free_for,
            &other.currency,
            other.current_cents_per_hour,
            &other.next_rate_change,
        )
    }
}

/// A published rate that takes effect later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnouncedRate {
    pub band: String,
    pub day_kind: String,
    pub cents_per_hour: i64,
    pub effective_from: DateTime<Utc>,
}

/// A watched inbox: the id of the newest message known for its driver.
pub type InboxWatch = watch::Receiver<i64>;

/// A watched lot's state; `None` until the first computation (the watch is registered before
/// computing, so a change committed meanwhile is not missed).
pub type LotWatch = watch::Receiver<Option<Arc<LotLive>>>;

/// The live states of watched lots in this process, and the follower that keeps them current.
#[derive(Debug)]
pub struct LiveHub {
    config: LiveConfig,
    lots: Mutex<HashMap<LotId, watch::Sender<Option<Arc<LotLive>>>>>,
    /// The outbox position up to which changes were applied.
    position: AtomicI64,
    /// Drivers whose inbox is watched: the newest message id known for each.
    inboxes: Mutex<HashMap<UserId, watch::Sender<i64>>>,
    /// The message id up to which new messages were told to their drivers' watchers.
    inbox_position: AtomicI64,
    /// Lots watched by open streams (see [`StreamSlot`]).
    watches: Arc<AtomicUsize>,
    started: OnceCell<()>,
}

impl LiveHub {
    pub fn new(config: LiveConfig) -> Self {
        Self {
            config,
            lots: Mutex::new(HashMap::new()),
            position: AtomicI64::new(0),
            inboxes: Mutex::new(HashMap::new()),
            inbox_position: AtomicI64::new(0),
            watches: Arc::new(AtomicUsize::new(0)),
            started: OnceCell::new(),
        }
    }

    pub fn config(&self) -> LiveConfig {
        self.config
    }

    fn lots(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<LotId, watch::Sender<Option<Arc<LotLive>>>>> {
        self.lots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn inboxes(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, watch::Sender<i64>>> {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One open stream of `lots` lots, counted while it lives: dropping it (the client went away)
/// frees its watches.
#[derive(Debug)]
pub struct StreamSlot {
    watches: Arc<AtomicUsize>,
    lots: usize,
    gauge: Gauge,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.watches.fetch_sub(self.lots, Ordering::AcqRel);
        self.gauge.dec();
    }
}

impl Live<'_> {
    /// Start this process's follower (once; later calls return at once). The position starts
    /// at the outbox's head: states are computed from the store, not replayed.
    pub async fn start(&self) -> Result<()> {
        let hub = self.live_hub();
        hub.started
            .get_or_try_init(|| async {
                let head = self.store().outbox_head().await?;
                hub.position.fetch_max(head, Ordering::AcqRel);
                let newest = messages::head(self.store().pool()).await?;
                hub.inbox_position.fetch_max(newest, Ordering::AcqRel);
                let services = (*self.cx).clone();
                tokio::spawn(async move { services.live().follow().await });
                Ok::<_, Error>(())
            })
            .await?;
        Ok(())
    }

    /// Follow the outbox for ever: after each local commit, and every `poll_ms` for other
    /// processes' changes.
    async fn follow(&self) {
        let poll = std::time::Duration::from_millis(self.live_hub().config.poll_ms.max(10));
        loop {
            tokio::select! {
                _ = self.store().committed() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "live: reading the outbox failed; retrying");
            }
            if let Err(e) = self.catch_up_inboxes().await {
                tracing::warn!(error = %e, "live: reading new messages failed; retrying");
            }
        }
    }

    /// Apply the changes recorded after the last position: recompute each watched lot that
    /// changed and push its state if a driver would see a difference. How many lots were
    /// pushed.
    pub async fn catch_up(&self) -> Result<usize> {
        let hub = self.live_hub();
        let after = hub.position.load(Ordering::Acquire);
        let head = self.store().outbox_head().await?;
        if head <= after {
            return Ok(0);
        }
        let watched: Vec<LotId> = {
            let mut lots = hub.lots();
            lots.retain(|_, tx| tx.receiver_count() > 0);
            lots.keys().copied().collect()
        };
        let mut pushed = 0;
        if !watched.is_empty() {
            // What changes free spots, and rate publications.
            let live_events = [AVAILABILITY_EVENTS, &["rate_published"]].concat();
            let changed = self
                .store()
                .outbox()
                .lots_with_events(after, head, &live_events)
                .await?;
            for lot in changed.into_iter().map(LotId) {
                if !watched.contains(&lot) {
                    continue;
                }
                let state = Arc::new(self.state(lot, head).await?);
                let Some(tx) = hub.lots().get(&lot).cloned() else {
                    continue;
                };
                if tx.send_if_modified(|current| match current {
                    Some(c) if c.shows_same(&state) => false,
                    _ => {
                        *current = Some(state.clone());
                        true
                    }
                }) {
                    pushed += 1;
                }
            }
        }
        hub.position.fetch_max(head, Ordering::AcqRel);
        Ok(pushed)
    }

    /// Tell the watchers of each driver who got a message since the last look (any process's
    /// message: read from the messages table by id). How many inboxes were told.
    pub async fn catch_up_inboxes(&self) -> Result<usize> {
        const BATCH: i64 = 10_000;
        let hub = self.live_hub();
        let mut told = 0;
        loop {
            let after = hub.inbox_position.load(Ordering::Acquire);
            let watched = {
                let mut inboxes = hub.inboxes();
                inboxes.retain(|_, tx| tx.receiver_count() > 0);
                !inboxes.is_empty()
            };
            if !watched {
                let newest = messages::head(self.store().pool()).await?;
                hub.inbox_position.fetch_max(newest, Ordering::AcqRel);
                return Ok(told);
            }
            let new = messages::recipients_after(self.store().pool(), after, BATCH).await?;
            let Some(&(last, _)) = new.last() else {
                return Ok(told);
            };
            {
                let inboxes = hub.inboxes();
                for (id, user) in &new {
                    let Ok(user) = user.parse().map(UserId) else {
                        continue;
                    };
                    if let Some(tx) = inboxes.get(&user) {
                        tx.send_modify(|newest| *newest = (*newest).max(*id));
                        told += 1;
                    }
                }
            }
            hub.inbox_position.fetch_max(last, Ordering::AcqRel);
            if (new.len() as i64) < BATCH {
                return Ok(told);
            }
        }
    }

    /// The message id up to which new messages were told to their watchers.
    pub fn inbox_position(&self) -> i64 {
        self.live_hub().inbox_position.load(Ordering::Acquire)
    }

    /// Watch `user`'s inbox: the receiver changes when a message for them arrives.
    pub fn watch_inbox(&self, user: UserId) -> InboxWatch {
        let hub = self.live_hub();
        let mut inboxes = hub.inboxes();
        match inboxes.get(&user) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(hub.inbox_position.load(Ordering::Acquire));
                inboxes.insert(user, tx);
                rx
            }
        }
    }

    /// Watch `lot` (not found: an error). The receiver's first value may be `None` for a
    /// moment; the state follows.
    pub async fn watch(&self, lot: LotId) -> Result<LotWatch> {
        let hub = self.live_hub();
        let (rx, fresh) = {
            let mut lots = hub.lots();
            match lots.get(&lot) {
                Some(tx) => (tx.subscribe(), false),
                None => {
                    let (tx, rx) = watch::channel(None);
                    lots.insert(lot, tx);
                    (rx, true)
                }
            }
        };
        if fresh || rx.borrow().is_none() {
            let position = hub.position.load(Ordering::Acquire);
            let state = match self.state(lot, position).await {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    drop(rx);
                    hub.lots().retain(|_, tx| tx.receiver_count() > 0);
                    return Err(e);
                }
            };
            if let Some(tx) = hub.lots().get(&lot) {
                // The follower may have stored a newer state meanwhile: keep that one.
                tx.send_if_modified(|current| {
                    if current.is_none() {
                        *current = Some(state);
                        true
                    } else {
                        false
                    }
                });
            }
        }
        Ok(rx)
    }

    /// A slot for one more stream watching `lots` lots, or `too_many_attempts` when the
    /// process's open streams watch `live.max_watches` lots already.
    pub fn open_stream(&self, lots: usize) -> Result<StreamSlot> {
        let hub = self.live_hub();
        let watches = hub.watches.clone();
        let max = hub.config.max_watches;
        watches
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                n.checked_add(lots).filter(|total| *total <= max)
            })
            .map_err(|_| Error::TooManyRequests { retry_after_s: 5 })?;
        let gauge = self.metrics().live_streams.clone();
        gauge.inc();
        Ok(StreamSlot {
            watches,
            lots,
            gauge,
        })
    }

    /// Lots watched by the streams open in this process (a stream of three lots counts three).
    pub fn open_watches(&self) -> usize {
        self.live_hub().watches.load(Ordering::Acquire)
    }

    /// Lots this process keeps current for someone (dropped once nobody watches them and the
    /// follower next looks).
    pub fn watched_lots(&self) -> usize {
        self.live_hub()
            .lots()
            .values()
            .filter(|tx| tx.receiver_count() > 0)
            .count()
    }

    /// `lot`'s live state now, read from the store, labelled with outbox position `position`.
    pub async fn state(&self, lot: LotId, position: i64) -> Result<LotLive> {
        let now = self.now();
        let mut conn = self.store().pool().acquire().await?;
        let info = self.lots().lot_row(&mut conn, lot).await?;
        let until = now + Duration::minutes(info.drive_up_horizon_minutes);
        let window = (now.timestamp_millis(), until.timestamp_millis());
        let (mut capacity, mut occupied) = (0, 0);
        let mut free_of_type = BTreeMap::new();
        let counts = stays::free_count_by_type(&mut conn, lot, window).await?;
        for (spot_type, open, taken, free) in counts {
            let spot_type: VehicleType = spot_type.parse().map_err(Error::Invalid)?;
            capacity += open;
            occupied += taken;
            free_of_type.insert(spot_type, free);
        }
        let free_for = VehicleType::ALL
            .into_iter()
            .map(|vt| {
                let usable = info.policy.ranked_spot_types(vt);
                let n = usable.iter().filter_map(|t| free_of_type.get(t)).sum();
                (vt, n)
            })
            .collect();
        let rate = rate_in_force_conn(&mut conn, lot, VehicleType::Car, info.tz, now)
            .await?
            .unwrap_or(info.default_cents_per_hour);
        let next = rates::next_announced(&mut conn, lot, VehicleType::Car, now.timestamp_millis())
            .await?
            .and_then(|(band, day_kind, cents, from)| {
                Some(AnnouncedRate {
                    band,
                    day_kind,
                    cents_per_hour: cents,
                    effective_from: DateTime::from_timestamp_millis(from)?,
                })
            });
        Ok(LotLive {
            lot_id: lot,
            position,
            at: now,
            capacity,
            occupied,
            free_spots: free_of_type.values().sum(),
            free_for,
            currency: info.currency,
            current_cents_per_hour: rate,
            next_rate_change: next,
        })
    }

    /// `lot`'s live state now, as of this process's position.
    pub async fn now_state(&self, lot: LotId) -> Result<LotLive> {
        let position = self.live_hub().position.load(Ordering::Acquire);
        self.state(lot, position).await
    }
}
