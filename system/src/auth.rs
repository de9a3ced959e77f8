//! Authentication: Argon2id password hashes and HS256 JWT access tokens, plus the axum
//! extractors [`AuthUser`] and [`AdminUser`] that verify the token on every protected route.

use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Result};
use crate::state::AppState;

/// The claims inside an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id, as a string (JWT convention).
    pub sub: String,
    /// `user` or `admin`.
    pub role: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
}

/// Signing and verification keys plus hashing parameters.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    argon2: Arc<Argon2<'static>>,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Keys from `secret` and Argon2id with the given memory (KiB) and iterations.
    pub fn new(
        secret: &[u8],
        memory_kib: u32,
        iterations: u32,
        token_ttl_secs: u64,
    ) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib.max(8), iterations.max(1), 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            argon2: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
            token_ttl_secs,
        })
    }

    /// Hashes a password on the blocking pool (Argon2 is deliberately slow).
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))
        })
        .await
        .map_err(|e| ApiError::internal(format!("hashing task failed: {e}")))?
    }

    /// Whether `password` matches `hash` (on the blocking pool).
    pub async fn verify_password(&self, password: String, hash: String) -> bool {
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// A signed access token for `user_id` with `role`, issued at `now_ms`.
    pub fn issue(&self, user_id: i64, role: &str, now_ms: i64) -> Result<String> {
        let iat = now_ms / 1000;
        let claims = Claims {
            sub: user_id.to_string(),
            role: role.to_owned(),
            iat,
            exp: iat + self.token_ttl_secs as i64,
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("token signing failed: {e}")))
    }

    /// Verifies signature and expiry (against `now_ms`, no leeway).
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        // Expiry is checked below against the service's clock, so tests can move time.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::unauthorized("invalid access token"))?;
        if data.claims.exp <= now_ms / 1000 {
            return Err(ApiError::unauthorized("access token expired"));
        }
        Ok(data.claims)
    }
}

/// The authenticated caller of a protected route.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Whether the caller is an admin.
    pub is_admin: bool,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be a Bearer token"))?;
        let claims = state.auth.verify(token.trim(), state.clock.now_ms())?;
        let id = claims
            .sub
            .parse::<i64>()
            .map_err(|_| ApiError::unauthorized("invalid access token"))?;
        Ok(AuthUser {
            id,
            is_admin: claims.role == "admin",
        })
    }
}

/// An authenticated caller with the admin role (403 otherwise).
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.is_admin {
            return Err(ApiError::forbidden("this route needs the admin role"));
        }
        Ok(AdminUser(user))
    }
}
