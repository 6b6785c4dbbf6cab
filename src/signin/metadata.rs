//! The protected-resource and authorization-server metadata documents, and the 401 challenge. (H2 fills this in.)

use axum::Router;

use super::Signin;

pub fn routes() -> Router<Signin> {
    Router::new()
}
