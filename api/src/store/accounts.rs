//! `users`, `refresh_tokens` and `vehicles`: who a driver or admin is, their sessions, their
//! cars. Rules (password length, plate form, token lifetimes) are `crate::accounts`'s; this
//! reads and writes rows.

use super::{Db, unless_taken};
use crate::domain::error::Result;
use warehouse_schema::UserId;

/// An account's row, as the export shows it.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub email: String,
    pub role: String,
    pub created_at: i64,
    pub workplace_latitude: Option<f64>,
    pub workplace_longitude: Option<f64>,
}

from_row!(AccountRow {
    email,
    role,
    created_at,
    workplace_latitude,
    workplace_longitude
});

/// What a login checks.
#[derive(Debug, Clone)]
pub struct LoginRow {
    pub id: String,
    pub password_hash: String,
    pub role: String,
}

from_row!(LoginRow {
    id,
    password_hash,
    role
});

/// A vehicle's row.
#[derive(Debug, Clone)]
pub struct VehicleRow {
    pub id: String,
    pub plate: String,
    pub region: String,
    pub vehicle_type: String,
    pub created_at: i64,
}

from_row!(VehicleRow {
    id,
    plate,
    region,
    vehicle_type,
    created_at
});

/// A new account. False when the e-mail is taken.
pub async fn insert_user<'c>(
    db: impl Db<'c>,
    id: UserId,
    email: &str,
    password_hash: &str,
    role: &str,
    at: i64,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(id.0.to_string())
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .bind(at)
    .execute(db)
    .await?;
    Ok(unless_taken(inserted))
}

pub async fn user<'c>(db: impl Db<'c>, user: UserId) -> Result<Option<AccountRow>> {
    Ok(sqlx::query_as(
        "SELECT email, role, created_at, workplace_latitude, workplace_longitude FROM users WHERE id = $1",
    )
    .bind(user.0.to_string())
    .fetch_optional(db)
    .await?)
}

pub async fn login_row<'c>(db: impl Db<'c>, email: &str) -> Result<Option<LoginRow>> {
    Ok(
        sqlx::query_as("SELECT id, password_hash, role FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(db)
            .await?,
    )
}

/// `user`'s role as stored now and saved workplace (latitude, longitude), in one read: what
/// authenticating a request learns of its account (None: no such account).
pub async fn standing<'c>(
    db: impl Db<'c>,
    user: UserId,
) -> Result<Option<(String, Option<f64>, Option<f64>)>> {
    Ok(sqlx::query_as(
        "SELECT role, workplace_latitude, workplace_longitude FROM users WHERE id = $1",
    )
    .bind(user.0.to_string())
    .fetch_optional(db)
    .await?)
}

pub async fn set_workplace<'c>(
    db: impl Db<'c>,
    user: UserId,
    latitude: f64,
    longitude: f64,
) -> Result<()> {
    sqlx::query("UPDATE users SET workplace_latitude = $1, workplace_longitude = $2 WHERE id = $3")
        .bind(latitude)
        .bind(longitude)
        .bind(user.0.to_string())
        .execute(db)
        .await?;
    Ok(())
}

pub async fn insert_refresh_token<'c>(
    db: impl Db<'c>,
    token_hash: &str,
    user: UserId,
    expires_at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(user.0.to_string())
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// The user id and role behind a refresh token that is neither revoked nor expired at `now`.
pub async fn live_refresh_token<'c>(
    db: impl Db<'c>,
    token_hash: &str,
    now: i64,
) -> Result<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT t.user_id, u.role FROM refresh_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db)
    .await?)
}

/// Revoke a refresh token (again, if it was: the first revocation time is kept).
pub async fn revoke_refresh_token<'c>(db: impl Db<'c>, token_hash: &str, at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(token_hash)
    .execute(db)
    .await?;
    Ok(())
}

/// A new vehicle. False when `user` has that plate and region already.
pub async fn insert_vehicle<'c>(db: impl Db<'c>, user: UserId, v: &VehicleRow) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO vehicles (id, user_id, plate, region, vehicle_type, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(&v.id)
    .bind(user.0.to_string())
    .bind(&v.plate)
    .bind(&v.region)
    .bind(&v.vehicle_type)
    .bind(v.created_at)
    .execute(db)
    .await?;
    Ok(unless_taken(inserted))
}

/// `user`'s vehicles, oldest first.
pub async fn vehicles<'c>(db: impl Db<'c>, user: UserId) -> Result<Vec<VehicleRow>> {
    Ok(sqlx::query_as(
        "SELECT id, plate, region, vehicle_type, created_at FROM vehicles WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user.0.to_string())
    .fetch_all(db)
    .await?)
}

/// The account that registered `plate` first, and that vehicle's type.
pub async fn first_owner_of_plate<'c>(
    db: impl Db<'c>,
    plate: &str,
) -> Result<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, vehicle_type FROM vehicles WHERE plate = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(plate)
    .fetch_optional(db)
    .await?)
}

/// Delete the account, its refresh tokens and its vehicles (the end of an erasure, inside its
/// transaction: every row naming the account goes first). Returns the vehicles deleted.
pub async fn delete_user(conn: &mut crate::store::Conn, user: UserId) -> Result<u64> {
    let id = user.0.to_string();
    sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    let vehicles = sqlx::query("DELETE FROM vehicles WHERE user_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    Ok(vehicles)
}
