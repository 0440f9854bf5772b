//! Extractors for the kinds of caller: a user with an access token
//! (`Authenticated`, `ForwardedUser`), one of the SaaS backend's services
//! (`Service<S>`), and whoever may administer a tenant (`AdminCaller<S>`),
//! each with the scope `S` its route needs.
//!
//! Each decides before anything else of the request is read: one whose
//! answer is not known at once closes the request's `Gate`, which the body
//! extractors wait for, and opens it only when the caller is accepted.

use std::future::{Future, Ready, ready};
use std::marker::PhantomData;
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::TryFutureExt;
use futures_util::future::{Either, LocalBoxFuture, MapOk};

use super::gate::Gate;
use super::problem::ApiError;
use super::state::AppState;
use crate::domain::DomainError;
use crate::domain::accounts::sessions::Client;
use crate::domain::audit::{Actor, AuditContext};
use crate::domain::credentials::{self, Authentication, ServiceCaller};
use crate::domain::tokens::verify::{Now, Verified};
use crate::types::ids::Role;
use crate::types::scopes::Scope;
use crate::types::service_keys::KeyDigest;

/// The bearer credential of a request (RFC 6750 §2.1). Any other scheme, or
/// none, is a missing token.
fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    // UTF-8 rather than `to_str`'s visible-ASCII check, byte by byte over
    // the whole token: a token's own checks refuse anything else anyway.
    let value = std::str::from_utf8(value.as_bytes()).map_err(|_| ApiError::InvalidToken)?;
    let (scheme, credential) = value.split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    match credential.trim() {
        "" => Err(ApiError::InvalidToken),
        token => Ok(token),
    }
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(Some("AppState missing from the app".into())))
}

/// Verifies an access token from `ip`: refused with 429 before any lookup
/// while the address is throttled for presenting invalid tokens, and every
/// invalid token counts towards that.
async fn verify_from(state: &AppState, ip: IpAddr, token: &str) -> Result<Verified, ApiError> {
    state.limits.check_bearer(ip)?;
    counted(state, ip, state.verifier.verify(token).await).await
}

/// An invalid token counted against `ip`'s budget.
async fn counted(
    state: &AppState,
    ip: IpAddr,
    outcome: Result<Verified, DomainError>,
) -> Result<Verified, ApiError> {
    if let Err(DomainError::InvalidToken(_)) = outcome {
        state.limits.record_failed_verification(ip).await;
    }
    Ok(outcome?)
}

/// A caller extractor's future when its answer is not known at once: the
/// request's bodies wait until `caller` is accepted.
fn gated<T: 'static>(
    req: &HttpRequest,
    caller: impl Future<Output = Result<T, ApiError>> + 'static,
) -> LocalBoxFuture<'static, Result<T, ApiError>> {
    let gate = Gate::close(req);
    Box::pin(async move {
        let caller = caller.await?;
        gate.open();
        Ok(caller)
    })
}

/// A caller extractor's answer known at once; a refusal leaves the
/// request's bodies unread (the gate stays closed).
fn settled<T>(req: &HttpRequest, answer: Result<T, ApiError>) -> Ready<Result<T, ApiError>> {
    if answer.is_err() {
        Gate::close(req);
    }
    ready(answer)
}

/// A user's token, verified as `verify_from` does; ready at once when the
/// token is valid and its user's record is in process memory (the hot
/// path), else a future that loads it or counts the refusal.
type UserFuture =
    Either<Ready<Result<Verified, ApiError>>, LocalBoxFuture<'static, Result<Verified, ApiError>>>;

fn verify_user(req: &HttpRequest, token: Result<&str, ApiError>) -> UserFuture {
    let now = token.and_then(|token| {
        let state = state(req)?;
        let ip = state.limits.client_ip(req);
        state.limits.check_bearer(ip)?;
        Ok((state.verifier.verify_now(token), token, state, ip))
    });
    match now {
        Ok((Now::Done(Ok(verified)), ..)) => Either::Left(ready(Ok(verified))),
        Ok((Now::Done(refused), _, state, ip)) => {
            Either::Right(gated(
                req,
                async move { counted(&state, ip, refused).await },
            ))
        }
        Ok((Now::Load(unverified), token, state, ip)) => {
            let token = token.to_owned();
            Either::Right(gated(req, async move {
                let outcome = state.verifier.verify_loaded(&token, unverified).await;
                counted(&state, ip, outcome).await
            }))
        }
        Err(e) => Either::Left(settled(req, Err(e))),
    }
}

/// A user whose access token passed verification.
pub struct Authenticated(pub Verified);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = MapOk<UserFuture, fn(Verified) -> Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        verify_user(req, bearer(req)).map_ok(Authenticated)
    }
}

/// A user for `/v1/forward-auth`: as `Authenticated`, but with no bearer
/// credential the token may come from the configured cookie
/// (`TENANT_JWT_FORWARD_AUTH_COOKIE`), as browsers behind a gateway send it.
pub struct ForwardedUser(pub Verified);

impl FromRequest for ForwardedUser {
    type Error = ApiError;
    type Future = MapOk<UserFuture, fn(Verified) -> Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = match bearer(req) {
            Err(ApiError::MissingToken) => state(req).and_then(|state| {
                state
                    .forward_auth_cookie
                    .as_deref()
                    .and_then(|name| cookie(req, name))
                    .ok_or(ApiError::MissingToken)
            }),
            token => token,
        };
        verify_user(req, token).map_ok(ForwardedUser)
    }
}

/// The value of cookie `name` (RFC 6265 §5.4: `name=value` pairs separated
/// by `;`), if the request carries it and it is not empty.
pub(crate) fn cookie<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// The client a session is used from: its user agent and address (through
/// the trusted-proxy rules), for the user's list of sessions.
pub struct SessionClient(pub Client, pub IpAddr);

impl FromRequest for SessionClient {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state(req).map(|state| {
            let ip = state.limits.client_ip(req);
            let user_agent = req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            SessionClient(Client::new(user_agent, Some(ip)), ip)
        }))
    }
}

/// The scope a route needs, as a type, so that a handler's signature says
/// it (`Service<scope::Introspect>`) and no route can forget to ask.
pub trait RouteScope {
    /// `None`: any authenticated caller that may see the tenant.
    const SCOPE: Option<Scope>;
}

/// One marker type per scope (and `Any`).
pub mod scope {
    use super::RouteScope;
    use crate::types::scopes::Scope;

    macro_rules! markers {
        ($($name:ident => $scope:expr),+ $(,)?) => {$(
            pub struct $name;
            impl RouteScope for $name {
                const SCOPE: Option<Scope> = $scope;
            }
        )+};
    }

    markers! {
        Any => None,
        Introspect => Some(Scope::Introspect),
        Revoke => Some(Scope::Revoke),
        UsersRead => Some(Scope::UsersRead),
        UsersWrite => Some(Scope::UsersWrite),
        SecretsRotate => Some(Scope::SecretsRotate),
        AuditRead => Some(Scope::AuditRead),
        CredentialsWrite => Some(Scope::CredentialsWrite),
        TenantsWrite => Some(Scope::TenantsWrite),
        RolesRead => Some(Scope::RolesRead),
        RolesWrite => Some(Scope::RolesWrite),
        WebhooksWrite => Some(Scope::WebhooksWrite),
    }
}

/// `actor` if it holds the scope `S` needs; a refusal (counted) otherwise.
fn in_scope<S: RouteScope>(state: &AppState, actor: Actor) -> Result<Actor, ApiError> {
    match S::SCOPE {
        Some(scope) if !actor.scopes().contains(scope) => {
            tracing::info!(reason = "insufficient_scope", actor = %actor.id(), scope = %scope, "call refused");
            state.credentials.refused("insufficient_scope");
            Err(ApiError::InsufficientScope(scope))
        }
        _ => Ok(actor),
    }
}

/// Refuses a service key, counting it against the address's invalid-bearer
/// budget (in Redis too) like a bad access token.
async fn refuse_key(state: &AppState, ip: IpAddr, reason: &'static str) -> ApiError {
    tracing::info!(reason, "service call refused");
    state.credentials.refused(reason);
    state.limits.record_failed_verification(ip).await;
    ApiError::InvalidToken
}

/// A stored key the in-process cache could not answer for.
async fn load_key(
    state: &AppState,
    ip: IpAddr,
    digest: KeyDigest,
) -> Result<ServiceCaller, ApiError> {
    match state.credentials.load(digest).await? {
        Ok(caller) => Ok(caller),
        Err(reason) => Err(refuse_key(state, ip, reason).await),
    }
}

/// One of the SaaS backend's services, by the key it presented (a root key
/// or a stored credential), holding the scope `S`. Access tokens are not
/// accepted here.
pub struct Service<S>(pub ServiceCaller, pub PhantomData<S>);

impl<S: RouteScope> Service<S> {
    fn checked(state: &AppState, caller: ServiceCaller) -> Result<Self, ApiError> {
        in_scope::<S>(state, caller.actor)?;
        Ok(Self(caller, PhantomData))
    }
}

impl<S: RouteScope + 'static> FromRequest for Service<S> {
    type Error = ApiError;
    /// Ready at once for a root key or a cached credential (introspection's
    /// hot path); a lookup or a refusal (counted, in Redis too) waits.
    type Future =
        Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = bearer(req).and_then(|key| {
            let state = state(req)?;
            let ip = state.limits.client_ip(req);
            state.limits.check_bearer(ip)?;
            Ok((state.credentials.authenticate(key), state, ip))
        });
        match checked {
            Ok((Authentication::Known(caller), state, _)) => {
                Either::Left(settled(req, Self::checked(&state, caller)))
            }
            Ok((other, state, ip)) => Either::Right(gated(req, async move {
                let caller = match other {
                    Authentication::Unsure(digest) => load_key(&state, ip, digest).await?,
                    Authentication::Refused(reason) => {
                        return Err(refuse_key(&state, ip, reason).await);
                    }
                    Authentication::NotAServiceKey | Authentication::Known(_) => {
                        return Err(refuse_key(&state, ip, credentials::UNKNOWN).await);
                    }
                };
                Self::checked(&state, caller)
            })),
            Err(e) => Either::Left(settled(req, Err(e))),
        }
    }
}

/// Whoever may administer a tenant with the scope `S`: a service (root key,
/// or a stored credential holding `S`) or a tenant admin (access token;
/// every tenant scope). A member's valid token gets 403.
pub struct AdminCaller<S>(pub AuditContext, pub PhantomData<S>);

impl<S: RouteScope + 'static> FromRequest for AdminCaller<S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let credential = bearer(req).map(str::to_owned);
        let state = state(req);
        let request_id = super::observe::request_id(req);
        let caller = req.clone();
        gated(req, async move {
            let req = caller;
            let (credential, state) = (credential?, state?);
            let ip = state.limits.client_ip(&req);
            state.limits.check_bearer(ip)?;
            let actor = match state.credentials.authenticate(&credential) {
                Authentication::Known(caller) => caller.actor,
                Authentication::Unsure(digest) => load_key(&state, ip, digest).await?.actor,
                Authentication::Refused(reason) => return Err(refuse_key(&state, ip, reason).await),
                Authentication::NotAServiceKey => {
                    let verified = verify_from(&state, ip, &credential).await?;
                    if verified.record.role != Role::Admin {
                        return Err(ApiError::Forbidden);
                    }
                    Actor::Admin {
                        user: verified.record.user_id,
                        tenant: verified.record.tenant_id,
                    }
                }
            };
            let actor = in_scope::<S>(&state, actor)?;
            Ok(AdminCaller(AuditContext { actor, request_id }, PhantomData))
        })
    }
}
