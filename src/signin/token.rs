//! `POST /token` (authorization code with S256, refresh token) and `POST /revoke`. (H1 fills this
//! in.)

use axum::Router;

use super::Signin;

pub fn routes() -> Router<Signin> {
    Router::new()
}
