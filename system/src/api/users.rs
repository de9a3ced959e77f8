//! Registration and login.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::AppJson;
use super::model::{RegisterRequest, TokenRequest, TokenResponse, UserResponse};
use crate::domain::{Email, Password, Text};
use crate::error::{ApiError, ErrorBody, Result};
use crate::state::AppState;
use crate::store::users;

/// Register a buyer account.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = RegisterRequest,
    responses((status = 201, body = UserResponse), (status = 409, description = "email_taken", body = ErrorBody),
              (status = 422, description = "invalid e-mail, password or name", body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn register(
    State(state): State<AppState>,
    AppJson(req): AppJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserResponse>)> {
    let email = Email::parse(&req.email)?;
    let password = Password::parse(&req.password)?;
    let name = Text::parse(&req.name, "name", 100)?;
    let hash = state
        .auth
        .hash_password(password.expose().to_owned())
        .await?;
    let user = users::insert(
        &state.db,
        email.as_str(),
        name.as_str(),
        &hash,
        "user",
        state.clock.now_ms(),
    )
    .await?;
    tracing::info!(user_id = user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            id: user.id,
            email: user.email,
            name: user.name,
        }),
    ))
}

/// Exchange e-mail and password for an access token.
#[utoipa::path(post, path = "/v1/auth/token", tag = "users", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "wrong credentials", body = ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn token(
    State(state): State<AppState>,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<Json<TokenResponse>> {
    let wrong = || ApiError::unauthorized("wrong email or password");
    let email = Email::parse(&req.email).map_err(|_| wrong())?;
    if req.password.len() > 1024 {
        return Err(wrong());
    }
    let user = users::by_email(&state.db, email.as_str())
        .await?
        .ok_or_else(wrong)?;
    if !state
        .auth
        .verify_password(req.password, user.password_hash)
        .await
    {
        return Err(wrong());
    }
    let access_token = state
        .auth
        .issue(user.id, &user.role, state.clock.now_ms())?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.auth.token_ttl_secs,
    }))
}
