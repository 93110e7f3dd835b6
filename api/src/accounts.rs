//! Accounts, sessions and vehicles.
//!
//! Drivers register with e-mail and password (argon2id), log in for a short-lived access token
//! plus a refresh token that is rotated on use and stored only as a hash. Failed logins are
//! limited per account and per client address.

use crate::auth::{
    Claims, LoginLimiter, TokenSigner, hash_password, new_refresh_token, refresh_token_hash,
    verify_password,
};
use crate::clock::Clock;
use crate::domain::error::{Error, Result};
use crate::store::{Store, accounts as rows};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;
use warehouse_schema::{UserId, VehicleType};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    #[schema(schema_with = crate::domain::schema::email)]
    pub email: String,
    #[schema(schema_with = crate::domain::schema::password)]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVehicle {
    #[schema(schema_with = crate::domain::schema::plate)]
    pub plate: String,
    #[schema(schema_with = crate::domain::schema::line_8)]
    pub region: String,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vehicle {
    pub id: Uuid,
    pub plate: String,
    pub region: String,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
}

/// Who a valid access token belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Principal {
    pub user: UserId,
    pub admin: bool,
    /// The workplace the account saved, read with its role: the point a driver's requests
    /// measure distances from when they give none.
    pub workplace: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access_s: i64,
    pub refresh_s: i64,
}

#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    clock: Arc<dyn Clock>,
    signer: TokenSigner,
    limiter: Arc<LoginLimiter>,
    lifetimes: TokenLifetimes,
}

fn normalise_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !e.chars().any(char::is_whitespace);
    if valid {
        Ok(e)
    } else {
        Err(Error::Invalid("a valid e-mail address is required".into()))
    }
}

/// A plate as stored and compared: letters and digits only, upper case ("b-xy 9" is "BXY9",
/// as a camera reads it); 1 to 16 characters.
pub fn normalise_plate(raw: &str) -> Result<String> {
    let mut plate = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || "ÄÖÜäöü".contains(c) {
            plate.extend(c.to_uppercase());
        } else if !matches!(c, ' ' | '-' | '.') {
            return Err(Error::Invalid(
                "a plate holds letters, digits, spaces, dashes and dots".into(),
            ));
        }
    }
    if plate.is_empty() || plate.chars().count() > 16 {
        return Err(Error::Invalid(
            "a plate has 1 to 16 letters and digits".into(),
        ));
    }
    Ok(plate)
}

/// A point on the map: latitude and longitude in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    #[schema(schema_with = crate::domain::schema::latitude)]
    pub latitude: f64,
    #[schema(schema_with = crate::domain::schema::longitude)]
    pub longitude: f64,
}

impl Point {
    pub fn new(latitude: f64, longitude: f64) -> Result<Self> {
        if (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude) {
            Ok(Self {
                latitude,
                longitude,
            })
        } else {
            Err(Error::Invalid(
                "latitude must be -90 to 90 and longitude -180 to 180".into(),
            ))
        }
    }

    pub fn pair(self) -> (f64, f64) {
        (self.latitude, self.longitude)
    }
}

impl std::str::FromStr for Point {
    type Err = Error;

    /// `"52.52,13.40"`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("`{s}` is not a point: use latitude,longitude"));
        let (lat, lng) = s.split_once(',').ok_or_else(bad)?;
        let (lat, lng) = (
            lat.trim().parse::<f64>().map_err(|_| bad())?,
            lng.trim().parse::<f64>().map_err(|_| bad())?,
        );
        Self::new(lat, lng)
    }
}

impl Accounts {
    /// Remember where `user` works: lots and spots nearest to it are offered first.
    pub async fn set_workplace(&self, user: UserId, at: Point) -> Result<()> {
        let at = Point::new(at.latitude, at.longitude)?;
        rows::set_workplace(self.store.writer(), user, at.latitude, at.longitude).await
    }

    /// Where `user` works, if they said.
    pub async fn workplace(&self, user: UserId) -> Result<Option<Point>> {
        workplace_of(&self.store, user).await
    }

    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        signer: TokenSigner,
        limiter: LoginLimiter,
        lifetimes: TokenLifetimes,
    ) -> Self {
        Self {
            store,
            clock,
            signer,
            limiter: Arc::new(limiter),
            lifetimes,
        }
    }

    pub async fn register(&self, c: Credentials) -> Result<UserId> {
        self.register_as(c, "driver").await
    }

    /// An account of the admin role (the portal's users); made by `parkflow admin add`.
    pub async fn register_admin(&self, c: Credentials) -> Result<UserId> {
        self.register_as(c, "admin").await
    }

    async fn register_as(&self, c: Credentials, role: &str) -> Result<UserId> {
        let email = normalise_email(&c.email)?;
        if c.password.chars().count() < 10 || c.password.len() > 256 {
            return Err(Error::Invalid(
                "a password needs 10 to 256 characters".into(),
            ));
        }
        let hash = tokio::task::spawn_blocking(move || hash_password(&c.password))
            .await
            .map_err(|e| Error::Config(format!("hashing task failed: {e}")))??;
        let id = UserId::new();
        let at = self.clock.now().timestamp_millis();
        if rows::insert_user(self.store.writer(), id, &email, &hash, role, at).await? {
            Ok(id)
        } else {
            Err(Error::conflict(
                "email_taken",
                "an account with that e-mail exists",
            ))
        }
    }

    /// Log in from client address `ip`.
    pub async fn login(&self, c: Credentials, ip: &str) -> Result<SessionTokens> {
        let now = self.clock.now();
        let email = c.email.trim().to_lowercase();
        self.limiter.check(&email, ip, now)?;
        let row = rows::login_row(self.store.pool(), &email).await?;
        // Verify against a real hash even for unknown e-mails, so timing does not reveal accounts.
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3W0sfYfSWYPzPmMsOZDJ4tA1ZKzMNeJ6l5m1vkG5Z0A";
        let stored: String = row
            .as_ref()
            .map_or(DUMMY.to_owned(), |r| r.password_hash.clone());
        let password = c.password;
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .map_err(|e| Error::Config(format!("hashing task failed: {e}")))?;
        let Some(row) = row.filter(|_| ok) else {
            self.limiter.record_failure(&email, ip, now);
            return Err(Error::InvalidCredentials);
        };
        self.limiter.record_success(&email, ip, now);
        let user = UserId(row.id.parse().map_err(|_| Error::Unauthorized)?);
        self.issue(user, &row.role).await
    }

    /// Trade a refresh token for new tokens; the old refresh token stops working.
    pub async fn refresh(&self, token: &str) -> Result<SessionTokens> {
        let now = self.clock.now().timestamp_millis();
        let hash = refresh_token_hash(token);
        let mut tx = self.store.begin_change(self.clock.now()).await?;
        let (user, role) = rows::live_refresh_token(&mut *tx, &hash, now)
            .await?
            .ok_or(Error::Unauthorized)?;
        rows::revoke_refresh_token(&mut *tx, &hash, now).await?;
        tx.commit().await?;
        let user = UserId(user.parse().map_err(|_| Error::Unauthorized)?);
        self.issue(user, &role).await
    }

    async fn issue(&self, user: UserId, role: &str) -> Result<SessionTokens> {
        let now = self.clock.now();
        let claims = Claims {
            sub: user.0.to_string(),
            role: role.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp() + self.lifetimes.access_s,
        };
        let (refresh, hash) = new_refresh_token();
        let expires_at = now
            .timestamp_millis()
            .saturating_add(self.lifetimes.refresh_s.saturating_mul(1000));
        rows::insert_refresh_token(self.store.writer(), &hash, user, expires_at).await?;
        Ok(SessionTokens {
            access_token: self.signer.sign(&claims),
            refresh_token: refresh,
            token_type: "Bearer".into(),
            expires_in: self.lifetimes.access_s,
        })
    }

    /// End a session: its refresh token stops working (an unknown token is no error).
    pub async fn revoke(&self, refresh_token: &str) -> Result<()> {
        let at = self.clock.now().timestamp_millis();
        rows::revoke_refresh_token(self.store.writer(), &refresh_token_hash(refresh_token), at)
            .await
    }

    /// The account's e-mail address.
    pub async fn email(&self, user: UserId) -> Result<String> {
        rows::user(self.store.pool(), user)
            .await?
            .map(|r| r.email)
            .ok_or_else(|| Error::NotFound("account".into()))
    }

    /// The principal of a valid access token whose account still exists, with the account's
    /// role as stored now: an erased account's tokens stop working at once, and so does a
    /// revoked admin role, without waiting for the token to expire.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.signer.verify(token, self.clock.now())?;
        let user = UserId(claims.sub.parse().map_err(|_| Error::Unauthorized)?);
        let (role, latitude, longitude) = rows::standing(self.store.pool(), user)
            .await?
            .ok_or(Error::Unauthorized)?;
        Ok(Principal {
            user,
            admin: role == "admin",
            workplace: latitude.zip(longitude),
        })
    }

    pub async fn add_vehicle(&self, user: UserId, v: NewVehicle) -> Result<Vehicle> {
        let plate = normalise_plate(&v.plate)?;
        let region = crate::text::line("region", &v.region, 8)?.to_uppercase();
        let id = Uuid::now_v7();
        let row = rows::VehicleRow {
            id: id.to_string(),
            plate,
            region,
            vehicle_type: v.vehicle_type.as_str().to_owned(),
            created_at: self.clock.now().timestamp_millis(),
        };
        if !rows::insert_vehicle(self.store.writer(), user, &row).await? {
            return Err(Error::conflict(
                "vehicle_exists",
                "that vehicle is already registered",
            ));
        }
        Ok(Vehicle {
            id,
            plate: row.plate,
            region: row.region,
            vehicle_type: v.vehicle_type,
        })
    }

    pub async fn vehicles(&self, user: UserId) -> Result<Vec<Vehicle>> {
        vehicles_of(&self.store, user).await
    }

    /// One of `user`'s vehicles; another driver's is not found.
    pub async fn vehicle(&self, user: UserId, id: Uuid) -> Result<Vehicle> {
        vehicle_of(&self.store, user, id).await
    }
}

/// `user`'s registered vehicles.
pub(crate) async fn vehicles_of(store: &Store, user: UserId) -> Result<Vec<Vehicle>> {
    rows::vehicles(store.pool(), user)
        .await?
        .into_iter()
        .map(|v| {
            Ok(Vehicle {
                id: v.id.parse().map_err(|e| Error::Invalid(format!("{e}")))?,
                plate: v.plate,
                region: v.region,
                vehicle_type: v.vehicle_type.parse().map_err(Error::Invalid)?,
            })
        })
        .collect()
}

/// One of `user`'s vehicles; another driver's is not found.
pub(crate) async fn vehicle_of(store: &Store, user: UserId, id: Uuid) -> Result<Vehicle> {
    vehicles_of(store, user)
        .await?
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| Error::NotFound(format!("vehicle {id}")))
}

/// The workplace `user` saved, if any.
pub(crate) async fn workplace_of(store: &Store, user: UserId) -> Result<Option<Point>> {
    let row = rows::user(store.pool(), user).await?;
    Ok(row
        .and_then(|r| r.workplace_latitude.zip(r.workplace_longitude))
        .map(|(latitude, longitude)| Point {
            latitude,
            longitude,
        }))
}
