//! The HTTP face of a tenant: an axum server over one [`Tenant`], and a reqwest client that
//! implements [`TenantApi`] like the in-process handle. Every route needs
//! `Authorization: Bearer <token>` (401 otherwise). The routes are described in
//! `fake-target/openapi.yaml`.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;

use crate::api::TenantApi;
use crate::error::Error;
use crate::model::{
    DirectoryEntry, DirectoryLinks, DirectoryObject, DirectoryRefusal, FlagUpdate, FolderInfo,
    ImportOutcome, ImportRequest, ItemFlags, ItemInfo, ItemKind, OrganizationInfo,
    ProvisionOutcome, RecipientInfo, Rejection,
};
use crate::tenant::Tenant;

#[derive(Clone)]
struct AppState {
    tenant: Tenant,
    token: String,
}

/// Passes only requests with the right bearer token.
struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 11.1): `bearer` works as `Bearer`.
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
            .map(|(_, token)| token.trim());
        // Constant-time enough for a fake: compare whole strings, never log the token.
        if given == Some(state.token.as_str()) {
            Ok(Authorized)
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or wrong bearer token.",
            ))
        }
    }
}

/// Query parameters, refused with 400 when a value is not valid UTF-8 once percent-decoded (a
/// lossy decoding would make `%FE` and `%FF` the same source key).
struct StrictQuery<T>(T);

/// The first query parameter whose decoded bytes are not UTF-8.
fn invalid_utf8_parameter(query: &str) -> Option<String> {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let mut bytes = Vec::with_capacity(value.len());
        let raw = value.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'+' => bytes.push(b' '),
                b'%' if i + 2 < raw.len() => {
                    let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            bytes.push(b);
                            i += 2;
                        }
                        None => bytes.push(b'%'),
                    }
                }
                b => bytes.push(b),
            }
            i += 1;
        }
        if String::from_utf8(bytes).is_err() {
            return Some(name.to_string());
        }
    }
    None
}

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        if let Some(name) = invalid_utf8_parameter(parts.uri.query().unwrap_or("")) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalidQuery",
                &format!("The query parameter {name} is not valid UTF-8 once decoded."),
            ));
        }
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| StrictQuery(t))
            .map_err(|e| error(StatusCode::BAD_REQUEST, "invalidQuery", &e.body_text()))
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn api_error(e: Error) -> Response {
    match e {
        Error::Directory(refusal) => {
            let status = match refusal {
                DirectoryRefusal::NoSuchObject { .. } => StatusCode::NOT_FOUND,
                DirectoryRefusal::TooManyMembers { .. } | DirectoryRefusal::NotAGroup { .. } => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::CONFLICT,
            };
            (
                status,
                axum::Json(json!({
                    "error": {"code": "directoryRefusal", "message": refusal.message()},
                    "refusal": refusal,
                })),
            )
                .into_response()
        }
        Error::Invalid(message) => error(StatusCode::BAD_REQUEST, "invalid", &message),
        Error::NoSuchRecipient(a) => error(
            StatusCode::NOT_FOUND,
            "recipientNotFound",
            &Rejection::NoSuchRecipient.message(&a),
        ),
        Error::NoSuchItem(id) => error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("No item {id}."),
        ),
        Error::NoSuchFolder(f) => error(
            StatusCode::NOT_FOUND,
            "folderNotFound",
            &format!("No folder {f}."),
        ),
        Error::InvalidFolder(p, m) => error(
            StatusCode::BAD_REQUEST,
            "invalidFolder",
            &format!("{p}: {m}"),
        ),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &other.to_string(),
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportQuery {
    folder: String,
    #[serde(default)]
    kind: ItemKind,
    source_key: String,
    received_time: Option<DateTime<Utc>>,
    flags: Option<String>,
}

#[derive(Deserialize)]
struct FolderQuery {
    folder: Option<String>,
}

#[derive(Deserialize)]
struct PathQuery {
    path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlagsQuery {
    source_key: String,
    flags: Option<String>,
}

fn split_flags(flags: Option<&str>) -> ItemFlags {
    let list: Vec<&str> = flags
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    ItemFlags::from_imap(&list)
}

async fn users(_: Authorized, State(s): State<AppState>) -> Response {
    axum::Json(s.tenant.recipients()).into_response()
}

async fn folders(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Response {
    match s.tenant.folders(&address) {
        Ok(f) => axum::Json(f).into_response(),
        Err(e) => api_error(e),
    }
}

async fn create_folder(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    StrictQuery(q): StrictQuery<PathQuery>,
) -> Response {
    match s.tenant.create_folder(&address, &q.path) {
        Ok(path) => (StatusCode::CREATED, axum::Json(json!({"path": path}))).into_response(),
        Err(e) => api_error(e),
    }
}

async fn import(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    StrictQuery(q): StrictQuery<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max = s.tenant.settings().max_message_size;
    let too_large = |size: u64| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "messageTooLarge",
            &Rejection::TooLarge { size, max }.message(&address),
        )
    };
    // Refuse by the announced length before reading anything.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = announced
        && len > max
    {
        return too_large(len);
    }
    let mime = match axum::body::to_bytes(body, max as usize).await {
        Ok(b) => b,
        Err(_) => return too_large(announced.unwrap_or(max + 1)),
    };
    let request = ImportRequest {
        kind: q.kind,
        folder: q.folder,
        source_key: q.source_key,
        received_time: q.received_time,
        flags: split_flags(q.flags.as_deref()),
    };
    match s.tenant.import(&address, &request, mime).await {
        Err(e) => api_error(e),
        Ok(outcome) => outcome_response(&address, outcome),
    }
}

fn outcome_response(address: &str, outcome: ImportOutcome) -> Response {
    match outcome {
        ImportOutcome::Created(id) => {
            (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
        }
        ImportOutcome::AlreadyPresent(id) => {
            axum::Json(json!({"id": id, "alreadyPresent": true})).into_response()
        }
        ImportOutcome::Throttled(wait) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                &format!(
                    "Request is throttled. Suggested Backoff Time: {} milliseconds",
                    wait.as_millis()
                ),
            );
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            r.headers_mut().insert(
                "retry-after-ms",
                HeaderValue::from(wait.as_millis().max(1) as u64),
            );
            r
        }
        ImportOutcome::Transient(m) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "serviceUnavailable", &m)
        }
        ImportOutcome::Rejected(rejection) => {
            let (status, code) = match &rejection {
                Rejection::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "messageTooLarge"),
                Rejection::QuotaExceeded => (StatusCode::INSUFFICIENT_STORAGE, "quotaExceeded"),
                Rejection::MailboxDisabled => (StatusCode::FORBIDDEN, "mailboxDisabled"),
                Rejection::NoSuchRecipient => (StatusCode::NOT_FOUND, "recipientNotFound"),
                Rejection::InvalidFolder { .. } => (StatusCode::BAD_REQUEST, "invalidFolder"),
            };
            error(status, code, &rejection.message(address))
        }
    }
}

async fn update_flags(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    StrictQuery(q): StrictQuery<FlagsQuery>,
) -> Response {
    match s
        .tenant
        .update_flags(&address, &q.source_key, &split_flags(q.flags.as_deref()))
    {
        Ok(FlagUpdate::NotFound) => error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("No item was imported with source key {}.", q.source_key),
        ),
        Ok(u) => axum::Json(json!({"changed": u == FlagUpdate::Updated})).into_response(),
        Err(e) => api_error(e),
    }
}

async fn messages(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    StrictQuery(q): StrictQuery<FolderQuery>,
) -> Response {
    match s.tenant.items(&address, q.folder.as_deref()) {
        Ok(items) => axum::Json(items).into_response(),
        Err(e) => api_error(e),
    }
}

async fn message_value(
    _: Authorized,
    State(s): State<AppState>,
    Path((address, id)): Path<(String, String)>,
) -> Response {
    match s.tenant.item_bytes(&address, &id) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response(),
        Err(e) => api_error(e),
    }
}

async fn organization(_: Authorized, State(s): State<AppState>) -> Response {
    axum::Json(s.tenant.organization()).into_response()
}

async fn provision(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    body: Result<axum::Json<DirectoryObject>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let object = match body {
        Ok(axum::Json(o)) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalidBody", &e.body_text()),
    };
    if !object.address.eq_ignore_ascii_case(&address) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalidBody",
            &format!(
                "The body's address {} is not the path's {address}.",
                object.address
            ),
        );
    }
    match s.tenant.provision(&object) {
        Ok(outcome @ ProvisionOutcome::Created { .. }) => {
            (StatusCode::CREATED, axum::Json(outcome)).into_response()
        }
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(e) => api_error(e),
    }
}

async fn directory_entry(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Response {
    match s.tenant.directory_entry(&address) {
        Some(entry) => axum::Json(entry).into_response(),
        None => api_error(Error::NoSuchRecipient(address)),
    }
}

async fn set_links(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    body: Result<axum::Json<DirectoryLinks>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let links = match body {
        Ok(axum::Json(l)) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalidBody", &e.body_text()),
    };
    match s.tenant.set_links(&address, &links) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => api_error(e),
    }
}

#[derive(Deserialize, Serialize)]
struct MembersBody {
    members: Vec<String>,
}

async fn add_members(
    _: Authorized,
    State(s): State<AppState>,
    Path(address): Path<String>,
    body: Result<axum::Json<MembersBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let members = match body {
        Ok(axum::Json(m)) => m.members,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalidBody", &e.body_text()),
    };
    match s.tenant.add_members(&address, &members) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => api_error(e),
    }
}

/// The API as an axum router (what [`serve`] serves; in-process callers and fuzzing drive it
/// directly).
pub fn router(tenant: Tenant, token: String) -> Router {
    Router::new()
        .route("/v1/users", get(users))
        .route(
            "/v1/users/{address}/mailFolders",
            get(folders).post(create_folder),
        )
        .route("/v1/users/{address}/import", post(import))
        .route("/v1/users/{address}/messages", get(messages))
        .route("/v1/users/{address}/messages/flags", patch(update_flags))
        .route(
            "/v1/users/{address}/messages/{id}/$value",
            get(message_value),
        )
        .route("/v1/organization", get(organization))
        .route(
            "/v1/directory/{address}",
            get(directory_entry).put(provision),
        )
        .route("/v1/directory/{address}/links", put(set_links))
        .route("/v1/directory/{address}/members", post(add_members))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(AppState { tenant, token })
}

/// A running HTTP face. Dropping it stops the server.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl HttpServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A random bearer token (128 bits, hex).
pub fn generate_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a client may take to send a request's headers, and how long a connection may sit
/// idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest any one connection lives (a body sent a byte a minute ends here).
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(600);

/// Serves `tenant` on 127.0.0.1 at a port the OS picks.
pub async fn serve(tenant: Tenant, token: String) -> Result<HttpServer, Error> {
    serve_with(tenant, token, HEADER_TIMEOUT).await
}

/// [`serve`] with another header timeout (tests use a short one).
pub async fn serve_with(
    tenant: Tenant,
    token: String,
    header_timeout: Duration,
) -> Result<HttpServer, Error> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let app = router(tenant, token);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let app = app.clone();
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout);
                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                let _ = tokio::time::timeout(CONNECTION_LIMIT, conn).await;
            });
        }
    });
    Ok(HttpServer {
        addr,
        stop: Some(stop),
    })
}

/// A tenant reached over HTTP.
#[derive(Clone, Debug)]
pub struct HttpTenant {
    base: String,
    token: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
    #[serde(default)]
    refusal: Option<DirectoryRefusal>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct IdBody {
    id: String,
    #[serde(default)]
    already_present: bool,
}

impl HttpTenant {
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn url(&self, address: &str, rest: &str) -> String {
        // Addresses carry only '@' and '.', which are fine in a path segment.
        format!("{}/v1/users/{address}{rest}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        req.bearer_auth(&self.token).send().await.map_err(|e| {
            // The whole chain ("error sending request" alone says nothing), and where.
            let e = e.without_url();
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            Error::Transport(format!("{} ({text})", self.base))
        })
    }

    async fn fail(resp: reqwest::Response, address: &str) -> Error {
        let status = resp.status().as_u16();
        let body = resp.json::<ErrorBody>().await.ok();
        match (status, body) {
            (401, _) => Error::Unauthorized,
            (
                _,
                Some(ErrorBody {
                    refusal: Some(r), ..
                }),
            ) => Error::Directory(r),
            (400, Some(b)) if b.error.code == "invalid" => Error::Invalid(b.error.message),
            (404, Some(b)) if b.error.code == "recipientNotFound" => {
                Error::NoSuchRecipient(address.to_string())
            }
            (404, Some(b)) if b.error.code == "itemNotFound" => Error::NoSuchItem(b.error.message),
            (400, Some(b)) if b.error.code == "invalidFolder" => {
                Error::InvalidFolder(String::new(), b.error.message)
            }
            (_, Some(b)) => Error::Http {
                status,
                message: b.error.message,
            },
            (_, None) => Error::Http {
                status,
                message: "no error body".into(),
            },
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        address: &str,
    ) -> Result<T, Error> {
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(Self::fail(resp, address).await);
        }
        resp.json::<T>()
            .await
            .map_err(|e| Error::Transport(format!("bad response body: {e}")))
    }
}

#[async_trait]
impl TenantApi for HttpTenant {
    async fn users(&self) -> Result<Vec<RecipientInfo>, Error> {
        let url = format!("{}/v1/users", self.base);
        self.json(self.client.get(url), "").await
    }

    async fn create_folder(&self, address: &str, path: &str) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct Created {
            path: String,
        }
        let req = self
            .client
            .post(self.url(address, "/mailFolders"))
            .query(&[("path", path)]);
        Ok(self.json::<Created>(req, address).await?.path)
    }

    async fn folders(&self, address: &str) -> Result<Vec<FolderInfo>, Error> {
        self.json(self.client.get(self.url(address, "/mailFolders")), address)
            .await
    }

    async fn import(
        &self,
        address: &str,
        request: &ImportRequest,
        mime: Bytes,
    ) -> Result<ImportOutcome, Error> {
        let mut query = vec![
            ("folder", request.folder.clone()),
            ("kind", request.kind.name().to_string()),
            ("sourceKey", request.source_key.clone()),
            ("flags", request.flags.to_imap().join(",")),
        ];
        if let Some(t) = request.received_time {
            query.push(("receivedTime", t.to_rfc3339()));
        }
        let req = self
            .client
            .post(self.url(address, "/import"))
            .query(&query)
            .header(header::CONTENT_TYPE, "message/rfc822")
            .body(mime);
        let resp = match self.send(req).await {
            Ok(r) => r,
            // The request may or may not have landed; a retry is safe (idempotent import).
            Err(Error::Transport(m)) => return Ok(ImportOutcome::Transient(m)),
            Err(e) => return Err(e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .or_else(|| {
                resp.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs)
            });
        let body = resp.bytes().await.unwrap_or_default();
        let message = || {
            serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error.message)
                .unwrap_or_default()
        };
        Ok(match status {
            200 | 201 => {
                let id: IdBody = serde_json::from_slice(&body)
                    .map_err(|e| Error::Transport(format!("bad import response: {e}")))?;
                if id.already_present || status == 200 {
                    ImportOutcome::AlreadyPresent(id.id)
                } else {
                    ImportOutcome::Created(id.id)
                }
            }
            401 => return Err(Error::Unauthorized),
            403 => ImportOutcome::Rejected(Rejection::MailboxDisabled),
            404 => ImportOutcome::Rejected(Rejection::NoSuchRecipient),
            400 => ImportOutcome::Rejected(Rejection::InvalidFolder { message: message() }),
            413 => {
                let (size, max) = sizes(&message());
                ImportOutcome::Rejected(Rejection::TooLarge { size, max })
            }
            429 => ImportOutcome::Throttled(retry_after.unwrap_or(Duration::from_secs(1))),
            507 => ImportOutcome::Rejected(Rejection::QuotaExceeded),
            s if s >= 500 => ImportOutcome::Transient(message()),
            s => {
                return Err(Error::Http {
                    status: s,
                    message: message(),
                });
            }
        })
    }

    async fn update_flags(
        &self,
        address: &str,
        source_key: &str,
        flags: &ItemFlags,
    ) -> Result<FlagUpdate, Error> {
        #[derive(Deserialize)]
        struct Changed {
            changed: bool,
        }
        let req = self
            .client
            .patch(self.url(address, "/messages/flags"))
            .query(&[
                ("sourceKey", source_key.to_string()),
                ("flags", flags.to_imap().join(",")),
            ]);
        match self.json::<Changed>(req, address).await {
            Ok(c) if c.changed => Ok(FlagUpdate::Updated),
            Ok(_) => Ok(FlagUpdate::Unchanged),
            Err(Error::NoSuchItem(_)) => Ok(FlagUpdate::NotFound),
            Err(e) => Err(e),
        }
    }

    async fn items(&self, address: &str, folder: Option<&str>) -> Result<Vec<ItemInfo>, Error> {
        let mut req = self.client.get(self.url(address, "/messages"));
        if let Some(f) = folder {
            req = req.query(&[("folder", f)]);
        }
        self.json(req, address).await
    }

    async fn item_bytes(&self, address: &str, id: &str) -> Result<Bytes, Error> {
        let resp = self
            .send(
                self.client
                    .get(self.url(address, &format!("/messages/{id}/$value"))),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(Self::fail(resp, address).await);
        }
        resp.bytes()
            .await
            .map_err(|e| Error::Transport(e.without_url().to_string()))
    }

    async fn organization(&self) -> Result<OrganizationInfo, Error> {
        let url = format!("{}/v1/organization", self.base);
        self.json(self.client.get(url), "").await
    }

    async fn provision(&self, object: &DirectoryObject) -> Result<ProvisionOutcome, Error> {
        let req = self
            .client
            .put(self.directory_url(&object.address, ""))
            .json(object);
        self.json(req, &object.address).await
    }

    async fn set_links(&self, address: &str, links: &DirectoryLinks) -> Result<(), Error> {
        let req = self
            .client
            .put(self.directory_url(address, "/links"))
            .json(links);
        self.no_content(req, address).await
    }

    async fn add_members(&self, group: &str, members: &[String]) -> Result<(), Error> {
        let req = self
            .client
            .post(self.directory_url(group, "/members"))
            .json(&MembersBody {
                members: members.to_vec(),
            });
        self.no_content(req, group).await
    }

    async fn directory_entry(&self, address: &str) -> Result<Option<DirectoryEntry>, Error> {
        match self
            .json(self.client.get(self.directory_url(address, "")), address)
            .await
        {
            Ok(entry) => Ok(Some(entry)),
            Err(Error::NoSuchRecipient(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl HttpTenant {
    fn directory_url(&self, address: &str, rest: &str) -> String {
        format!("{}/v1/directory/{address}{rest}", self.base)
    }

    async fn no_content(&self, req: reqwest::RequestBuilder, address: &str) -> Result<(), Error> {
        let resp = self.send(req).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::fail(resp, address).await)
        }
    }
}

/// Reads the sizes back out of "The message is N bytes, over the limit of M bytes.".
fn sizes(message: &str) -> (u64, u64) {
    let mut numbers = message
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(
            super::invalid_utf8_parameter("sourceKey=a%20b&folder=Inbox"),
            None
        );
        assert_eq!(
            super::invalid_utf8_parameter("folder=Inbox&sourceKey=k%FE"),
            Some("sourceKey".into())
        );
        assert_eq!(super::invalid_utf8_parameter("sourceKey=%C3%A9"), None);
    }
}
