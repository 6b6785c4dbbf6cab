//! The Bitrix24 side of a sign-in: `/oauth/callback`, the code exchange, who the user is. (H3 fills this in.)

use axum::Router;

use super::Signin;

pub fn routes() -> Router<Signin> {
    Router::new()
}
