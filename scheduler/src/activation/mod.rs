//! The activation domain, below the HTTP layer (no axum types here): for now the admission
//! control of namespace limits ([`limits`]). Entered from the invoke path, trigger fires and the
//! API's limits routes.

pub mod limits;
