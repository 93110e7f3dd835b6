-- Driver and staff accounts, refresh tokens (stored hashed) and drivers' vehicles.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'driver',
    created_at BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE vehicles (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    plate TEXT NOT NULL,
    region TEXT NOT NULL,
    vehicle_type TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, region, plate)
);
