//! The embedded store's connections: SQLite called in place.
//!
//! sqlx runs each SQLite connection on a thread of its own and sends every statement there and
//! back over channels. Each statement then costs two thread wake-ups, and handing a connection
//! back to sqlx's pool costs a third round trip (a ping); on two cores that was most of the
//! demo's time, against 5–20 µs for SQLite's own work (BENCHMARKS.md, "Stop 30"). A local
//! SQLite file answers in microseconds, so the store calls it where the statement is issued
//! (rusqlite, over the same SQLite library sqlx links): prepared once per connection and kept,
//! stepped on the calling task's thread. Rows come back as sqlx's `AnyRow` with each value
//! typed by its storage class (INTEGER → BIGINT, REAL → DOUBLE, TEXT, BLOB, NULL), as sqlx's
//! own SQLite driver types them, so the repositories' SQL and decoding are the same on both
//! stores.
//!
//! A lock held by another process is never waited for on the calling thread: the busy timeout
//! is 0, and the caller ([`super::handles`]) retries a statement outside a transaction that
//! found the database busy after an asynchronous sleep.

use rusqlite::types::{Null, ValueRef};
use rusqlite::{ErrorCode, OpenFlags};
use sqlx::any::{AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind};
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::{Either, Error};
use sqlx_core::any::{AnyColumn, AnyValue, AnyValueKind};
use sqlx_core::ext::ustr::UStr;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Statements kept prepared per connection (the API has about 200 distinct ones).
const PREPARED: usize = 512;

/// One SQLite connection, used by one task at a time (`&mut self`).
pub struct Connection {
    /// `None` once closed.
    db: Option<rusqlite::Connection>,
    /// What each statement run so far takes and gives, by its SQL.
    shapes: HashMap<String, Shape>,
}

/// A statement's parameters and columns, read once.
struct Shape {
    /// For each parameter (position 1, 2, … in the statement), the argument it takes: `$N`
    /// takes the N-th, a bare `?` the one after the previous parameter's.
    arguments: Vec<usize>,
    read_only: bool,
    columns: Vec<UStr>,
    column_names: Arc<sqlx_core::HashMap<UStr, usize>>,
}

/// What one statement (or a script of several) gave: its rows, then its count of changes.
pub struct Done {
    pub rows: Vec<AnyRow>,
    pub rows_affected: u64,
}

impl Done {
    /// As sqlx's `fetch_many` gives them: each row, then the statement's result.
    pub fn into_results(
        self,
    ) -> impl Iterator<Item = Result<Either<AnyQueryResult, AnyRow>, Error>> {
        let result = AnyQueryResult {
            rows_affected: self.rows_affected,
            last_insert_id: None,
        };
        self.rows
            .into_iter()
            .map(Either::Right)
            .chain(std::iter::once(Either::Left(result)))
            .map(Ok)
    }
}

impl Connection {
    /// Open the database file at `path` (sqlx's writer has created and migrated it). A commit
    /// of this connection checkpoints the WAL once it holds `checkpoint_pages` pages (0:
    /// never; see `checkpoint.rs`).
    pub fn open(path: &Path, checkpoint_pages: u32) -> Result<Self, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let db = rusqlite::Connection::open_with_flags(path, flags).map_err(failure)?;
        db.busy_timeout(Duration::ZERO).map_err(failure)?;
        db.set_prepared_statement_cache_capacity(PREPARED);
        // Temporary storage in memory: the writer's group commit runs each change that joins
        // a group in a savepoint, whose sub-journal (a copy of each page it changes) was a
        // temporary file, written with a system call per page (BENCHMARKS.md "Stop 37").
        db.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
             PRAGMA wal_autocheckpoint = {checkpoint_pages};"
        ))
        .map_err(failure)?;
        Ok(Self {
            db: Some(db),
            shapes: HashMap::new(),
        })
    }

    /// Whether no transaction is open.
    pub fn autocommit(&self) -> bool {
        self.db.as_ref().is_some_and(|db| db.is_autocommit())
    }

    /// Run `sql` with `args` bound to its `$N` parameters; a script of several statements
    /// (which takes no arguments) runs each in turn. A single statement run `persistent` stays
    /// prepared for the next time.
    pub fn run(
        &mut self,
        sql: &str,
        args: &[AnyValueKind],
        persistent: bool,
    ) -> Result<Done, Error> {
        let db = self.db.as_ref().ok_or(Error::PoolClosed)?;
        let prepared = if persistent {
            db.prepare_cached(sql).map(Statement::Cached)
        } else {
            db.prepare(sql).map(Statement::Once)
        };
        let mut statement = match prepared {
            Ok(s) => s,
            Err(rusqlite::Error::MultipleStatement) if args.is_empty() => {
                db.execute_batch(sql).map_err(failure)?;
                return Ok(Done {
                    rows: Vec::new(),
                    rows_affected: 0,
                });
            }
            Err(e) => return Err(failure(e)),
        };
        let shape = match self.shapes.get(sql) {
            Some(shape) => shape,
            None => {
                let shape = Shape::of(statement.get())?;
                if self.shapes.len() >= PREPARED {
                    self.shapes.clear();
                }
                self.shapes.entry(sql.to_owned()).or_insert(shape)
            }
        };
        let stmt = statement.get();
        for (i, &argument) in shape.arguments.iter().enumerate() {
            let value = args.get(argument).ok_or_else(|| {
                Error::Protocol(format!("no argument for parameter ${}", argument + 1))
            })?;
            bind(stmt, i + 1, value).map_err(failure)?;
        }
        let mut rows = Vec::new();
        {
            let mut found = stmt.raw_query();
            while let Some(row) = found.next().map_err(failure)? {
                rows.push(read_row(shape, row)?);
            }
        }
        let rows_affected = if shape.read_only { 0 } else { db.changes() };
        Ok(Done {
            rows,
            rows_affected,
        })
    }

    /// Close the connection; later use is an error.
    pub fn close(&mut self) {
        self.shapes.clear();
        if let Some(db) = self.db.take() {
            // A close that fails leaves SQLite to free the connection with its last statement.
            let _ = db.close();
        }
    }
}

/// A statement from the connection's cache, or one prepared for a single run.
enum Statement<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Once(rusqlite::Statement<'c>),
}

impl<'c> Statement<'c> {
    fn get(&mut self) -> &mut rusqlite::Statement<'c> {
        match self {
            Statement::Cached(s) => s,
            Statement::Once(s) => s,
        }
    }
}

impl Shape {
    fn of(stmt: &rusqlite::Statement<'_>) -> Result<Self, Error> {
        let mut arguments = Vec::with_capacity(stmt.parameter_count());
        let mut next = 0;
        for i in 1..=stmt.parameter_count() {
            let argument = match stmt.parameter_name(i) {
                None => next,
                Some(name) => numbered(name).ok_or_else(|| {
                    Error::Protocol(format!("parameter {name}: only $N and ? are supported"))
                })?,
            };
            next = argument + 1;
            arguments.push(argument);
        }
        let columns: Vec<UStr> = stmt.column_names().into_iter().map(UStr::new).collect();
        let column_names = columns
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        Ok(Self {
            arguments,
            read_only: stmt.readonly(),
            columns,
            column_names: Arc::new(column_names),
        })
    }
}

/// The argument a `$N` or `?N` parameter takes (0-based).
fn numbered(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('$').or_else(|| name.strip_prefix('?'))?;
    digits.parse::<usize>().ok()?.checked_sub(1)
}

fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    i: usize,
    value: &AnyValueKind,
) -> rusqlite::Result<()> {
    match value {
        AnyValueKind::Null(_) => stmt.raw_bind_parameter(i, Null),
        AnyValueKind::Bool(b) => stmt.raw_bind_parameter(i, i64::from(*b)),
        AnyValueKind::SmallInt(n) => stmt.raw_bind_parameter(i, i64::from(*n)),
        AnyValueKind::Integer(n) => stmt.raw_bind_parameter(i, i64::from(*n)),
        AnyValueKind::BigInt(n) => stmt.raw_bind_parameter(i, *n),
        AnyValueKind::Real(x) => stmt.raw_bind_parameter(i, f64::from(*x)),
        AnyValueKind::Double(x) => stmt.raw_bind_parameter(i, *x),
        AnyValueKind::Text(s) => stmt.raw_bind_parameter(i, s.as_str()),
        AnyValueKind::TextSlice(s) => stmt.raw_bind_parameter(i, &**s),
        AnyValueKind::Blob(b) => stmt.raw_bind_parameter(i, b.as_slice()),
        other => Err(rusqlite::Error::ToSqlConversionFailure(
            format!("cannot bind {other:?} on SQLite").into(),
        )),
    }
}

/// One row, each value typed by its storage class.
fn read_row(shape: &Shape, row: &rusqlite::Row<'_>) -> Result<AnyRow, Error> {
    let mut columns = Vec::with_capacity(shape.columns.len());
    let mut values = Vec::with_capacity(shape.columns.len());
    for (i, name) in shape.columns.iter().enumerate() {
        let (kind, type_kind) = match row.get_ref(i).map_err(failure)? {
            ValueRef::Integer(n) => (AnyValueKind::BigInt(n), AnyTypeInfoKind::BigInt),
            ValueRef::Real(x) => (AnyValueKind::Double(x), AnyTypeInfoKind::Double),
            ValueRef::Text(bytes) => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|e| Error::ColumnDecode {
                    index: name.to_string(),
                    source: Box::new(e),
                })?;
                (AnyValueKind::Text(Arc::new(text)), AnyTypeInfoKind::Text)
            }
            ValueRef::Blob(bytes) => (
                AnyValueKind::Blob(Arc::new(bytes.to_vec())),
                AnyTypeInfoKind::Blob,
            ),
            ValueRef::Null => (
                AnyValueKind::Null(AnyTypeInfoKind::Null),
                AnyTypeInfoKind::Null,
            ),
        };
        columns.push(AnyColumn {
            ordinal: i,
            name: name.clone(),
            type_info: AnyTypeInfo { kind: type_kind },
        });
        values.push(AnyValue { kind });
    }
    Ok(AnyRow {
        column_names: shape.column_names.clone(),
        columns,
        values,
    })
}

/// rusqlite's error as sqlx reports a database's: SQLite's own failures as database errors
/// (so a unique violation is seen as one), the rest as protocol errors.
fn failure(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(cause, message) => Error::Database(Box::new(SqliteError {
            message: message.unwrap_or_else(|| cause.to_string()),
            cause,
        })),
        other => Error::Protocol(other.to_string()),
    }
}

/// An error SQLite reported, with its extended result code.
#[derive(Debug)]
pub struct SqliteError {
    cause: rusqlite::ffi::Error,
    message: String,
}

/// Whether `e` says the database was locked by another connection.
pub fn is_busy(e: &Error) -> bool {
    matches!(e, Error::Database(d)
        if d.try_downcast_ref::<SqliteError>().is_some_and(|s| s.cause.code == ErrorCode::DatabaseBusy))
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(code: {}) {}", self.cause.extended_code, self.message)
    }
}

impl std::error::Error for SqliteError {}

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.cause.extended_code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.cause.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
