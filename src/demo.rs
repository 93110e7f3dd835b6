//! `parkflow demo`: the whole loop on embedded defaults — lots, simulated traffic through the
//! API, ingest into the lake, occupancy, forecast backtest, pricing published back to the API —
//! and a management summary.

use crate::config::Config;
use crate::steps;
use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use parkflow_api::ManualClock;
use parkflow_forecast::{Backtest, Measure, Series, held_out_days};
use parkflow_pipeline::RefreshReport;
use parkflow_pricing::RateChange;
use parkflow_simulator::scenario::{SimConfig, arrivals, local};
use parkflow_simulator::{SimReport, scenario};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::UsageSummary;
use warehouse_schema::tables::Section;
use warehouse_schema::{Table, VehicleType};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub lots: usize,
    pub days: u32,
    pub seed: u64,
    pub data_dir: PathBuf,
    /// Draw progress bars (off in tests).
    pub progress: bool,
    /// Where the simulated world ends; `None`: now, rounded down to the hour, so that what
    /// the demo leaves behind is today's data for `report`, `serve` and the portal.
    pub end: Option<DateTime<Utc>>,
}

/// The end of the world for `opts`: its own, or the current hour.
pub fn world_end(opts: &DemoOptions) -> DateTime<Utc> {
    opts.end.unwrap_or_else(|| {
        let now = Utc::now();
        now.duration_trunc(Duration::hours(1)).unwrap_or(now)
    })
}

/// Everything the demo computed; equal for two runs with the same options.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOutcome {
    pub lots: usize,
    pub days: u32,
    pub seed: u64,
    /// The simulated period: local midnight of its first day to its end.
    pub period: (DateTime<Utc>, DateTime<Utc>),
    pub sim: SimReport,
    pub outbox_events: i64,
    /// How the events went from the API to the lake.
    pub ingest_path: String,
    /// The ClickHouse database the run wrote to, when it went through Kafka and ClickHouse,
    /// and the stay figures it answers with (after its derived tables were rebuilt).
    pub clickhouse_database: Option<String>,
    pub clickhouse_stays: Option<parkflow_ingest::sink::clickhouse::StayTotals>,
    /// Each lot's most cars present at a quarter-hour mark, by ClickHouse.
    pub clickhouse_peaks: Option<Vec<(i64, i64)>>,
    pub lake_events: u64,
    pub dead_letters: u64,
    pub refresh: RefreshReport,
    pub summary: UsageSummary,
    pub backtest: Result<Backtest, String>,
    /// Forecast hours with a free-spot chance published to the API, over how many lots.
    pub arrival_forecast: (usize, usize),
    /// The pricing run at the end: the policy, what its forecast was made of, time in band
    /// before and (forecast) after, and the rates it published.
    pub pricing: crate::steps::Priced,
}

impl DemoOutcome {
    /// Each lot's most cars present at a quarter-hour mark, by the lake (lot id, cars): what
    /// `clickhouse_peaks` must equal.
    pub fn lake_peaks(&self) -> Vec<(i64, i64)> {
        self.summary
            .lots
            .iter()
            .map(|l| (l.lot_id.0, l.max_cars_present))
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub phases: Vec<(&'static str, std::time::Duration)>,
}

pub async fn run(cfg: Config, opts: &DemoOptions) -> anyhow::Result<(DemoOutcome, Timings)> {
    let cfg = own_topics(cfg.with_data_dir(opts.data_dir.clone()));
    reset(&cfg)?;
    let sim = SimConfig {
        seed: opts.seed,
        lots: opts.lots,
        ..SimConfig::default()
    }
    .ending_at(world_end(opts), opts.days);
    let mut timings = Timings::default();
    let mut phase = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Timings| {
        timings.phases.push((name, phase.elapsed()));
        phase = Instant::now();
    };

    // Lots, created through the API at the start of the simulated period.
    let clock = ManualClock::new(sim.day_start(0));
    let (state, metrics) = steps::open_api(&cfg, Arc::new(clock.clone())).await?;
    let lots = steps::create_lots(&state, scenario(&sim)).await?;

    // Traffic: every driver's decision sees the rate in force at their arrival hour.
    let mut rates = HashMap::new();
    for (lot, plan) in &lots {
        for d in 0..sim.days {
            for h in 0..24 {
                let at = local(
                    plan.time_zone,
                    sim.start + Duration::days(i64::from(d)),
                    h * 60,
                );
                for vt in VehicleType::ALL {
                    rates.insert(
                        (*lot, vt, at),
                        state.services.lots().rate_at(*lot, vt, at).await?,
                    );
                }
            }
        }
    }
    let (planned, demand, priced_out) = arrivals(&sim, &lots, |lot, vt, at| {
        let hour = at.duration_trunc(Duration::hours(1)).unwrap_or(at);
        rates
            .get(&(lot, vt, hour))
            .copied()
            .unwrap_or(sim.reference_cents)
    });
    // What the API records is ingested on the runtime's workers as the world runs on this
    // thread; what is left when it ends is drained below.
    let ingest = steps::Ingest::open(&cfg, &state, &metrics).await?.beside();
    let bar = progress_bar(opts.progress, planned.len() as u64, "simulate");
    let mut report = parkflow_simulator::run(
        (&state.services, &state.accounts),
        &clock,
        planned,
        (sim.seed, sim.end()),
        |n| bar.inc(n),
    )
    .await?;
    bar.finish_and_clear();
    report.demand = demand;
    report.priced_out = priced_out;
    lap("simulate", &mut timings);

    // Ingest everything the API recorded: embedded, or through Kafka when it is configured.
    let mut ingest = ingest.finish().await?;
    let head = state.services.store().outbox_head().await?;
    let bar = progress_bar(opts.progress, head as u64, "ingest");
    ingest.drain_with(|n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    lap("ingest", &mut timings);

    // Occupancy and friends, as of the end of the period.
    let lake = Lake::new(cfg.lake_dir());
    let spinner = progress_bar(opts.progress, 0, "occupancy");
    let refresh = parkflow_pipeline::refresh(&lake, sim.end()).await?;
    spinner.finish_and_clear();
    lap("occupancy", &mut timings);

    // Forecast: hold out the last week (every weekday once), or what a short history allows.
    let spinner = progress_bar(opts.progress, 0, "forecast");
    let hours = parkflow_pipeline::lot_hours(&lake).await?;
    let arrivals = Series::from_lot_hours(&hours, Measure::Arrivals);
    let backtest =
        parkflow_forecast::backtest(&arrivals, held_out_days(&arrivals)).map_err(|e| e.to_string());
    // The next day's forecast as the nightly job leaves it: the push file, and each lot's
    // chance of a free spot per hour, published to the API (`GET /v1/lots/{id}/arrival`).
    let trained = parkflow_push::train(&lake, sim.end(), cfg.jobs.push_threshold).await?;
    trained.save(&cfg.data_dir)?;
    let arrival_hours = parkflow_push::publish_arrival(&state.services, &trained).await?;
    spinner.finish_and_clear();
    lap("forecast", &mut timings);

    // Pricing on the whole period, announced for the period that follows.
    let spinner = progress_bar(opts.progress, 0, "price");
    let sink = steps::rates_sink(&cfg, &state)?;
    let priced = steps::price_and_publish(
        &cfg,
        &state,
        sink.as_ref(),
        &lake,
        (sim.day_start(0), sim.end()),
        sim.end(),
    )
    .await?;
    // Through Kafka the changes went out on the rates topic: the API applies them from there,
    // as every API process does.
    let lots_changed: std::collections::BTreeSet<_> =
        priced.changes.iter().map(|c| c.lot_id).collect();
    let group = format!("{}-demo-rates", cfg.kafka.group_id);
    steps::apply_published_rates(&cfg, &state, &group, lots_changed.len()).await?;
    // The published rates are events too: ingest them so the lake holds everything.
    ingest.drain().await?;
    spinner.finish_and_clear();
    lap("price", &mut timings);

    let summary = parkflow_pipeline::usage_summary(&lake).await?;
    // Through ClickHouse, the warehouse answers the same stay figures from its own tables.
    let (clickhouse_stays, clickhouse_peaks) = match steps::clickhouse_sink(&cfg)? {
        Some(clickhouse) if cfg.kafka.is_enabled() => {
            clickhouse.refresh_derived().await?;
            (
                Some(clickhouse.stay_totals().await?),
                Some(clickhouse.peak_present(sim.end()).await?),
            )
        }
        _ => (None, None),
    };
    let manifest = lake.manifest(Section::Ingested)?;
    let outcome = DemoOutcome {
        lots: lots.len(),
        days: opts.days,
        seed: sim.seed,
        period: (sim.day_start(0), sim.end()),
        sim: report,
        outbox_events: state.services.store().outbox_len().await?,
        clickhouse_database: clickhouse_stays.map(|_| cfg.clickhouse.database.clone()),
        clickhouse_stays,
        clickhouse_peaks,
        ingest_path: if cfg.kafka.is_enabled() {
            let warehouse = if cfg.clickhouse.is_enabled() {
                format!("Parquet + ClickHouse database {}", cfg.clickhouse.database)
            } else {
                "Parquet".into()
            };
            format!(
                "outbox → relay → Kafka topic {} → consumer group → {warehouse}; rates back over {}",
                cfg.kafka.events_topic, cfg.kafka.rates_topic
            )
        } else {
            "outbox → Parquet (embedded)".into()
        },
        lake_events: manifest.rows_of(Table::FactParkingEvent),
        dead_letters: manifest.rows_of(Table::DeadLetters),
        refresh,
        summary,
        backtest,
        arrival_forecast: (
            arrival_hours,
            trained
                .lots
                .iter()
                .filter(|l| !l.free_chance.is_empty())
                .count(),
        ),
        pricing: priced,
    };
    state.services.store().close().await;
    lap("summary", &mut timings);
    Ok((outcome, timings))
}

/// A demo through Kafka (and ClickHouse) writes to topics and a database of its own run, so a
/// run never reads an earlier run's events: `<topic>-demo-<run>`, `<database>_demo_<run>`.
fn own_topics(mut cfg: Config) -> Config {
    if !cfg.kafka.is_enabled() {
        return cfg;
    }
    let run = Utc::now().format("%Y%m%d%H%M%S%3f").to_string();
    let k = &mut cfg.kafka;
    for topic in [&mut k.events_topic, &mut k.dlq_topic, &mut k.rates_topic] {
        *topic = format!("{topic}-demo-{run}");
    }
    k.group_id = format!("{}-demo-{run}", k.group_id);
    if cfg.clickhouse.is_enabled() {
        cfg.clickhouse.database = format!("{}_demo_{run}", cfg.clickhouse.database);
    }
    cfg
}

/// Start from nothing so that the same seed gives the same result.
fn reset(cfg: &Config) -> anyhow::Result<()> {
    for name in ["parkflow.db", "parkflow.db-wal", "parkflow.db-shm"] {
        let p = cfg.data_dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let lake = cfg.lake_dir();
    if lake.exists() {
        std::fs::remove_dir_all(&lake)
            .with_context(|| format!("cannot remove {}", lake.display()))?;
    }
    Ok(())
}

fn progress_bar(visible: bool, len: u64, name: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    if len == 0 {
        let s = ProgressBar::new_spinner().with_message(name);
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        return s;
    }
    ProgressBar::new(len)
        .with_style(
            ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        )
        .with_message(name)
}

/// `$1,234.56` (`-$0.05`): the report's money with the demo's currency sign.
fn dollars(cents: i64) -> String {
    let amount = parkflow_report::money(cents);
    match amount.strip_prefix('-') {
        Some(abs) => format!("-${abs}"),
        None => format!("${amount}"),
    }
}

/// The management summary.
pub fn render(o: &DemoOutcome, t: &Timings, data_dir: &std::path::Path) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "parkflow demo: {} lots × {} days, seed {}, data in {}",
        o.lots,
        o.days,
        o.seed,
        data_dir.display()
    );
    let _ = writeln!(
        s,
        "Traffic    {} drivers wanted to park; {} priced out, {} turned away (lot full), {} stays, {} still parked",
        o.sim.demand, o.sim.priced_out, o.sim.turned_away, o.sim.checked_in, o.sim.still_parked
    );
    let r = &o.sim;
    let _ = writeln!(
        s,
        "Bookings   {} reservations ({} by the waitlist, {} drivers waited), {} changed, {} cancelled, {} no-shows; {} refused by the booking rules",
        r.reservations,
        r.waitlist_booked,
        r.waitlisted,
        r.changed,
        r.cancelled,
        r.no_shows,
        r.booking_refused
    );
    let _ = writeln!(
        s,
        "Payments   {} by card, {} by wallet, {} from prepaid balances ({} top-ups), {} declined, {} reversed by the bank later",
        r.paid_card,
        r.paid_wallet,
        r.paid_balance,
        r.top_ups,
        r.payments_declined,
        r.payments_reversed
    );
    let _ = writeln!(
        s,
        "Gates      {} entries by pass, {} by plate, {} drive-ups",
        r.pass_entries, r.plate_entries, r.drive_ups
    );
    let _ = writeln!(
        s,
        "Passes     {} monthly passes bought; their holders entered {} times (free inside the pass's hours)",
        r.passes_bought, r.holder_entries
    );
    let _ = writeln!(
        s,
        "Events     {} recorded by the API, {} in the lake, {} dead letters ({})",
        o.outbox_events, o.lake_events, o.dead_letters, o.ingest_path
    );
    if let Some(c) = &o.clickhouse_stays {
        let _ = writeln!(
            s,
            "ClickHouse {} stays ({} open), revenue {}: {} the lake's",
            c.stays,
            c.open_stays,
            dollars(c.revenue_cents),
            if (c.stays, c.open_stays, c.revenue_cents)
                == (
                    o.summary.stays,
                    o.summary.open_stays,
                    o.summary.revenue_cents
                )
            {
                "the same as"
            } else {
                "NOT the same as"
            }
        );
    }
    if let Some(peaks) = &o.clickhouse_peaks {
        let lake = o.lake_peaks();
        let _ = writeln!(
            s,
            "           each lot's most cars present at a quarter-hour: {} the lake's",
            if *peaks == lake {
                "the same as"
            } else {
                "NOT the same as"
            }
        );
    }
    let _ = writeln!(
        s,
        "Revenue    {} from {} completed stays (mean stay {:.0} min); mean occupancy {:.1} %",
        dollars(o.summary.revenue_cents),
        o.summary.stays - o.summary.open_stays,
        o.summary.mean_stay_minutes,
        100.0 * o.summary.mean_occupancy
    );
    let _ = writeln!(s, "Peaks      busiest lots (peak 15-minute occupancy):");
    let mut lots = o.summary.lots.clone();
    lots.sort_by(|a, b| {
        b.peak_occupancy
            .total_cmp(&a.peak_occupancy)
            .then(a.lot_id.cmp(&b.lot_id))
    });
    for l in lots.iter().take(5) {
        let _ = writeln!(
            s,
            "             {:<32} cap {:>3}  peak {:>5.1} % at {}  mean {:>5.1} %  revenue {}",
            l.lot_name,
            l.capacity,
            100.0 * l.peak_occupancy,
            l.peak_local,
            100.0 * l.mean_occupancy,
            dollars(l.revenue_cents)
        );
    }
    match &o.backtest {
        Ok(b) => {
            for minutes in [60, 24 * 60] {
                if let Some(r) = b.at_minutes(minutes) {
                    let (name, best) = b.best_baseline(r);
                    let _ = writeln!(
                        s,
                        "Forecast   hourly arrivals {} h ahead, {} held out ({} forecasts): linfa model MAE {:.2} (RMSE {:.2}, {:.1} pp of capacity) vs best baseline ({name}) MAE {:.2}: ratio {:.2}",
                        minutes / 60,
                        match b.test_days {
                            1 => "last day".to_owned(),
                            n => format!("last {n} days"),
                        },
                        r.model.n,
                        r.model.mae,
                        r.model.rmse,
                        r.model.mae_pp,
                        best.mae,
                        r.ratio_to_best_baseline()
                    );
                }
            }
        }
        Err(e) => {
            let _ = writeln!(s, "Forecast   not evaluated: {e}");
        }
    }
    let (hours, lots) = o.arrival_forecast;
    let _ = writeln!(
        s,
        "           the next day's chance of a free spot published for {lots} lots ({hours} lot-hours): GET /v1/lots/{{id}}/arrival?at=…&vehicle-type=car"
    );
    let car: Vec<&RateChange> = o
        .pricing
        .changes
        .iter()
        .filter(|c| c.vehicle_type == VehicleType::Car)
        .collect();
    let up = car.iter().filter(|c| c.new_cents > c.old_cents).count();
    let share = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1} %", 100.0 * v));
    let _ = writeln!(
        s,
        "Pricing    policy {}: time in the target band {} over the period, {} forecast at the new rates",
        o.pricing.policy.as_str(),
        share(o.pricing.in_band_before),
        share(o.pricing.in_band_after)
    );
    let (model, lots) = o.pricing.model_lots;
    let _ = writeln!(
        s,
        "           hourly forecast priced on: the linfa model's next 24 hours for {model} of {lots} lots, the last three weeks' hours for the rest"
    );
    let _ = writeln!(
        s,
        "           {} car rates changed ({} up, {} down; {} rate rows in all), effective {}",
        car.len(),
        up,
        car.len() - up,
        o.pricing.changes.len(),
        o.pricing.effective_from.format("%Y-%m-%d %H:%M UTC")
    );
    let mut shown = car.clone();
    shown.sort_by(|a, b| {
        (b.occupancy - 0.7)
            .abs()
            .total_cmp(&(a.occupancy - 0.7).abs())
    });
    for c in shown.iter().take(5) {
        let _ = writeln!(
            s,
            "             lot {:>3} {:<9} {:<7} occupancy {:>5.1} %: {} → {} per hour",
            c.lot_id,
            c.band,
            c.day_kind,
            100.0 * c.occupancy,
            dollars(c.old_cents),
            dollars(c.new_cents)
        );
    }
    let total: f64 = t.phases.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let phases: Vec<String> = t
        .phases
        .iter()
        .map(|(n, d)| format!("{n} {:.1} s", d.as_secs_f64()))
        .collect();
    let _ = writeln!(s, "Timing     {total:.1} s: {}", phases.join(", "));
    s
}
