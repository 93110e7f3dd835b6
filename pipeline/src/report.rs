//! Management's usage report: occupancy by hour and weekday, peak times, turnover, dwell times,
//! revenue by lot, vehicle type and entry method, payments by method, cancellation and no-show rates, and how far
//! ahead reservations are made — over a period, for every lot or one.
//!
//! Stays count in the period they started in; occupancy buckets in the period they lie in;
//! reservation events in the period they happened in.

use crate::context::ordered_session;
use crate::error::Result;
use crate::queries::Rows;
use chrono::{DateTime, Utc};
use warehouse_schema::LotId;
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::{
    HourCell, LotUsage, PassStats, ReportPeak, ReservationStats, UsageReport,
};
use warehouse_schema::tables::col;

/// Dwell buckets: (label, upper bound in minutes), shortest first.
const DWELL: [(&str, i64); 7] = [
    ("< 30 min", 30),
    ("30–60 min", 60),
    ("1–2 h", 120),
    ("2–4 h", 240),
    ("4–8 h", 480),
    ("8–24 h", 1_440),
    ("> 24 h", i64::MAX),
];

/// Lead-time buckets: (label, upper bound in minutes).
const LEAD: [(&str, i64); 5] = [
    ("< 1 h", 60),
    ("1–6 h", 360),
    ("6–24 h", 1_440),
    ("1–7 days", 10_080),
    ("> 7 days", i64::MAX),
];

/// `CASE` expression putting `minutes` into the buckets, as their index.
fn bucket_case(minutes: &str, buckets: &[(&str, i64)]) -> String {
    let mut s = String::from("CASE");
    for (i, (_, upper)) in buckets.iter().enumerate() {
        if *upper == i64::MAX {
            s += &format!(" ELSE {i}");
        } else {
            s += &format!(" WHEN {minutes} < {upper} THEN {i}");
        }
    }
    s + " END"
}

pub async fn usage_report(
    lake: &Lake,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lot: Option<LotId>,
) -> Result<UsageReport> {
    let ctx = ordered_session(lake).await?;
    let (f, t) = (from.timestamp_millis(), to.timestamp_millis());
    let lot_filter = |col: &str| lot.map_or(String::new(), |l| format!(" AND {col} = {}", l.0));
    let in_period =
        |col: &str| format!("CAST({col} AS BIGINT) >= {f} AND CAST({col} AS BIGINT) < {t}");

    let cells = Rows::fetch(
        &ctx,
        &format!(
            "SELECT CAST(date_part('dow', local_date) AS BIGINT) AS dow, CAST(local_time_key / 4 AS BIGINT) AS hour,
                    AVG(occupancy_ratio) AS occ
             FROM occupancy_15m WHERE {}{} GROUP BY 1, 2 ORDER BY 1, 2",
            in_period("bucket_start"),
            lot_filter("lot_id")
        ),
    )
    .await?;
    let mut occupancy_by_hour = (0..cells.len())
        .map(|i| {
            Ok(HourCell {
                // date_part('dow') counts from Sunday = 0; we count from Monday = 0.
                weekday: ((cells.i64("dow", i)? + 6) % 7) as u32,
                hour: cells.i64("hour", i)? as u32,
                mean_occupancy: cells.f64("occ", i)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    occupancy_by_hour.sort_by_key(|c| (c.weekday, c.hour));

    let peaks = Rows::fetch(
        &ctx,
        &format!(
            "SELECT lot_id, CAST(local_date AS VARCHAR) AS d, local_time_key AS k, occupancy_ratio AS occ
             FROM occupancy_15m WHERE {}{} ORDER BY occupancy_ratio DESC, bucket_start, lot_id LIMIT 5",
            in_period("bucket_start"),
            lot_filter("lot_id")
        ),
    )
    .await?;
    let peaks = (0..peaks.len())
        .map(|i| {
            let k = peaks.i64("k", i)?;
            Ok(ReportPeak {
                lot_id: LotId(peaks.i64("lot_id", i)?),
                local: format!("{} {:02}:{:02}", peaks.str("d", i)?, k / 4, (k % 4) * 15),
                occupancy: peaks.f64("occ", i)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let days = ((t - f) as f64 / 86_400_000.0).max(1.0 / 96.0);
    let stays = format!(
        "SELECT * FROM fact_stay WHERE {}{}",
        in_period("entered_at"),
        lot_filter("lot_id")
    );
    let per_lot = Rows::fetch(
        &ctx,
        &format!(
            "SELECT d.lot_id, d.lot_name, d.capacity, COUNT(s.session_id) AS stays,
                    COALESCE(SUM(s.amount_cents), 0) AS revenue, COALESCE(AVG(s.duration_s), 0) / 60.0 AS dwell
             FROM dim_lot d LEFT JOIN ({stays}) s ON s.lot_id = d.lot_id
             WHERE TRUE{} GROUP BY d.lot_id, d.lot_name, d.capacity ORDER BY d.lot_id",
            lot_filter("d.lot_id")
        ),
    )
    .await?;
    let lots = (0..per_lot.len())
        .map(|i| {
            let capacity = per_lot.i64("capacity", i)? as i32;
            let n = per_lot.i64("stays", i)? as u64;
            Ok(LotUsage {
                lot_id: LotId(per_lot.i64("lot_id", i)?),
                lot_name: per_lot.str("lot_name", i)?.to_owned(),
                capacity,
                stays: n,
                turnover: n as f64 / (f64::from(capacity.max(1)) * days),
                revenue_cents: per_lot.i64("revenue", i)?,
                mean_dwell_minutes: per_lot.f64("dwell", i)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let by = |col: &'static str| {
        let ctx = &ctx;
        let stays = &stays;
        async move {
            let r = Rows::fetch(
                ctx,
                &format!(
                    "SELECT {col} AS k, COUNT(*) AS n, COALESCE(SUM(amount_cents), 0) AS revenue
                     FROM ({stays}) GROUP BY {col} ORDER BY {col}"
                ),
            )
            .await?;
            (0..r.len())
                .map(|i| {
                    Ok((
                        r.str("k", i)?.to_owned(),
                        r.i64("n", i)? as u64,
                        r.i64("revenue", i)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()
        }
    };
    let by_vehicle_type = by("vehicle_type").await?;
    let by_method = by("method").await?;

    let dwell_rows = Rows::fetch(
        &ctx,
        &format!(
            "SELECT {} AS b, COUNT(*) AS n FROM ({stays}) WHERE duration_s IS NOT NULL GROUP BY 1",
            bucket_case("duration_s / 60", &DWELL)
        ),
    )
    .await?;
    let dwell = histogram(&dwell_rows, &DWELL)?;

    let events = format!(
        "SELECT * FROM fact_parking_event WHERE {}{}",
        in_period("occurred_at"),
        lot_filter("lot_id")
    );
    let counts = Rows::fetch(
        &ctx,
        &format!(
            "SELECT SUM(CASE WHEN event_type = 'reservation_created' THEN 1 ELSE 0 END) AS created,
                    SUM(CASE WHEN event_type = 'reservation_cancelled' THEN 1 ELSE 0 END) AS cancelled,
                    SUM(CASE WHEN event_type = 'reservation_no_show' THEN 1 ELSE 0 END) AS no_shows
             FROM ({events})"
        ),
    )
    .await?;
    let reservations = ReservationStats {
        created: counts.i64_or_zero("created", 0)? as u64,
        cancelled: counts.i64_or_zero("cancelled", 0)? as u64,
        no_shows: counts.i64_or_zero("no_shows", 0)? as u64,
    };
    let passes = Rows::fetch(
        &ctx,
        &format!(
            "SELECT SUM(CASE WHEN event_type = 'monthly_pass_purchased' THEN 1 ELSE 0 END) AS bought,
                    SUM(CASE WHEN event_type = 'monthly_pass_renewed' THEN 1 ELSE 0 END) AS renewed,
                    SUM(CASE WHEN event_type = 'monthly_pass_ended' THEN 1 ELSE 0 END) AS ended,
                    SUM(CASE WHEN event_type IN ('monthly_pass_purchased', 'monthly_pass_renewed')
                             THEN amount_cents ELSE 0 END) AS revenue,
                    SUM(CASE WHEN event_type = 'check_in' AND {pass} IS NOT NULL THEN 1 ELSE 0 END) AS entries
             FROM ({events})",
            pass = col::MONTHLY_PASS_ID
        ),
    )
    .await?;
    let monthly_passes = PassStats {
        purchased: passes.i64_or_zero("bought", 0)? as u64,
        renewed: passes.i64_or_zero("renewed", 0)? as u64,
        ended: passes.i64_or_zero("ended", 0)? as u64,
        revenue_cents: passes.i64_or_zero("revenue", 0)?,
        entries: passes.i64_or_zero("entries", 0)? as u64,
    };
    let lead_rows = Rows::fetch(
        &ctx,
        &format!(
            "SELECT {} AS b, COUNT(*) AS n FROM ({events})
             WHERE event_type = 'reservation_created' AND start_at IS NOT NULL GROUP BY 1",
            bucket_case(
                "(CAST(start_at AS BIGINT) - CAST(occurred_at AS BIGINT)) / 60000",
                &LEAD
            )
        ),
    )
    .await?;
    let lead_times = histogram(&lead_rows, &LEAD)?;
    let paid = Rows::fetch(
        &ctx,
        &format!(
            "SELECT COALESCE(method, 'unknown') AS k, COUNT(*) AS n, COALESCE(SUM(amount_cents), 0) AS revenue
             FROM ({events}) WHERE event_type = 'payment_captured' GROUP BY 1 ORDER BY 1"
        ),
    )
    .await?;
    let by_payment_method = (0..paid.len())
        .map(|i| {
            Ok((
                paid.str("k", i)?.to_owned(),
                paid.i64("n", i)? as u64,
                paid.i64("revenue", i)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;

    let codes = Rows::fetch(
        &ctx,
        &format!(
            "SELECT currency AS c FROM ({stays}) WHERE currency IS NOT NULL
             UNION SELECT currency AS c FROM ({events})
                   WHERE event_type IN ('payment_captured', 'monthly_pass_purchased', 'monthly_pass_renewed')
                     AND currency IS NOT NULL
             ORDER BY 1"
        ),
    )
    .await?;
    let currencies = (0..codes.len())
        .map(|i| Ok(codes.str("c", i)?.to_owned()))
        .collect::<Result<Vec<_>>>()?;

    Ok(UsageReport {
        from,
        to,
        lot,
        occupancy_by_hour,
        peaks,
        lots,
        by_vehicle_type,
        by_method,
        by_payment_method,
        dwell,
        reservations,
        lead_times,
        monthly_passes,
        currencies,
    })
}

/// Every bucket in order, with the counts found (zero for the rest).
fn histogram(rows: &Rows, buckets: &[(&str, i64)]) -> Result<Vec<(String, u64)>> {
    let mut out: Vec<(String, u64)> = buckets.iter().map(|(l, _)| ((*l).to_owned(), 0)).collect();
    for i in 0..rows.len() {
        let b = rows.i64("b", i)? as usize;
        if let Some(slot) = out.get_mut(b) {
            slot.1 = rows.i64("n", i)? as u64;
        }
    }
    Ok(out)
}
