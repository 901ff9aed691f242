//! The API's error type: every failure of a handler, mapped to an HTTP status by variant and
//! answered as JSON `{"error": "...", "code": "<machine code>"}` (wisp's `code` is a stable
//! identifier of the kind of error, where OpenWhisk puts a transaction id).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use wisp_core::run::ErrorBody;

use crate::activation::limits::Throttled;
use crate::store::StoreError;

/// The `code` of a 429: a request over a namespace limit.
pub const TOO_MANY_REQUESTS: &str = "too_many_requests";

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing, malformed or wrong credentials.
    #[error("The supplied authentication is invalid.")]
    Unauthorized,
    /// 403: another namespace's (private) resource.
    #[error("The supplied authentication is not authorized to access this resource.")]
    Forbidden,
    /// 403 with a reason (a binding to another namespace's private package...).
    #[error("{0}")]
    Denied(String),
    /// 403: the admin API without a configured admin key.
    #[error("admin API disabled: no admin key is configured (WISP_ADMIN_KEY)")]
    AdminDisabled,
    /// 404.
    #[error("The requested resource does not exist.")]
    NotFound,
    /// 409: create without `overwrite` of something that exists, or a non-empty package delete.
    #[error("{0}")]
    Conflict(String),
    /// 400: malformed JSON, fields of the wrong type, bad names, limits out of range, code that
    /// is not wasm...
    #[error("{0}")]
    BadRequest(String),
    /// 413.
    #[error("The request content was too large: the limit is {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    /// 413: action code over OpenWhisk's 48 MB.
    #[error("The action code is {size} bytes, over the limit of {limit} bytes.")]
    CodeTooLarge { size: usize, limit: usize },
    /// 429: over a namespace limit (OpenWhisk's message).
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// 501: a feature of a later version (triggers, rules, sequence invokes...).
    #[error("{0}")]
    NotImplemented(String),
    /// 503.
    #[error("{0}")]
    Unavailable(String),
    /// 500.
    #[error("internal error: {0}")]
    Internal(String),
    /// A store failure, mapped by its variant.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::Denied(_) | ApiError::AdminDisabled => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } | ApiError::CodeTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(e) => match e {
                StoreError::Conflict { .. } | StoreError::PackageNotEmpty(_) => {
                    StatusCode::CONFLICT
                }
                StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
                StoreError::MissingCode(_) => StatusCode::BAD_REQUEST,
                e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The machine-readable `code` of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden | ApiError::Denied(_) => "forbidden",
            ApiError::AdminDisabled => "admin_disabled",
            ApiError::NotFound => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::PayloadTooLarge { .. } | ApiError::CodeTooLarge { .. } => "payload_too_large",
            ApiError::Throttled(_) => TOO_MANY_REQUESTS,
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
            ApiError::Store(e) => match e {
                StoreError::Conflict { .. } => "conflict",
                StoreError::PackageNotEmpty(_) => "package_not_empty",
                StoreError::NotFound { .. } => "not_found",
                StoreError::MissingCode(_) => "missing_code",
                e if e.is_unavailable() => "store_unavailable",
                _ => "store_error",
            },
        }
    }

    /// The `{error, code}` body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"wisp\""),
            );
        }
        response
    }
}

/// The machine code used for a status when an error was not produced by [`ApiError`]
/// (axum's own rejections, turned into JSON by the API's error layer).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "bad_request",
        429 => TOO_MANY_REQUESTS,
        500 => "internal_error",
        501 => "not_implemented",
        503 => "unavailable",
        _ => "error",
    }
}
