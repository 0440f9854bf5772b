//! The users page: find a user by the start of their username, page through
//! the tenant's users, create one. A user's own page is `user`.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::session::{ConsoleAdmin, Form};
use super::{Chrome, ConsoleError, html, see_other, user, when};
use crate::domain::accounts::password::Password;
use crate::domain::accounts::users::{NewUser, User};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::types::ids::{Role, Username};

/// Users a page lists.
const PAGE: u32 = 50;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .configure(user::routes);
}

/// `/console/`: the users page.
pub async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/console/users"))
        .finish()
}

/// A user as a listing shows them.
pub struct UserLine {
    pub id: String,
    pub username: String,
    pub role: &'static str,
    pub disabled: bool,
    pub created: String,
}

impl From<User> for UserLine {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.as_str().to_owned(),
            role: user.role.as_str(),
            disabled: user.disabled,
            created: when(user.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    chrome: Chrome,
    prefix: String,
    users: Vec<UserLine>,
    next: Option<Uuid>,
    /// The create form as sent, when it failed.
    new_username: String,
    new_role: &'static str,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
    after: Option<Uuid>,
    done: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome::new("users", &admin).notice(query.done.as_deref());
    let page = users_page(&state, &admin, chrome, &query.prefix, query.after).await?;
    html(&page)
}

async fn users_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    chrome: Chrome,
    prefix: &str,
    after: Option<Uuid>,
) -> Result<UsersPage, ConsoleError> {
    let prefix = prefix.trim();
    // A prefix no username could start with finds nobody, without a query.
    let (users, next) = match (prefix.is_empty(), Username::parse(prefix)) {
        (false, Err(_)) => (Vec::new(), None),
        (_, parsed) => {
            let found = state
                .admin
                .list_users(
                    &admin.ctx,
                    &admin.tenant,
                    parsed.ok().as_ref(),
                    after,
                    Some(PAGE),
                )
                .await?;
            let users = found.items.into_iter().map(UserLine::from).collect();
            (users, found.next_after)
        }
    };
    Ok(UsersPage {
        chrome,
        prefix: prefix.to_owned(),
        users,
        next,
        new_username: String::new(),
        new_role: Role::Member.as_str(),
    })
}

#[derive(Deserialize)]
pub struct CreateForm {
    username: String,
    password: String,
    role: String,
}

pub async fn create(
    state: web::Data<AppState>,
    admin: web::ReqData<ConsoleAdmin>,
    Form(form): Form<CreateForm>,
) -> Result<HttpResponse, ConsoleError> {
    let created = async {
        let new = NewUser {
            username: Username::parse(&form.username)?,
            password: Password::parse_new(form.password.clone())?,
            role: Role::parse(&form.role)?,
        };
        Ok::<_, ApiError>(
            state
                .admin
                .create_user(&admin.ctx, &admin.tenant, new)
                .await?,
        )
    };
    match created.await {
        Ok(user) => Ok(see_other(&format!("/console/users/{}", user.id), "created")),
        Err(e) => {
            e.log_cause();
            let chrome = Chrome::new("users", &admin).failed(&e);
            let mut page = users_page(&state, &admin, chrome, "", None).await?;
            page.new_username = form.username;
            page.new_role = Role::parse(&form.role).unwrap_or(Role::Member).as_str();
            html(&page)
        }
    }
}
