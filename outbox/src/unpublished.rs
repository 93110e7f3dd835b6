//! The rows of one relay round, as the database hands them over: one row of aggregates.

use std::ops::Range;

/// Rows Kafka has not acknowledged yet, in position order, with what the relay keys and heads
/// each by ([`Outbox::unpublished_outside`](crate::Outbox::unpublished_outside)).
///
/// They come out of the database as one row of aggregates rather than a row each: per row, sqlx
/// copies and converts every value twice on its way out of SQLite, which cost ~3.5 µs of a
/// relay round's ~5 µs per event, while the database concatenates a round in ~2.2 µs per row
/// (1M outbox rows of 400 bytes, release build). Integers come as comma-separated lists; texts
/// come concatenated, with a list of their byte lengths to cut them apart, so no content can be
/// taken for a separator. The aggregates of one query see the rows in one order, which is not
/// position order: the spans are sorted after the cut.
#[derive(Debug, Default)]
pub struct Unpublished {
    rows: Vec<Spans>,
    lot_ids: String,
    event_ids: String,
    payloads: String,
}

/// Where one row's values are in the concatenated texts.
#[derive(Debug, Clone)]
struct Spans {
    position: i64,
    lot_id: Range<usize>,
    event_id: Range<usize>,
    payload: Range<usize>,
}

/// One unpublished row: its position, its lot id in decimal (the Kafka key), its event id (a
/// header) and the event exactly as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpublishedRow<'a> {
    pub position: i64,
    pub lot_id: &'a str,
    pub event_id: &'a str,
    pub payload: &'a str,
}

/// The aggregates of one read, as the query names them (`None` where no row was read).
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    pub count: i64,
    pub positions: Option<String>,
    pub lot_ids: Option<String>,
    pub event_id_lengths: Option<String>,
    pub event_ids: Option<String>,
    pub payload_lengths: Option<String>,
    pub payloads: Option<String>,
}

impl Unpublished {
    /// Cut the aggregates of one read into rows; a list that does not fit the others is an
    /// error, never a guess.
    pub(crate) fn from_aggregates(a: Aggregates) -> Result<Self, String> {
        let count = usize::try_from(a.count).map_err(|_| format!("row count {}", a.count))?;
        if count == 0 {
            return Ok(Self::default());
        }
        let positions = a.positions.unwrap_or_default();
        let lot_ids = a.lot_ids.unwrap_or_default();
        let event_ids = a.event_ids.unwrap_or_default();
        let payloads = a.payloads.unwrap_or_default();
        let positions = integers(&positions)?;
        let lot_spans = commas(&lot_ids);
        let event_spans = cut(
            &event_ids,
            &integers(a.event_id_lengths.as_deref().unwrap_or_default())?,
        )?;
        let payload_spans = cut(
            &payloads,
            &integers(a.payload_lengths.as_deref().unwrap_or_default())?,
        )?;
        let lengths = [
            positions.len(),
            lot_spans.len(),
            event_spans.len(),
            payload_spans.len(),
        ];
        if lengths.iter().any(|&n| n != count) {
            return Err(format!(
                "{count} rows but lists of {lengths:?} (positions, lots, event ids, payloads)"
            ));
        }
        let mut rows: Vec<Spans> = positions
            .into_iter()
            .zip(lot_spans)
            .zip(event_spans.into_iter().zip(payload_spans))
            .map(|((position, lot_id), (event_id, payload))| Spans {
                position,
                lot_id,
                event_id,
                payload,
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.position);
        Ok(Self {
            rows,
            lot_ids,
            event_ids,
            payloads,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows in position order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = UnpublishedRow<'_>> {
        self.rows.iter().map(|r| UnpublishedRow {
            position: r.position,
            lot_id: &self.lot_ids[r.lot_id.clone()],
            event_id: &self.event_ids[r.event_id.clone()],
            payload: &self.payloads[r.payload.clone()],
        })
    }
}

/// The comma-separated integers of `list`.
fn integers(list: &str) -> Result<Vec<i64>, String> {
    commas(list)
        .into_iter()
        .map(|span| {
            list[span.clone()]
                .parse()
                .map_err(|_| format!("{:?} is not an integer", &list[span]))
        })
        .collect()
}

/// The spans of the comma-separated items of `list` (none when it is empty).
fn commas(list: &str) -> Vec<Range<usize>> {
    if list.is_empty() {
        return Vec::new();
    }
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, _) in list.match_indices(',') {
        spans.push(start..i);
        start = i + 1;
    }
    spans.push(start..list.len());
    spans
}

/// `text` cut into consecutive pieces of `lengths` bytes, each on character boundaries, which
/// must use it all.
fn cut(text: &str, lengths: &[i64]) -> Result<Vec<Range<usize>>, String> {
    let mut spans = Vec::with_capacity(lengths.len());
    let mut start = 0usize;
    for &length in lengths {
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&end| text.get(start..end).is_some())
            .ok_or_else(|| format!("a piece of {length} bytes at {start} of {}", text.len()))?;
        spans.push(start..end);
        start = end;
    }
    if start != text.len() {
        return Err(format!("pieces of {start} bytes of {}", text.len()));
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position, lot id, event id, payload.
    type Row<'a> = (i64, &'a str, &'a str, &'a str);

    fn aggregates(rows: &[Row]) -> Aggregates {
        let join = |f: &dyn Fn(&Row) -> String, sep: &str| {
            Some(rows.iter().map(f).collect::<Vec<_>>().join(sep))
        };
        Aggregates {
            count: rows.len() as i64,
            positions: join(&|r| r.0.to_string(), ","),
            lot_ids: join(&|r| r.1.to_owned(), ","),
            event_id_lengths: join(&|r| r.2.len().to_string(), ","),
            event_ids: join(&|r| r.2.to_owned(), ""),
            payload_lengths: join(&|r| r.3.len().to_string(), ","),
            payloads: join(&|r| r.3.to_owned(), ""),
        }
    }

    #[test]
    fn rows_are_cut_by_length_and_sorted_by_position() {
        let rows = [
            (9, "2", "e9", "{\"a\":\"x,\\ny\"}\n"),
            (3, "17", "", "ü,é"),
            (5, "1", "e5", ""),
        ];
        let read = Unpublished::from_aggregates(aggregates(&rows)).unwrap();
        let got: Vec<_> = read.iter().collect();
        let row = |(position, lot_id, event_id, payload): Row<'static>| UnpublishedRow {
            position,
            lot_id,
            event_id,
            payload,
        };
        assert_eq!(got, [row(rows[1]), row(rows[2]), row(rows[0])]);
        assert!(
            Unpublished::from_aggregates(Aggregates::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn lists_that_do_not_fit_are_refused() {
        let good = || aggregates(&[(1, "2", "e1", "ü"), (2, "2", "e2", "{}")]);
        let mut a = good();
        a.count = 3;
        assert!(Unpublished::from_aggregates(a).is_err());
        let mut a = good();
        // "ü" is two bytes: one byte would cut it in half.
        a.payload_lengths = Some("1,3".into());
        assert!(Unpublished::from_aggregates(a).is_err());
        let mut a = good();
        a.payload_lengths = Some("2,1".into());
        assert!(Unpublished::from_aggregates(a).is_err(), "a byte left over");
        let mut a = good();
        a.event_id_lengths = Some("2,-2".into());
        assert!(Unpublished::from_aggregates(a).is_err());
        let mut a = good();
        a.positions = Some("1,x".into());
        assert!(Unpublished::from_aggregates(a).is_err());
        let mut a = good();
        a.count = -1;
        assert!(Unpublished::from_aggregates(a).is_err());
    }
}
