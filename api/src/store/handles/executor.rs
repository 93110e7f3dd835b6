//! The store's handles as sqlx executors of the `Any` database: a statement on SQLite runs in
//! place ([`super::SqliteConn`]), on a pool it is sqlx's.

use super::lender::{Lent, is_fatal};
use super::{Conn, Done, Handle};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, Either, Execute, Executor, SqlStr};
use std::sync::atomic::{AtomicBool, Ordering};

fn unprepared<'e>() -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>> {
    Box::pin(async {
        Err(sqlx::Error::AnyDriverError(
            "the embedded store runs statements in place and prepares none for callers".into(),
        ))
    })
}

fn in_place<'e>(
    run: impl Future<Output = Result<Done, sqlx::Error>> + Send + 'e,
) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>> {
    Box::pin(
        stream::once(run)
            .map_ok(|done| stream::iter(done.into_results()))
            .try_flatten(),
    )
}

fn first_row(done: Done) -> Option<AnyRow> {
    done.rows.into_iter().next()
}

/// A lent reader is given back closed once a statement's error says the connection is broken.
fn mark(broken: &AtomicBool, e: &sqlx::Error) {
    if is_fatal(e) {
        broken.store(true, Ordering::SeqCst);
    }
}

/// One statement on a lent reader, all its rows read (the reader goes back once it is done).
async fn collect<'q>(
    lent: &mut Lent,
    query: impl Execute<'q, Any> + 'q,
) -> Result<Done, sqlx::Error> {
    let broken = lent.broken_flag();
    let mut done = Done {
        rows: Vec::new(),
        rows_affected: 0,
    };
    let mut results = (&mut **lent).fetch_many(query);
    while let Some(result) = results.try_next().await.inspect_err(|e| mark(&broken, e))? {
        match result {
            Either::Left(r) => done.rows_affected += r.rows_affected(),
            Either::Right(row) => done.rows.push(row),
        }
    }
    Ok(done)
}

impl<'c> Executor<'c> for &'c Handle {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Handle::Sqlite(set) => in_place(async move { set.one(query).await }),
            Handle::Pool(pool) => pool.fetch_many(query),
            Handle::Lender(lender) => in_place(async move {
                let mut lent = lender.lend().await?;
                collect(&mut lent, query).await
            }),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Handle::Sqlite(set) => Box::pin(async move { Ok(first_row(set.one(query).await?)) }),
            Handle::Pool(pool) => pool.fetch_optional(query),
            Handle::Lender(lender) => Box::pin(async move {
                let mut lent = lender.lend().await?;
                let broken = lent.broken_flag();
                let row = (&mut *lent).fetch_optional(query).await;
                row.inspect_err(|e| mark(&broken, e))
            }),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Handle::Sqlite(_) => unprepared(),
            Handle::Pool(pool) => pool.prepare_with(sql, parameters),
            Handle::Lender(lender) => Box::pin(async move {
                let mut lent = lender.lend().await?;
                let broken = lent.broken_flag();
                let statement = (&mut *lent).prepare_with(sql, parameters).await;
                statement.inspect_err(|e| mark(&broken, e))
            }),
        }
    }
}

impl<'c> Executor<'c> for &'c mut Conn {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Conn::Sqlite(c) => in_place(c.query(query)),
            Conn::Pooled(c) => (&mut **c).fetch_many(query),
            Conn::Lent(c) => {
                let broken = c.broken_flag();
                Box::pin(
                    (&mut **c)
                        .fetch_many(query)
                        .inspect_err(move |e| mark(&broken, e)),
                )
            }
            Conn::Transaction(t) => (&mut **t).fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            Conn::Sqlite(c) => Box::pin(async move { Ok(first_row(c.query(query).await?)) }),
            Conn::Pooled(c) => (&mut **c).fetch_optional(query),
            Conn::Lent(c) => {
                let broken = c.broken_flag();
                Box::pin(async move {
                    let row = (&mut **c).fetch_optional(query).await;
                    row.inspect_err(|e| mark(&broken, e))
                })
            }
            Conn::Transaction(t) => (&mut **t).fetch_optional(query),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            Conn::Sqlite(_) => unprepared(),
            Conn::Pooled(c) => (&mut **c).prepare_with(sql, parameters),
            Conn::Lent(c) => (&mut **c).prepare_with(sql, parameters),
            Conn::Transaction(t) => (&mut **t).prepare_with(sql, parameters),
        }
    }
}
