//! The fake tenant's HTTP import, in process: any query string and body. Never a panic, never
//! a 5xx that is not one of the tenant's scripted faults, and one source key never makes two
//! items.
#![no_main]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use fake_target::{ManualClock, Recipient, Settings, Tenant};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let query: String = query
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '%' })
        .collect();
    rt.block_on(async {
        let tenant = Tenant::with_clock(
            Settings {
                accepted_domains: vec!["contoso.edu".into()],
                ..Settings::default()
            },
            Arc::new(ManualClock::at_epoch()),
        );
        tenant
            .add_recipient(Recipient::mailbox("t@contoso.edu", true, tenant.now()))
            .unwrap();
        let app = fake_target::http::router(tenant.clone(), "tok".into());
        for _ in 0..2 {
            let Ok(req) = Request::post(format!("/v1/users/t@contoso.edu/import?{query}"))
                .header("authorization", "Bearer tok")
                .header("content-type", "message/rfc822")
                .body(Body::from(body.to_vec()))
            else {
                return;
            };
            let resp = app.clone().oneshot(req).await.unwrap();
            assert!(resp.status().as_u16() < 500, "{}", resp.status());
        }
        let items = tenant.items("t@contoso.edu", None).unwrap();
        assert!(items.len() <= 1, "one source key, {} items", items.len());
    });
});
