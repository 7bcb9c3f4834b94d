//! The HTTP API as a client that knows nothing of our types sees it: status codes, headers and
//! JSON bodies over real HTTP.

use std::sync::Arc;

use fake_target::http::serve;
use fake_target::{ManualClock, Recipient, Settings, Tenant, TenantConfig};
use serde_json::Value;

async fn server(settings: Settings) -> (Tenant, fake_target::http::HttpServer) {
    let tenant = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.edu".into()],
            ..settings
        },
        Arc::new(ManualClock::at_epoch()),
    );
    tenant
        .add_recipient(Recipient::mailbox("terrya@contoso.edu", true, tenant.now()))
        .unwrap();
    let server = serve(tenant.clone(), "secret-token".into()).await.unwrap();
    (tenant, server)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn bearer_token_is_required() {
    let (_t, s) = server(Settings::default()).await;
    let url = format!("{}/v1/users", s.url());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    let wrong = client().get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let ok = client()
        .get(&url)
        .bearer_auth("secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let users: Value = ok.json().await.unwrap();
    assert_eq!(users[0]["address"], "terrya@contoso.edu");
    assert_eq!(users[0]["kind"], "userMailbox");
    assert_eq!(users[0]["licensed"], true);
    assert_eq!(users[0]["enabled"], true);
}

#[tokio::test]
async fn import_statuses_and_bodies() {
    let (tenant, s) = server(Settings {
        max_message_size: 64,
        messages_per_second: 2.0,
        ..Settings::default()
    })
    .await;
    let import = |addr: &str, key: &str, body: &'static [u8]| {
        client()
            .post(format!("{}/v1/users/{addr}/import", s.url()))
            .query(&[
                ("folder", "Inbox"),
                ("sourceKey", key),
                ("receivedTime", "2020-01-02T03:04:05Z"),
                ("flags", "\\Seen,\\Flagged"),
            ])
            .header("content-type", "message/rfc822")
            .bearer_auth("secret-token")
            .body(body)
            .send()
    };
    let created = import("terrya@contoso.edu", "k1", b"Subject: a\r\n\r\nhi\r\n")
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = import("terrya@contoso.edu", "k1", b"Subject: a\r\n\r\nhi\r\n")
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let body: Value = again.json().await.unwrap();
    assert_eq!(
        (body["id"].as_str(), body["alreadyPresent"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    assert_eq!(
        import("nobody@contoso.edu", "k", b"x")
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        import("terrya@contoso.edu", "big", &[b'x'; 65])
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        import("terrya@contoso.edu", "k2", b"x")
            .await
            .unwrap()
            .status(),
        201
    );
    let throttled = import("terrya@contoso.edu", "k3", b"x").await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert_eq!(throttled.headers()["retry-after-ms"], "500");
    tenant.set_enabled("terrya@contoso.edu", false).unwrap();
    assert_eq!(
        import("terrya@contoso.edu", "k4", b"x")
            .await
            .unwrap()
            .status(),
        403
    );
    tenant.set_enabled("terrya@contoso.edu", true).unwrap();

    // Listing and reading back.
    let list: Value = client()
        .get(format!("{}/v1/users/terrya@contoso.edu/messages", s.url()))
        .query(&[("folder", "Inbox")])
        .bearer_auth("secret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["sourceKey"], "k1");
    assert_eq!(list[0]["folder"], "Inbox");
    assert_eq!(list[0]["receivedTime"], "2020-01-02T03:04:05Z");
    assert_eq!(list[0]["flags"], serde_json::json!(["\\Seen", "\\Flagged"]));
    assert_eq!(list[0]["size"], 18);
    let raw = client()
        .get(format!(
            "{}/v1/users/terrya@contoso.edu/messages/{id}/$value",
            s.url()
        ))
        .bearer_auth("secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    assert_eq!(&raw.bytes().await.unwrap()[..], b"Subject: a\r\n\r\nhi\r\n");
    let folders: Value = client()
        .get(format!(
            "{}/v1/users/terrya@contoso.edu/mailFolders",
            s.url()
        ))
        .bearer_auth("secret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inbox = folders
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "Inbox")
        .unwrap();
    assert_eq!(
        (inbox["wellKnownName"].as_str(), inbox["itemCount"].as_u64()),
        (Some("inbox"), Some(2))
    );
    let missing = client()
        .get(format!(
            "{}/v1/users/nobody@contoso.edu/mailFolders",
            s.url()
        ))
        .bearer_auth("secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn quota_and_transient_statuses() {
    let (tenant, s) = server(Settings {
        transient_error_rate: 1.0,
        ..Settings::default()
    })
    .await;
    let post = || {
        client()
            .post(format!("{}/v1/users/terrya@contoso.edu/import", s.url()))
            .query(&[("folder", "Inbox"), ("sourceKey", "k")])
            .bearer_auth("secret-token")
            .body("x")
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 503);
    drop(tenant);
    let (tenant, s) = server(Settings::default()).await;
    tenant.set_quota("terrya@contoso.edu", Some(0)).unwrap();
    let resp = client()
        .post(format!("{}/v1/users/terrya@contoso.edu/import", s.url()))
        .query(&[("folder", "Inbox"), ("sourceKey", "k")])
        .bearer_auth("secret-token")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 507);
}

/// The configuration of the issue, as written.
#[test]
fn the_issue_config_works_as_written() {
    let config = TenantConfig::from_toml(
        r#"
[tenant]
accepted_domains = ["contoso.edu"]
max_message_size = 36700160
token = "secret-token"        # generated and printed when absent

[throttle]                    # optional; absent or 0 = off
messages_per_second = 2

[[mailboxes]]
address = "terrya@contoso.edu"
licensed = true
"#,
    )
    .unwrap();
    let tenant = Tenant::from_config(&config, Arc::new(ManualClock::at_epoch())).unwrap();
    assert_eq!(tenant.settings().messages_per_second, 2.0);
    assert_eq!(tenant.recipients()[0].address, "terrya@contoso.edu");
    let bad = TenantConfig::from_toml(
        "[tenant]\naccepted_domains = [\"contoso.edu\"]\n[[mailboxes]]\naddress = \"x@fabrikam.com\"\n",
    )
    .unwrap();
    let err = Tenant::from_config(&bad, Arc::new(ManualClock::at_epoch())).unwrap_err();
    assert!(
        err.to_string().contains("mailboxes[0] (x@fabrikam.com)"),
        "{err}"
    );
    let typo = TenantConfig::from_toml("[tenant]\naccepted_domain = []\n").unwrap_err();
    assert!(typo.to_string().contains("accepted_domain"), "{typo}");
}

#[tokio::test]
async fn hostile_requests_are_refused_cleanly() {
    let (tenant, s) = server(Settings::default()).await;
    // The auth scheme is case-insensitive.
    let lower = client()
        .get(format!("{}/v1/users", s.url()))
        .header("authorization", "bearer secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    // Two source keys that differ only in invalid UTF-8 must not collide: both are refused.
    for key in ["%FE", "%FF"] {
        let r = client()
            .post(format!(
                "{}/v1/users/terrya@contoso.edu/import?folder=Inbox&sourceKey=k{key}",
                s.url()
            ))
            .header("content-type", "message/rfc822")
            .bearer_auth("secret-token")
            .body("Subject: x\r\n\r\nbody\r\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{key}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("sourceKey")
        );
    }
    // Folder names that are not names.
    for folder in ["..", "Inbox/../x", "a%00b", "line%0Abreak"] {
        let r = client()
            .post(format!(
                "{}/v1/users/terrya@contoso.edu/mailFolders?path={folder}",
                s.url()
            ))
            .bearer_auth("secret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{folder}: {}", r.text().await.unwrap());
    }
    assert!(tenant.items("terrya@contoso.edu", None).unwrap().is_empty());
}

#[tokio::test]
async fn a_half_sent_request_is_dropped_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tenant = Tenant::with_clock(Settings::default(), Arc::new(ManualClock::at_epoch()));
    let s =
        fake_target::http::serve_with(tenant, "t".into(), std::time::Duration::from_millis(300))
            .await
            .unwrap();
    let addr = s.url().trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /v1/users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    // Closed (or reset) well before the client's own limit.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // An idle connection that sends nothing is closed too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut one = [0u8; 1];
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), idle.read(&mut one)).await;
    assert!(r.is_ok(), "an idle connection is not held");
}
