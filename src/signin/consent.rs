//! `/authorize`: the request checked, the consent page, the user's decision. (H2 fills this in.)

use axum::Router;

use super::Signin;

pub fn routes() -> Router<Signin> {
    Router::new()
}
