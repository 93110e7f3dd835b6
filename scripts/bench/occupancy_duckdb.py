"""The occupancy job's SQL in DuckDB, for `parkflow bench occupancy` (benchmark only).

Usage: occupancy_duckdb.py LAKE_DIR AS_OF_MS OUT_DIR

Computes, from the lake's fact_parking_event Parquet files, the same two tables as parkflow's
occupancy job (pipeline/src/occupancy.rs) with the same semantics — per lot, vehicle type and
complete 15-minute UTC bucket before as_of: cars present at the bucket's start, car-time in ms,
arrivals, departures; and per lot, every bucket from its registration with the types summed —
and writes them as Parquet. Then, untimed, it compares them with parkflow's committed output in
the same lake and prints one JSON line: seconds, peak RSS, row counts and mismatching rows.
"""

import json
import os
import resource
import sys
import time

import duckdb

B = 15 * 60 * 1000


def main() -> None:
    lake, as_of, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"SET temp_directory = '{out}/spill'")
    con.execute("SET preserve_insertion_order = false")
    events = f"read_parquet('{lake}/fact_parking_event/*/*.parquet')"

    started = time.perf_counter()
    con.execute(
        f"""
        CREATE TEMP TABLE lots AS
        WITH ev AS (
            SELECT lot_id, event_type, capacity, epoch_ms(occurred_at) AS t, event_id
            FROM {events}
            WHERE epoch_ms(occurred_at) < {as_of}
              AND (event_type = 'lot_registered' OR capacity IS NOT NULL)
        )
        SELECT reg.lot_id, cap.capacity, reg.registered_ms
        FROM (SELECT lot_id, min(t) AS registered_ms FROM ev
              WHERE event_type = 'lot_registered' GROUP BY lot_id) reg
        JOIN (SELECT lot_id, arg_max(capacity, (t, event_id)) AS capacity FROM ev
              WHERE capacity IS NOT NULL GROUP BY lot_id) cap USING (lot_id)
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE pieces AS
        WITH ev AS (
            SELECT session_id, event_type, lot_id, vehicle_type, epoch_ms(occurred_at) AS t
            FROM {events}
            WHERE epoch_ms(occurred_at) < {as_of} AND event_type IN ('check_in', 'exit')
        ), ci AS (
            SELECT session_id, min(lot_id) AS lot_id,
                   coalesce(min(vehicle_type), 'car') AS vehicle_type, min(t) AS s
            FROM ev WHERE event_type = 'check_in' GROUP BY session_id
        ), ex AS (
            SELECT session_id, min(t) AS e FROM ev WHERE event_type = 'exit' GROUP BY session_id
        ), stays AS (
            SELECT ci.lot_id, ci.vehicle_type, ci.s, ex.e
            FROM ci LEFT JOIN ex USING (session_id)
            WHERE ex.e IS NULL OR ex.e >= ci.s
        ), expanded AS (
            SELECT lot_id, vehicle_type, s, e2,
                   unnest(range(s // {B}, (e2 - 1) // {B} + 1)) AS bk
            FROM (SELECT lot_id, vehicle_type, s, coalesce(e, {as_of}) AS e2 FROM stays)
            WHERE e2 > s
        ), occ AS (
            SELECT lot_id, vehicle_type, bk,
                   sum(least(e2, (bk + 1) * {B}) - greatest(s, bk * {B}))::BIGINT AS occ_ms,
                   count(*) FILTER (WHERE s <= bk * {B}) AS present
            FROM expanded GROUP BY ALL
        ), arr AS (
            SELECT lot_id, vehicle_type, s // {B} AS bk, count(*) AS n FROM stays GROUP BY ALL
        ), dep AS (
            SELECT lot_id, vehicle_type, e // {B} AS bk, count(*) AS n
            FROM stays WHERE e IS NOT NULL GROUP BY ALL
        )
        SELECT lot_id, vehicle_type, bk,
               coalesce(occ.present, 0) AS present, coalesce(occ.occ_ms, 0) AS occ_ms,
               coalesce(arr.n, 0) AS arrivals, coalesce(dep.n, 0) AS departures
        FROM occ FULL JOIN arr USING (lot_id, vehicle_type, bk)
                 FULL JOIN dep USING (lot_id, vehicle_type, bk)
        JOIN lots USING (lot_id)
        WHERE bk >= registered_ms // {B} AND bk < {as_of} // {B}
        """
    )
    con.execute(f"COPY pieces TO '{out}/vehicle.parquet' (FORMAT parquet, COMPRESSION zstd)")
    con.execute(
        f"""
        COPY (
            WITH grid AS (
                SELECT lot_id, capacity, unnest(range(registered_ms // {B}, {as_of} // {B})) AS bk
                FROM lots
            ), tot AS (
                SELECT lot_id, bk, sum(present) AS present, sum(occ_ms) AS occ_ms,
                       sum(arrivals) AS arrivals, sum(departures) AS departures
                FROM pieces GROUP BY ALL
            )
            SELECT lot_id, bk, capacity,
                   coalesce(present, 0) AS present, coalesce(occ_ms, 0) AS occ_ms,
                   coalesce(arrivals, 0) AS arrivals, coalesce(departures, 0) AS departures
            FROM grid LEFT JOIN tot USING (lot_id, bk)
        ) TO '{out}/lot.parquet' (FORMAT parquet, COMPRESSION zstd)
        """
    )
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def mismatches(ours: str, theirs: str, keys: str, ours_cols: str) -> tuple[int, int, int]:
        q = f"""
            WITH o AS (SELECT {ours_cols} FROM read_parquet('{lake}/{ours}/*/*.parquet')),
                 d AS (SELECT * FROM read_parquet('{out}/{theirs}'))
            SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM d),
                   (SELECT count(*) FROM o FULL JOIN d USING ({keys})
                    WHERE o.present IS DISTINCT FROM d.present
                       OR o.occ_ms IS DISTINCT FROM d.occ_ms
                       OR o.arrivals IS DISTINCT FROM d.arrivals
                       OR o.departures IS DISTINCT FROM d.departures)
        """
        return con.execute(q).fetchone()

    measures = (
        f"cars_present AS present, round(avg_occupied * {B})::BIGINT AS occ_ms, "
        "arrivals, departures"
    )
    vehicle = mismatches(
        "occupancy_15m_vehicle",
        "vehicle.parquet",
        "lot_id, vehicle_type, bk",
        f"lot_id, vehicle_type, epoch_ms(bucket_start) // {B} AS bk, {measures}",
    )
    lot = mismatches(
        "occupancy_15m",
        "lot.parquet",
        "lot_id, bk",
        f"lot_id, epoch_ms(bucket_start) // {B} AS bk, {measures}",
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_kb": peak_kb,
                "duckdb": duckdb.__version__,
                "vehicle_rows": [vehicle[0], vehicle[1]],
                "vehicle_mismatches": vehicle[2],
                "lot_rows": [lot[0], lot[1]],
                "lot_mismatches": lot[2],
            }
        )
    )


if __name__ == "__main__":
    main()
