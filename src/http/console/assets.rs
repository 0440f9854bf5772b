//! The console's static files, embedded in the binary: a pinned htmx
//! (`assets/htmx-2.0.11.min.js`, BSD Zero Clause), one stylesheet, one
//! small script and the icon. Nothing is loaded from another origin.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::ConsoleError;
use crate::http::problem::ApiError;

/// Each file: its name, content type and bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/htmx-2.0.11.min.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/console.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../assets/favicon.svg"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/console.css"),
    ),
];

pub async fn serve(file: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(name, ..)| *name == file.as_str())
        .ok_or(ApiError::NotFound("asset"))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        // The binary's files change only with the binary: an hour is safe.
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(*bytes))
}
