//! The service desk's pages: the reservation search, drivers' inquiries and their answers, the
//! audit log, management's usage report.

use super::*;
use crate::domain::error::Error;
use crate::http::AppState;
use crate::services::admin::ReservationQuery;
use crate::services::reservations::ReservationStatus;
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use uuid::Uuid;
use warehouse_schema::LotId;

pub(super) async fn reservations(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    let query = ReservationQuery {
        lot: number(&f, "lot")?,
        status: field(&f, "status").map(str::to_owned),
        email: field(&f, "email").map(str::to_owned),
        from: date(&f, "from")?.map(midnight),
        to: date(&f, "to")?.map(|d| midnight(d + chrono::Duration::days(1))),
    };
    let found = state
        .services
        .admin()
        .search_reservations(&query, PAGE_ROWS)
        .await?;
    let value = |name: &str| field(&f, name).unwrap_or_default().to_owned();
    let statuses = ReservationStatus::ALL
        .iter()
        .map(|st| st.as_str())
        .map(|name| StatusOption {
            name,
            selected: field(&f, "status") == Some(name),
        })
        .collect();
    let rows: Vec<FoundRow> = found
        .iter()
        .map(|r| FoundRow {
            id: r.id.0.to_string(),
            lot_id: r.lot_id,
            lot_name: r.lot_name.clone(),
            spot: r.spot_label.clone(),
            driver: r.email.clone().unwrap_or_else(|| "(erased)".into()),
            vehicle: r.vehicle_type.clone(),
            from: r.start_at.format("%Y-%m-%d %H:%M").to_string(),
            to: r.end_at.format("%Y-%m-%d %H:%M").to_string(),
            status: r.status.to_string(),
            quote: money(r.quote_cents, &r.currency),
        })
        .collect();
    Ok(render(&ReservationsPage {
        title: "Reservations",
        lot: value("lot"),
        email: value("email"),
        from: value("from"),
        to: value("to"),
        statuses,
        truncated: rows.len() as i64 == PAGE_ROWS,
        rows,
    })?
    .into_response())
}

pub(super) struct StatusOption {
    name: &'static str,
    selected: bool,
}

pub(super) struct FoundRow {
    id: String,
    lot_id: LotId,
    lot_name: String,
    spot: String,
    driver: String,
    vehicle: String,
    from: String,
    to: String,
    status: String,
    quote: String,
}

#[derive(Template)]
#[template(path = "portal/reservations.html")]
pub(super) struct ReservationsPage {
    title: &'static str,
    lot: String,
    email: String,
    from: String,
    to: String,
    statuses: Vec<StatusOption>,
    rows: Vec<FoundRow>,
    truncated: bool,
}

pub(super) async fn inquiries(State(state): State<AppState>) -> PageResult {
    let inquiries = state
        .services
        .admin()
        .inquiries(true, PAGE_ROWS)
        .await?
        .into_iter()
        .map(|i| InquiryView {
            id: i.id.to_string(),
            subject: i.subject,
            from: i.email.unwrap_or_else(|| "(erased)".into()),
            at: i.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            reservation: i.reservation_id,
            message: i.message,
            answer: match (i.answer, i.answered_at) {
                (Some(text), Some(at)) => Some(AnswerView {
                    text,
                    at: at.format("%Y-%m-%d %H:%M UTC").to_string(),
                }),
                _ => None,
            },
        })
        .collect();
    Ok(render(&InquiriesPage {
        title: "Inquiries",
        inquiries,
    })?
    .into_response())
}

pub(super) struct AnswerView {
    text: String,
    at: String,
}

pub(super) struct InquiryView {
    id: String,
    subject: String,
    from: String,
    at: String,
    reservation: Option<String>,
    message: String,
    answer: Option<AnswerView>,
}

#[derive(Template)]
#[template(path = "portal/inquiries.html")]
pub(super) struct InquiriesPage {
    title: &'static str,
    inquiries: Vec<InquiryView>,
}

pub(super) async fn answer(
    State(state): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<String>,
    PortalForm(f): PortalForm<AnswerForm>,
) -> PageResult {
    let id: Uuid = id
        .parse()
        .map_err(|_| PortalError::from(Error::NotFound(format!("inquiry {id}"))))?;
    let answer = f
        .answer
        .ok_or_else(|| PortalError::from(Error::Invalid("`answer` is required".into())))?;
    state
        .services
        .admin()
        .answer_inquiry(&admin.actor(), id, &answer)
        .await?;
    Ok(see_other("/admin/inquiries"))
}

/// An admin's answer to an inquiry.
#[derive(Deserialize)]
pub(super) struct AnswerForm {
    #[serde(default, deserialize_with = "blank_is_none")]
    answer: Option<String>,
}

pub(super) async fn audit_log(State(state): State<AppState>) -> PageResult {
    let entries = state
        .services
        .admin()
        .audit_log(PAGE_ROWS)
        .await?
        .into_iter()
        .map(|e| AuditRow {
            at: e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            who: e.actor_email.unwrap_or(e.actor),
            action: e.action,
            target: e.target,
            detail: e.detail,
        })
        .collect();
    Ok(render(&AuditPage {
        title: "Audit log",
        entries,
    })?
    .into_response())
}

pub(super) struct AuditRow {
    at: String,
    who: String,
    action: String,
    target: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "portal/audit.html")]
pub(super) struct AuditPage {
    title: &'static str,
    entries: Vec<AuditRow>,
}

pub(super) async fn reports(State(state): State<AppState>, RawQuery(q): RawQuery) -> PageResult {
    let f = fields(q.as_deref().unwrap_or_default())?;
    let today = state.services.now().date_naive();
    let from = date(&f, "from")?.unwrap_or(today - chrono::Duration::days(30));
    let to = date(&f, "to")?.unwrap_or(today + chrono::Duration::days(1));
    if from >= to {
        return Err(PortalError::from(Error::Invalid(
            "`from` must be before `to`".into(),
        )));
    }
    let lot = number::<i64>(&f, "lot")?.map(LotId);
    // The report's own HTML (from `ReportPages`), inserted as it is.
    let report = match &state.reports {
        None => None,
        Some(reports) => Some(reports.render(from, to, lot).await.map_err(|message| {
            PortalError::from(Error::unprocessable("report_unavailable", message))
        })?),
    };
    Ok(render(&ReportsPage {
        title: "Usage report",
        from: from.to_string(),
        to: to.to_string(),
        lot: lot.map_or(String::new(), |l| l.to_string()),
        report,
    })?
    .into_response())
}

#[derive(Template)]
#[template(path = "portal/reports.html")]
pub(super) struct ReportsPage {
    title: &'static str,
    from: String,
    to: String,
    lot: String,
    report: Option<String>,
}
