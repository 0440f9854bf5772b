//! `/v1/tenants/{tenant}/webhooks…`: a tenant's webhook endpoints (scope
//! `webhooks:write`), their secrets (shown on creation and rotation only)
//! and what each was sent.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::event_types::EventTypeItem;
use crate::domain::webhooks::endpoints::{
    Delivery, Endpoint, EndpointInput, message_id, parse_message_id,
};
use crate::http::body::{Json, Query, non_null};
use crate::http::extract::{AdminCaller, scope};
use crate::http::problem::{AdminErrors, ApiError, BodyErrors, CallerErrors, Problem};
use crate::http::state::AppState;
use crate::types::ids::WebhookId;

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    id: Uuid,
    url: String,
    #[schema(value_type = Vec<EventTypeItem>)]
    events: Vec<String>,
    description: String,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Endpoint> for WebhookResponse {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.as_uuid(),
            url: e.url,
            events: e.events,
            description: e.description,
            disabled: e.disabled,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint as created: with its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: WebhookResponse,
    /// `whsec_` + base64 of 32 bytes: verify messages with it (Standard Webhooks).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwXjRlQhAFdqs=")]
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookSecretResponse {
    /// The new secret; the old one also signs for 24 hours.
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookPage {
    webhooks: Vec<WebhookResponse>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptResponse {
    attempted_at: DateTime<Utc>,
    /// The receiver's status; null when there was none (see `error`).
    status_code: Option<i32>,
    /// `timeout`, `connection failed`, …; null when the receiver answered.
    error: Option<String>,
    duration_ms: i32,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// The message's `webhook-id`, the same on every attempt.
    #[schema(example = "msg_0192f1a2b3c47d8e9f0a1b2c3d4e5f60")]
    message_id: String,
    #[serde(rename = "type")]
    #[schema(value_type = EventTypeItem)]
    event_type: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    created_at: DateTime<Utc>,
    /// When the next attempt is due (pending messages).
    next_attempt_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    attempts: Vec<AttemptResponse>,
}

impl From<Delivery> for DeliveryResponse {
    fn from(d: Delivery) -> Self {
        let m = d.message;
        Self {
            message_id: message_id(m.id),
            next_attempt_at: (m.status == "pending").then_some(m.next_attempt_at),
            event_type: m.event_type,
            status: m.status,
            created_at: m.created_at,
            finished_at: m.finished_at,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| AttemptResponse {
                    attempted_at: a.attempted_at,
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    deliveries: Vec<DeliveryResponse>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://`, reaching public addresses only (see the README's SSRF note); at most 2000 characters.
    #[schema(
        example = "https://hooks.example.com/tenant-jwt",
        pattern = "^https?://",
        max_length = 2000
    )]
    url: String,
    /// Event types, or `["*"]` for all; 1 to 50.
    #[schema(value_type = Vec<EventTypeItem>, min_items = 1, max_items = 50)]
    events: Vec<String>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false, max_length = 500)]
    description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false, pattern = "^https?://", max_length = 2000)]
    url: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = Vec<EventTypeItem>, nullable = false, min_items = 1, max_items = 50)]
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false, max_length = 500)]
    description: Option<String>,
    /// A disabled endpoint is sent nothing; what it was due waits.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(nullable = false)]
    disabled: Option<bool>,
}

/// `?status=&limit=&after=` of the deliveries listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `failed`; all when absent.
    #[param(pattern = "^(pending|delivered|failed)$")]
    status: Option<String>,
    /// 1 to 200 (larger is capped); default 50.
    #[param(value_type = Option<i64>, minimum = 1.0, maximum = 4294967295.0)]
    limit: Option<u32>,
    /// The `next_after` of the previous page (a `message_id`).
    #[param(pattern = "^msg_[0-9a-f]{32}$")]
    after: Option<String>,
}

/// `?limit=&after=` of the endpoints listing.
pub type WebhookPageQuery = super::page::PageQuery;

/// A webhook id from the path; one that is no UUID is simply not found.
pub(crate) fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).map_err(|_| ApiError::NotFound("webhook"))
}

/// Add a webhook endpoint.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/webhooks", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug")),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created (`Location` names it); the answer holds the signing secret, shown only here and on rotation", body = WebhookCreated),
        BodyErrors,
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn create(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    body: Json<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = EndpointInput {
        url: Some(body.url),
        events: Some(body.events),
        description: body.description,
        disabled: None,
    };
    let (endpoint, secret) = state.webhooks.create(&ctx, &tenant, input).await?;
    let location = format!("/v1/tenants/{tenant}/webhooks/{}", endpoint.id);
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(WebhookCreated {
            webhook: endpoint.into(),
            secret: secret.to_string(),
        }))
}

/// List a tenant's webhook endpoints.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/webhooks", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug"), WebhookPageQuery),
    responses(
        (status = 200, description = "A page of endpoints (never their secrets)", body = WebhookPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn list(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
    query: Query<WebhookPageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = state
        .webhooks
        .list(&ctx, &tenant, query.after, query.limit)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookPage {
        webhooks: page.items.into_iter().map(WebhookResponse::from).collect(),
        next_after: page.next_after,
    }))
}

/// Read a webhook endpoint.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("webhook_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The endpoint (never its secret)", body = WebhookResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn get(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let endpoint = state.webhooks.get(&ctx, &tenant, webhook_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(endpoint)))
}

/// Change a webhook endpoint's URL, events, description or whether it is disabled.
#[utoipa::path(
    patch, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("webhook_id" = Uuid, Path)),
    request_body = PatchWebhook,
    responses(
        (status = 200, description = "Changed", body = WebhookResponse),
        BodyErrors,
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn update(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Json<PatchWebhook>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let body = body.into_inner();
    let input = EndpointInput {
        url: body.url,
        events: body.events,
        description: body.description,
        disabled: body.disabled,
    };
    let endpoint = state
        .webhooks
        .update(&ctx, &tenant, webhook_id(&id)?, input)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(endpoint)))
}

/// Delete a webhook endpoint and what it was sent.
#[utoipa::path(
    delete, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("webhook_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn delete(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state
        .webhooks
        .delete(&ctx, &tenant, webhook_id(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Give a webhook endpoint a new secret; the old one also signs for 24 hours.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("webhook_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The new secret, shown only here", body = WebhookSecretResponse),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn rotate_secret(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let secret = state
        .webhooks
        .rotate_secret(&ctx, &tenant, webhook_id(&id)?)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookSecretResponse {
        secret: secret.to_string(),
    }))
}

/// What a webhook endpoint was sent: each message with its attempts, oldest first.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant's slug"), ("webhook_id" = Uuid, Path), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of messages", body = DeliveryPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn deliveries(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    let query = query.into_inner();
    let after = match query.after.as_deref() {
        None => None,
        Some(raw) => Some(parse_message_id(raw).ok_or_else(|| ApiError::Validation {
            field: "after",
            detail: "must be a message_id".to_owned(),
        })?),
    };
    let page = state
        .webhooks
        .deliveries(
            &ctx,
            &tenant,
            webhook_id(&id)?,
            query.status.as_deref(),
            after.map(|m| m.as_uuid()),
            query.limit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryPage {
        deliveries: page.items.into_iter().map(DeliveryResponse::from).collect(),
        next_after: page.next_after.map(|id| message_id(id.into())),
    }))
}

/// Send a message again, from the start of the retry schedule, with the same `webhook-id`.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/webhooks/{webhook_id}/deliveries/{message_id}/retry", tag = "webhooks",
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("webhook_id" = Uuid, Path),
        ("message_id" = String, Path, description = "`msg_` and 32 hex digits"),
    ),
    responses(
        (status = 202, description = "Queued; it is sent within a second or so"),
        CallerErrors,
        AdminErrors,
    ),
    security(("service_key" = ["webhooks:write"]), ("access_token" = [])),
)]
pub async fn retry(
    AdminCaller(ctx, _): AdminCaller<scope::WebhooksWrite>,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id, message) = path.into_inner();
    let message = parse_message_id(&message).ok_or(ApiError::NotFound("message"))?;
    state
        .webhooks
        .retry(&ctx, &tenant, webhook_id(&id)?, message)
        .await?;
    Ok(HttpResponse::Accepted().finish())
}
