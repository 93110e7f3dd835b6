//! Management's usage report as CSV files and one HTML page with charts (plotters, SVG
//! inline), from the pipeline's [`UsageReport`]: what `parkflow report` writes and the portal's
//! report page shows. A crate of its own so that plotters is built only here.

use anyhow::Context;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use warehouse_schema::outputs::UsageReport;

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Write `report.html` and one CSV per section into `dir`; returns the HTML's path.
pub fn write_report(r: &UsageReport, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = |name: &str, header: &str, rows: Vec<String>| -> anyhow::Result<()> {
        let mut text = format!("{header}\n");
        for row in rows {
            text += &row;
            text.push('\n');
        }
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))
    };
    csv(
        "occupancy_by_hour.csv",
        "weekday,hour,mean_occupancy",
        r.occupancy_by_hour
            .iter()
            .map(|c| {
                format!(
                    "{},{},{:.4}",
                    WEEKDAYS[c.weekday as usize % 7],
                    c.hour,
                    c.mean_occupancy
                )
            })
            .collect(),
    )?;
    csv(
        "peaks.csv",
        "lot_id,local_time,occupancy",
        r.peaks
            .iter()
            .map(|p| format!("{},{},{:.4}", p.lot_id.0, p.local, p.occupancy))
            .collect(),
    )?;
    csv(
        "lots.csv",
        "lot_id,lot_name,capacity,stays,turnover_per_spot_day,revenue_cents,mean_dwell_minutes",
        r.lots
            .iter()
            .map(|l| {
                format!(
                    "{},{},{},{},{:.3},{},{:.1}",
                    l.lot_id.0,
                    csv_field(&l.lot_name),
                    l.capacity,
                    l.stays,
                    l.turnover,
                    l.revenue_cents,
                    l.mean_dwell_minutes
                )
            })
            .collect(),
    )?;
    let counted = |rows: &[(String, u64, i64)]| -> Vec<String> {
        rows.iter()
            .map(|(k, n, c)| format!("{},{n},{c}", csv_field(k)))
            .collect()
    };
    csv(
        "revenue_by_vehicle_type.csv",
        "vehicle_type,stays,revenue_cents",
        counted(&r.by_vehicle_type),
    )?;
    csv(
        "revenue_by_entry_method.csv",
        "entry_method,stays,revenue_cents",
        counted(&r.by_method),
    )?;
    csv(
        "payments_by_method.csv",
        "payment_method,payments,cents",
        counted(&r.by_payment_method),
    )?;
    let buckets = |rows: &[(String, u64)]| -> Vec<String> {
        rows.iter()
            .map(|(k, n)| format!("{},{n}", csv_field(k)))
            .collect()
    };
    csv("dwell_times.csv", "dwell,stays", buckets(&r.dwell))?;
    csv(
        "lead_times.csv",
        "lead_time,reservations",
        buckets(&r.lead_times),
    )?;
    let s = &r.reservations;
    csv(
        "reservations.csv",
        "created,cancelled,no_shows,cancellation_rate,no_show_rate",
        vec![format!(
            "{},{},{},{:.4},{:.4}",
            s.created,
            s.cancelled,
            s.no_shows,
            s.cancellation_rate(),
            s.no_show_rate()
        )],
    )?;
    let p = &r.monthly_passes;
    csv(
        "monthly_passes.csv",
        "purchased,renewed,ended,revenue_cents,entries",
        vec![format!(
            "{},{},{},{},{}",
            p.purchased, p.renewed, p.ended, p.revenue_cents, p.entries
        )],
    )?;

    let path = dir.join("report.html");
    std::fs::write(&path, html(r)?).context("writing report.html")?;
    Ok(path)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1,234.56`: cents as the amount a manager reads, thousands grouped.
pub fn money(cents: impl Into<i128>) -> String {
    let cents: i128 = cents.into();
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", grouped(abs / 100), abs % 100)
}

/// The currency the report's amounts are written in: the symbol of a currency a manager knows
/// by its sign, else its code; several currencies (amounts summed across them) are all named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    code: String,
}

impl Currency {
    pub fn of(codes: &[String]) -> Self {
        Self {
            code: codes.join("+"),
        }
    }

    fn symbol(&self) -> Option<&'static str> {
        match self.code.as_str() {
            "USD" => Some("$"),
            "EUR" => Some("€"),
            "GBP" => Some("£"),
            "JPY" => Some("¥"),
            _ => None,
        }
    }

    /// `$1,234.56`, `-CHF 1,234.56`, or the bare amount when the period has no money.
    pub fn amount(&self, cents: i64) -> String {
        let figure = self.written(money(cents.unsigned_abs()));
        if cents < 0 {
            format!("-{figure}")
        } else {
            figure
        }
    }

    /// A whole amount for an axis: `$20,000`, `CHF 20,000`.
    fn whole(&self, units: f64) -> String {
        self.written(grouped(units.max(0.0).round() as u64))
    }

    /// `figure` with the currency's sign or code in front.
    fn written(&self, figure: String) -> String {
        match (self.symbol(), self.code.as_str()) {
            (Some(sign), _) => format!("{sign}{figure}"),
            (None, "") => figure,
            (None, code) => format!("{code} {figure}"),
        }
    }

    /// The code for a heading or an axis: `revenue (USD)`.
    pub fn label(&self, what: &str) -> String {
        if self.code.is_empty() {
            what.to_owned()
        } else {
            format!("{what} ({})", self.code)
        }
    }
}

/// `12,345`: a whole number with its thousands grouped.
fn grouped(n: impl Into<u128>) -> String {
    let n: u128 = n.into();
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn html(r: &UsageReport) -> anyhow::Result<String> {
    Ok(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>parkflow usage report</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:60em}}{REPORT_STYLE}</style></head><body>\
         <h1>Usage report</h1>{}</body></html>\n",
        html_fragment(r)?
    ))
}

/// The report's tables' look, in the file and in the admin portal.
pub const REPORT_STYLE: &str = ".usage-report table{border-collapse:collapse}\
    .usage-report td,.usage-report th{border:1px solid #ccc;padding:.2em .6em;text-align:right}\
    .usage-report th{background:#eee}.usage-report td:first-child{text-align:left}\
    .usage-report table.hours td,.usage-report table.hours th{padding:.1em .2em;font-size:.8em}\
    .usage-report svg{max-width:100%;height:auto}";

/// The report's sections (charts, tables) without the page around them: the file's body, and
/// what the admin portal shows.
pub fn html_fragment(r: &UsageReport) -> anyhow::Result<String> {
    let scope = r
        .lot
        .map_or("all lots".to_owned(), |l| format!("lot {}", l.0));
    let mut h = format!(
        "<div class=\"usage-report\"><p class=\"report-scope\">{} to {}, {}</p>",
        r.from.format("%Y-%m-%d %H:%M UTC"),
        r.to.format("%Y-%m-%d %H:%M UTC"),
        escape(&scope)
    );

    h += "<h2>Occupancy by hour</h2>";
    let series = |weekend: bool| -> Vec<(u32, f64)> {
        (0..24)
            .filter_map(|hour| {
                let cells: Vec<f64> = r
                    .occupancy_by_hour
                    .iter()
                    .filter(|c| c.hour == hour && (c.weekday >= 5) == weekend)
                    .map(|c| c.mean_occupancy)
                    .collect();
                (!cells.is_empty()).then(|| (hour, cells.iter().sum::<f64>() / cells.len() as f64))
            })
            .collect()
    };
    h += &line_chart(
        "Mean occupancy by local hour",
        &[("Mon–Fri", series(false)), ("Sat–Sun", series(true))],
    )?;
    h += "<table class=\"hours\"><tr><th>weekday</th>";
    for hour in 0..24 {
        let _ = write!(h, "<th>{hour:02}</th>");
    }
    h += "</tr>";
    for (d, name) in WEEKDAYS.iter().enumerate() {
        let _ = write!(h, "<tr><td>{name}</td>");
        for hour in 0..24 {
            let v = r
                .occupancy_by_hour
                .iter()
                .find(|c| c.weekday as usize == d && c.hour == hour)
                .map_or(String::new(), |c| {
                    format!("{:.0}%", 100.0 * c.mean_occupancy)
                });
            let _ = write!(h, "<td>{v}</td>");
        }
        h += "</tr>";
    }
    h += "</table>";

    h += "<h2>Peak times</h2><table><tr><th>lot</th><th>local time</th><th>occupancy</th></tr>";
    for p in &r.peaks {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.0}%</td></tr>",
            p.lot_id.0,
            escape(&p.local),
            100.0 * p.occupancy
        );
    }
    h += "</table>";

    h += "<h2>Lots: turnover, dwell, revenue</h2>";
    let currency = Currency::of(&r.currencies);
    h += &revenue_chart(
        &currency.label("Revenue by lot"),
        &currency,
        &r.lots
            .iter()
            .map(|l| (l.lot_name.clone(), l.revenue_cents as f64 / 100.0))
            .collect::<Vec<_>>(),
    )?;
    h += "<table><tr><th>lot</th><th>capacity</th><th>stays</th><th>stays per spot and day</th>\
          <th>mean dwell (min)</th><th>revenue</th></tr>";
    for l in &r.lots {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.0}</td><td>{}</td></tr>",
            escape(&l.lot_name),
            l.capacity,
            l.stays,
            l.turnover,
            l.mean_dwell_minutes,
            currency.amount(l.revenue_cents)
        );
    }
    h += "</table>";

    for (title, (counted, amount), rows) in [
        (
            "Revenue by vehicle type",
            ("stays", "revenue"),
            &r.by_vehicle_type,
        ),
        (
            "Revenue by entry method",
            ("stays", "revenue"),
            &r.by_method,
        ),
        (
            "Payments by method",
            ("payments", "amount"),
            &r.by_payment_method,
        ),
    ] {
        let _ = write!(
            h,
            "<h2>{title}</h2><table><tr><th></th><th>{counted}</th><th>{amount}</th></tr>"
        );
        for (k, n, c) in rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{n}</td><td>{}</td></tr>",
                escape(k),
                currency.amount(*c)
            );
        }
        h += "</table>";
    }

    h += "<h2>Dwell times</h2>";
    h += &bar_chart(
        "Closed stays by length",
        &r.dwell
            .iter()
            .map(|(k, n)| (k.clone(), *n as f64))
            .collect::<Vec<_>>(),
    )?;

    let s = &r.reservations;
    let _ = write!(
        h,
        "<h2>Reservations</h2><p>{} made, {} cancelled ({:.1}%), {} no-shows ({:.1}%).</p>",
        s.created,
        s.cancelled,
        100.0 * s.cancellation_rate(),
        s.no_shows,
        100.0 * s.no_show_rate()
    );
    h += &bar_chart(
        "How far ahead reservations are made",
        &r.lead_times
            .iter()
            .map(|(k, n)| (k.clone(), *n as f64))
            .collect::<Vec<_>>(),
    )?;
    let p = &r.monthly_passes;
    let _ = write!(
        h,
        "<h2>Monthly passes</h2><p>{} bought, {} renewed, {} ended, {} in periods sold; holders entered {} times.</p>",
        p.purchased,
        p.renewed,
        p.ended,
        currency.amount(p.revenue_cents),
        p.entries
    );
    h += "</div>";
    Ok(h)
}

fn chart_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

/// A bar chart as inline SVG.
fn bar_chart(title: &str, bars: &[(String, f64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let top = bars.iter().map(|(_, v)| *v).fold(0.0f64, f64::max).max(1.0) * 1.1;
        let n = bars.len().max(1) as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d((0u32..n).into_segmented(), 0f64..top)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => bars
                    .get(*i as usize)
                    .map_or(String::new(), |(l, _)| l.clone()),
                _ => String::new(),
            })
            .y_label_formatter(&|v| grouped(v.max(0.0).round() as u64))
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(BLUE.mix(0.6).filled())
                    .margin(8)
                    .data(bars.iter().enumerate().map(|(i, (_, v))| (i as u32, *v))),
            )
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Amounts per named item as horizontal bars, as inline SVG: one row per item, so names of any
/// length and number never overlap; the axis reads whole amounts with grouped thousands.
fn revenue_chart(
    title: &str,
    currency: &Currency,
    bars: &[(String, f64)],
) -> anyhow::Result<String> {
    const ROW: u32 = 28;
    let n = bars.len().max(1) as u32;
    let longest = bars
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let label_width = (longest * 8 + 16).clamp(60, 340);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 70 + n * ROW)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let top = bars.iter().map(|(_, v)| *v).fold(0.0f64, f64::max).max(1.0) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0f64..top, (0u32..n).into_segmented())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len().max(1))
            .y_label_style(("sans-serif", 13))
            .x_label_style(("sans-serif", 12))
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(i) => bars
                    .get(*i as usize)
                    .map_or(String::new(), |(l, _)| l.clone()),
                _ => String::new(),
            })
            .x_labels(6)
            .x_label_formatter(&|v| currency.whole(*v))
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(BLUE.mix(0.6).filled())
                    .margin(4)
                    .data(bars.iter().enumerate().map(|(i, (_, v))| (i as u32, *v))),
            )
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Line series over the hours of the day, as inline SVG.
fn line_chart(title: &str, series: &[(&str, Vec<(u32, f64)>)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0u32..23u32, 0f64..1f64)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
            .draw()
            .map_err(chart_error)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_money_with_grouped_thousands() {
        assert_eq!(money(3_500_000), "35,000.00");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(99), "0.99");
        assert_eq!(grouped(1_234_567u64), "1,234,567");
        assert_eq!(grouped(999u64), "999");
    }

    #[test]
    fn amounts_carry_their_currency() {
        let of = |codes: &[&str]| {
            Currency::of(&codes.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(of(&["USD"]).amount(3_500_000), "$35,000.00");
        assert_eq!(of(&["USD"]).amount(-250), "-$2.50");
        assert_eq!(of(&["EUR"]).amount(99), "€0.99");
        assert_eq!(of(&["CHF"]).amount(123_456), "CHF 1,234.56");
        assert_eq!(of(&["CHF"]).whole(20_000.0), "CHF 20,000");
        assert_eq!(of(&["CHF"]).amount(-5), "-CHF 0.05");
        assert_eq!(of(&["EUR", "USD"]).amount(100), "EUR+USD 1.00");
        assert_eq!(of(&["USD"]).label("revenue"), "revenue (USD)");
        // A period without money has no currency to name.
        assert_eq!(of(&[]).amount(0), "0.00");
        assert_eq!(of(&[]).label("revenue"), "revenue");
        assert_eq!(money(i64::MIN), "-92,233,720,368,547,758.08");
    }

    #[test]
    fn revenue_bars_give_every_lot_a_row_of_its_own() {
        let bars: Vec<(String, f64)> = (1..=20)
            .map(|i| {
                (
                    format!("Lot {i} — Fisherman's Wharf"),
                    1000.0 * f64::from(i),
                )
            })
            .collect();
        let usd = Currency::of(&["USD".to_owned()]);
        let svg = revenue_chart("Revenue by lot", &usd, &bars).unwrap();
        // Every name is drawn, once, and the chart grows with the lots (a row each).
        for (name, _) in &bars {
            let drawn = escape_svg(name);
            let lines = svg.lines().filter(|l| l.trim() == drawn).count();
            assert_eq!(lines, 1, "{name} in {svg}");
        }
        assert!(svg.contains("height=\"630\""), "70 + 20 rows of 28 px");
        assert!(
            svg.contains("$20,000") || svg.contains("$15,000"),
            "grouped amounts in dollars on the axis"
        );
    }

    fn escape_svg(s: &str) -> String {
        s.replace('&', "&amp;").replace('\'', "&apos;")
    }
}
