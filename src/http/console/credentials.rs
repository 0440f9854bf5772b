//! Service credentials of the tenant: list, create (the key shown once, in
//! the answer that creates it), revoke.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::session::{ConsoleAdmin, FormBody};
use super::{Chrome, ConsoleError, Done, html, see_other, when};
use crate::domain::DomainError;
use crate::domain::admin::credentials::{Credential, NewCredential};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::types::ids::{CredentialId, CredentialName};
use crate::types::scopes::{Scope, Scopes};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/credentials", web::get().to(list))
        .route("/credentials", web::post().to(create))
        .route("/credentials/{id}/revoke", web::post().to(revoke));
}

struct CredentialLine {
    id: String,
    name: String,
    scopes: String,
    created: String,
    expires: String,
    last_used: String,
}

impl From<Credential> for CredentialLine {
    fn from(c: Credential) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.as_str().to_owned(),
            scopes: c.scopes.names().join(" "),
            created: when(c.created_at),
            expires: c.expires_at.map_or_else(|| "never".to_owned(), when),
            last_used: c.last_used_at.map_or_else(|| "never".to_owned(), when),
        }
    }
}

#[derive(Template)]
#[template(path = "console/credentials.html")]
struct CredentialsPage {
    chrome: Chrome,
    credentials: Vec<CredentialLine>,
    /// The scopes a tenant's credential may hold, for the create form.
    scopes: Vec<&'static str>,
    /// The key of the credential just created: shown this once.
    created: Option<(String, String)>,
}

pub async fn list(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    query: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome::new("credentials", &admin).notice(query.done.as_deref());
    html(&credentials_page(&state, &admin, chrome).await?)
}

async fn credentials_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    chrome: Chrome,
) -> Result<CredentialsPage, ConsoleError> {
    let page = state
        .admin
        .credentials(&admin.ctx, Some(&admin.tenant), None, Some(200))
        .await?;
    Ok(CredentialsPage {
        chrome,
        credentials: page.items.into_iter().map(CredentialLine::from).collect(),
        scopes: Scope::ALL
            .iter()
            .filter(|s| **s != Scope::TenantsWrite)
            .map(|s| s.as_str())
            .collect(),
        created: None,
    })
}

pub async fn create(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    form: web::ReqData<FormBody>,
) -> Result<HttpResponse, ConsoleError> {
    let created = async {
        let name = form.values("name").pop().unwrap_or_default();
        let new = NewCredential {
            name: CredentialName::parse(&name).map_err(DomainError::from)?,
            scopes: Scopes::parse(&form.values("scope")).map_err(DomainError::from)?,
            expires_in: None,
        };
        let tenant = Some(admin.tenant.as_str());
        Ok::<_, ApiError>(
            state
                .admin
                .create_credential(&admin.ctx, tenant, new)
                .await?,
        )
    };
    match created.await {
        Ok(created) => {
            let chrome = Chrome::new("credentials", &admin);
            let mut page = credentials_page(&state, &admin, chrome).await?;
            let name = created.credential.name.as_str().to_owned();
            page.created = Some((name, created.key.expose().to_owned()));
            html(&page)
        }
        Err(e) => {
            e.log_cause();
            let chrome = Chrome::new("credentials", &admin).failed(&e);
            html(&credentials_page(&state, &admin, chrome).await?)
        }
    }
}

pub async fn revoke(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let id = CredentialId::parse(&id).map_err(|_| ApiError::NotFound("credential"))?;
    state
        .admin
        .revoke_credential(&admin.ctx, Some(&admin.tenant), id)
        .await?;
    Ok(see_other("/console/credentials", "revoked"))
}
