//! The portal's usage report page, wired from the lake: the figures the pipeline computes,
//! rendered by `parkflow_report`.

use parkflow_report::{REPORT_STYLE, html_fragment};

/// The admin portal's usage report: the figures of `parkflow report`, read from the lake as the
/// last occupancy job left it.
#[derive(Debug)]
pub struct LakeReports {
    pub lake: warehouse_schema::lake::Lake,
}

impl parkflow_api::portal::ReportPages for LakeReports {
    fn render(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        lot: Option<warehouse_schema::LotId>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>>
    {
        Box::pin(async move {
            let at = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let report = parkflow_pipeline::usage_report(&self.lake, at(from), at(to), lot)
                .await
                .map_err(|e| format!("the report could not be read from the lake: {e}"))?;
            if let Some(l) = lot
                && report.lots.is_empty()
            {
                return Err(format!("lot {} is not in the warehouse", l.0));
            }
            let body = html_fragment(&report).map_err(|e| e.to_string())?;
            Ok(format!("<style>{REPORT_STYLE}</style>{body}"))
        })
    }
}
