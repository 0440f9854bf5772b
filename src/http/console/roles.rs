//! The tenant's roles: list, create, edit the permissions (one pattern per
//! line, each refusal shown next to the field with its line), delete.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::session::{ConsoleAdmin, Form};
use super::{Chrome, ConsoleError, Done, html, see_other, when};
use crate::domain::authz::grammar::{Pattern, RoleName};
use crate::domain::authz::roles::{self, NewRole, Role, RolePatch};
use crate::http::problem::ApiError;
use crate::http::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/roles", web::get().to(list))
        .route("/roles", web::post().to(create))
        .route("/roles/{name}", web::get().to(show))
        .route("/roles/{name}", web::post().to(edit))
        .route("/roles/{name}/delete", web::post().to(delete));
}

struct RoleLine {
    name: String,
    description: String,
    permissions: usize,
    updated: String,
}

/// The role form, as shown or as sent back with its errors.
#[derive(Default)]
struct RoleForm {
    name: String,
    description: String,
    permissions: String,
    name_error: Option<String>,
    description_error: Option<String>,
    permissions_error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/roles.html")]
struct RolesPage {
    chrome: Chrome,
    roles: Vec<RoleLine>,
    form: RoleForm,
}

#[derive(Template)]
#[template(path = "console/role.html")]
struct RolePage {
    chrome: Chrome,
    form: RoleForm,
}

#[derive(Deserialize)]
pub struct Sent {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: String,
}

pub async fn list(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    query: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome::new("roles", &admin).notice(query.done.as_deref());
    html(&roles_page(&state, &admin, chrome, RoleForm::default()).await?)
}

async fn roles_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    chrome: Chrome,
    form: RoleForm,
) -> Result<RolesPage, ConsoleError> {
    let page = state
        .roles
        .list(&admin.ctx, &admin.tenant, None, Some(200))
        .await?;
    let roles = page
        .roles
        .into_iter()
        .map(|r| RoleLine {
            name: r.name.to_string(),
            description: r.description,
            permissions: r.permissions.len(),
            updated: when(r.updated_at),
        })
        .collect();
    Ok(RolesPage {
        chrome,
        roles,
        form,
    })
}

/// The lines of the permissions field, each parsed; the first refused one
/// names its line.
fn permissions(text: &str) -> Result<Vec<Pattern>, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for (n, line) in lines.iter().enumerate() {
        if let Err(e) = Pattern::parse(line) {
            return Err(format!("line {} ({line}): {}", n + 1, e.reason));
        }
    }
    roles::patterns(&lines).map_err(|e| e.reason.to_owned())
}

/// A role's fields, parsed.
type Parsed = (RoleName, String, Vec<Pattern>);

/// The form as sent, and its fields parsed; when one is refused, `None` and
/// the form with an error next to each bad field.
fn parsed(sent: Sent) -> (RoleForm, Option<Parsed>) {
    let name = RoleName::parse(sent.name.trim());
    let description = roles::description(Some(sent.description.clone()));
    let patterns = permissions(&sent.permissions);
    let mut form = RoleForm {
        name: sent.name,
        description: sent.description,
        permissions: sent.permissions,
        ..RoleForm::default()
    };
    match (name, description, patterns) {
        (Ok(name), Ok(description), Ok(patterns)) => (form, Some((name, description, patterns))),
        (name, description, patterns) => {
            form.name_error = name.err().map(|e| e.reason.to_owned());
            form.description_error = description.err().map(|e| e.reason.to_owned());
            form.permissions_error = patterns.err();
            (form, None)
        }
    }
}

pub async fn create(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    Form(sent): Form<Sent>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome::new("roles", &admin);
    let (form, parsed) = parsed(sent);
    let Some((name, description, permissions)) = parsed else {
        return html(&roles_page(&state, &admin, chrome, form).await?);
    };
    let new = NewRole {
        name: name.clone(),
        description,
        permissions,
    };
    match state.roles.create(&admin.ctx, &admin.tenant, new).await {
        Ok(_) => Ok(see_other(&format!("/console/roles/{name}"), "created")),
        Err(e) => {
            let e = ApiError::from(e);
            e.log_cause();
            let page = roles_page(&state, &admin, chrome.failed(&e), form).await?;
            html(&page)
        }
    }
}

fn shown(role: Role) -> RoleForm {
    RoleForm {
        name: role.name.to_string(),
        description: role.description,
        permissions: role
            .permissions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        ..RoleForm::default()
    }
}

pub async fn show(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    name: web::Path<String>,
    query: web::Query<Done>,
) -> Result<HttpResponse, ConsoleError> {
    let role = state.roles.get(&admin.ctx, &admin.tenant, &name).await?;
    let chrome = Chrome::new("roles", &admin).notice(query.done.as_deref());
    html(&RolePage {
        chrome,
        form: shown(role),
    })
}

pub async fn edit(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    name: web::Path<String>,
    Form(mut sent): Form<Sent>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome::new("roles", &admin);
    sent.name = name.into_inner();
    let (form, parsed) = parsed(sent);
    let Some((name, description, permissions)) = parsed else {
        return html(&RolePage { chrome, form });
    };
    let patch = RolePatch {
        description: Some(description),
        permissions: Some(permissions),
    };
    let updated = state
        .roles
        .update(&admin.ctx, &admin.tenant, name.as_str(), patch, None);
    match updated.await {
        Ok(_) => Ok(see_other(&format!("/console/roles/{name}"), "updated")),
        Err(e) => {
            let e = ApiError::from(e);
            e.log_cause();
            html(&RolePage {
                chrome: chrome.failed(&e),
                form,
            })
        }
    }
}

pub async fn delete(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    state
        .roles
        .delete(&admin.ctx, &admin.tenant, &name, None)
        .await?;
    Ok(see_other("/console/roles", "deleted"))
}
