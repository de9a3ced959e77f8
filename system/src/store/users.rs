//! Users: registration, lookup by e-mail for login, and the admin bootstrap.

use sqlx::Row;

use super::Db;
use crate::error::{is_unique_violation, ApiError, Result};

/// A stored user.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Normalised e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// PHC-format Argon2id hash.
    pub password_hash: String,
    /// `user` or `admin`.
    pub role: String,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get("role")?,
    })
}

/// Inserts a user; 409 `email_taken` when the e-mail is registered already.
pub async fn insert(
    db: &Db,
    email: &str,
    name: &str,
    password_hash: &str,
    role: &str,
    now: i64,
) -> Result<User> {
    let row = sqlx::query(
        "INSERT INTO users (email, name, password_hash, role, created_at)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, email, name, password_hash, role",
    )
    .bind(email)
    .bind(name)
    .bind(password_hash)
    .bind(role)
    .bind(now)
    .fetch_one(&db.pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("email_taken", "a user with this email exists")
        } else {
            e.into()
        }
    })?;
    Ok(from_row(&row)?)
}

/// The user with this (normalised) e-mail.
pub async fn by_email(db: &Db, email: &str) -> Result<Option<User>> {
    let row =
        sqlx::query("SELECT id, email, name, password_hash, role FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.as_ref().map(from_row).transpose()?)
}

/// Creates the admin account, or makes an existing account with this e-mail an admin with
/// this password.
pub async fn upsert_admin(db: &Db, email: &str, password_hash: &str, now: i64) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO users (email, name, password_hash, role, created_at)
         VALUES ($1, 'Administrator', $2, 'admin', $3)
         ON CONFLICT (email) DO UPDATE SET role = 'admin', password_hash = excluded.password_hash
         RETURNING id",
    )
    .bind(email)
    .bind(password_hash)
    .bind(now)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get("id")?)
}
