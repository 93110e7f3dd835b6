//! The store's handles as sqlx executors of the `Any` database: a statement on SQLite runs in
//! place ([`super::SqliteConn`]), on a pool it is sqlx's.

use super::{Conn, Done, Handle};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, Either, Execute, Executor, SqlStr};

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
            Conn::Transaction(t) => (&mut **t).prepare_with(sql, parameters),
        }
    }
}
