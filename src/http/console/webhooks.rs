//! The tenant's webhook endpoints and what they were sent: an endpoint's
//! deliveries, each with its attempts, and retrying one. (Endpoints are
//! created and changed through the API, where their secret is handed out.)

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::session::ConsoleAdmin;
use super::{Chrome, ConsoleError, html, see_other, when};
use crate::domain::webhooks::endpoints::{message_id, parse_message_id};
use crate::http::handlers::webhooks::webhook_id;
use crate::http::problem::ApiError;
use crate::http::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks", web::get().to(list))
        .route("/webhooks/{id}", web::get().to(show))
        .route(
            "/webhooks/{id}/deliveries/{message}/retry",
            web::post().to(retry),
        );
}

struct EndpointLine {
    id: String,
    url: String,
    events: String,
    description: String,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    chrome: Chrome,
    endpoints: Vec<EndpointLine>,
}

struct DeliveryLine {
    id: String,
    event_type: String,
    status: String,
    attempts: i32,
    created: String,
    last_attempt: String,
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
struct WebhookPage {
    chrome: Chrome,
    endpoint: EndpointLine,
    deliveries: Vec<DeliveryLine>,
    next: Option<Uuid>,
}

#[derive(Deserialize)]
pub struct Shown {
    done: Option<String>,
    after: Option<Uuid>,
}

fn line(e: crate::domain::webhooks::endpoints::Endpoint) -> EndpointLine {
    EndpointLine {
        id: e.id.to_string(),
        url: e.url,
        events: e.events.join(" "),
        description: e.description,
        disabled: e.disabled,
    }
}

pub async fn list(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
) -> Result<HttpResponse, ConsoleError> {
    let page = state
        .webhooks
        .list(&admin.ctx, &admin.tenant, None, Some(200))
        .await?;
    html(&WebhooksPage {
        chrome: Chrome::new("webhooks", &admin),
        endpoints: page.items.into_iter().map(line).collect(),
    })
}

pub async fn show(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
    query: web::Query<Shown>,
) -> Result<HttpResponse, ConsoleError> {
    let id = webhook_id(&id)?;
    let (ctx, tenant) = (&admin.ctx, admin.tenant.as_str());
    let endpoint = state.webhooks.get(ctx, tenant, id).await?;
    let page = state
        .webhooks
        .deliveries(ctx, tenant, id, None, query.after, Some(50))
        .await?;
    let deliveries = page
        .items
        .into_iter()
        .map(|d| DeliveryLine {
            id: message_id(d.message.id),
            event_type: d.message.event_type,
            status: d.message.status,
            attempts: d.message.attempts,
            created: when(d.message.created_at),
            last_attempt: d.attempts.last().map_or_else(String::new, |a| {
                let outcome = match (a.status_code, &a.error) {
                    (Some(code), _) => format!("HTTP {code}"),
                    (None, Some(error)) => error.clone(),
                    (None, None) => String::new(),
                };
                format!("{} {outcome}", when(a.attempted_at))
            }),
        })
        .collect();
    html(&WebhookPage {
        chrome: Chrome::new("webhooks", &admin).notice(query.done.as_deref()),
        endpoint: line(endpoint),
        deliveries,
        next: page.next_after,
    })
}

pub async fn retry(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, message) = path.into_inner();
    let id = webhook_id(&id)?;
    let message = parse_message_id(&message).ok_or(ApiError::NotFound("delivery"))?;
    state
        .webhooks
        .retry(&admin.ctx, &admin.tenant, id, message)
        .await?;
    Ok(see_other(&format!("/console/webhooks/{id}"), "retried"))
}
