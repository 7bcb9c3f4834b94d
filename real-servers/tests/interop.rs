//! The engine against real servers, as an admin migrates: every admin form each server supports
//! (Dovecot: `user*admin` and SASL authzid; Cyrus: authzid; Courier: the admin with a UserRoot),
//! over STARTTLS and implicit TLS (and once in the clear), with the server's self-signed
//! certificate given as the CA file; into the in-process tenant and into a real Dovecot as IMAP
//! target; an initial sync, then an incremental one after new mail and flag changes; checked
//! message by message (bytes, flags, internal dates, folder mapping with nested and non-ASCII
//! names). Test-MigrationServerAvailability with the same credentials succeeds.

mod common;

use std::time::Duration;

use common::{Login, Migration, endpoint_settings, fixture_mail, new_mail};
use engine::control::status::UserStatus;
use engine::imap::{Authentication, Security};
use engine::test_server::{TestResult, test_server};
use real_servers::{Builder, Kind, RealServer, start_or_skip};

/// An admin form: how the CSV row logs in for `user`.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// LOGIN as `user*admin` (Dovecot's master user).
    MasterLogin,
    /// AUTHENTICATE PLAIN with authzid = user, authcid = admin.
    Authzid,
    /// The admin's own login, and `#shared.<user>` as UserRoot (Courier).
    UserRoot,
}

fn login(form: Form, user: &str) -> Login {
    match form {
        Form::MasterLogin => Login {
            user_name: format!("{user}*admin"),
            password: "adminpw".into(),
            user_root: None,
            authentication: Authentication::Basic,
        },
        Form::Authzid => Login {
            user_name: format!("{user}*admin"),
            password: "adminpw".into(),
            user_root: None,
            authentication: Authentication::Plain,
        },
        Form::UserRoot => Login {
            user_name: "admin".into(),
            password: "adminpw".into(),
            user_root: Some(format!("#shared.{user}")),
            authentication: Authentication::Basic,
        },
    }
}

/// (form, security) cells of a server, each with its own user `u<n>`.
fn cells(kind: Kind) -> Vec<(Form, Security)> {
    match kind {
        Kind::Dovecot => vec![
            (Form::MasterLogin, Security::Tls),
            (Form::MasterLogin, Security::Ssl),
            (Form::MasterLogin, Security::None),
            (Form::Authzid, Security::Tls),
            (Form::Authzid, Security::Ssl),
        ],
        Kind::Cyrus => vec![
            (Form::Authzid, Security::Tls),
            (Form::Authzid, Security::Ssl),
        ],
        Kind::Courier => vec![
            (Form::UserRoot, Security::Tls),
            (Form::UserRoot, Security::Ssl),
        ],
    }
}

fn with_users(mut b: Builder, n: usize) -> Builder {
    for i in 1..=n {
        b = b.user(&format!("u{i}"), &format!("pw{i}"));
    }
    b.admin("admin", "adminpw")
}

async fn interop(kind: Kind) {
    let cells = cells(kind);
    let builder = match kind {
        Kind::Dovecot => RealServer::dovecot(),
        Kind::Cyrus => RealServer::cyrus(),
        Kind::Courier => RealServer::courier(),
    };
    let Some(source) = start_or_skip(with_users(builder, cells.len())).await else {
        return;
    };
    let Some(target) = start_or_skip(with_users(RealServer::dovecot(), cells.len())).await else {
        return;
    };
    for (i, (form, security)) in cells.into_iter().enumerate() {
        let user = format!("u{}", i + 1);
        let what = format!("{kind} {form:?} {security:?}");
        source
            .seed(&user, &fixture_mail())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", source.log()));
        let port = match security {
            Security::Ssl => source.imaps_port(),
            _ => source.imap_port(),
        };
        let mut settings = endpoint_settings(port, security, Some(source.ca_file()));
        let login = login(form, &user);
        settings.authentication = login.authentication;
        let r = test_server(
            &settings,
            Some((&login.user_name, &login.password)),
            Duration::from_secs(10),
        )
        .await;
        let expected = if security == Security::None {
            TestResult::Warning // the password went in clear text
        } else {
            TestResult::Success
        };
        assert_eq!(r.result, expected, "{what}: test-server: {r:?}");
        let email = format!("{user}@contoso.edu");
        let into_tenant = Migration::new(settings.clone(), &login, &email, None);
        let into_dovecot = Migration::new(settings, &login, &email, Some(&target));
        for m in [&into_tenant, &into_dovecot] {
            m.batch(&login).await;
            m.run().await;
        }
        let before = source.mailbox(&user).await.unwrap();
        into_tenant
            .assert_exact(&format!("{what}, initial, into the tenant"), &before, None)
            .await;
        into_dovecot
            .assert_exact(
                &format!("{what}, initial, into Dovecot"),
                &before,
                Some(&target),
            )
            .await;
        // A day later: new mail, and flags changed on mail copied before.
        source.seed(&user, &new_mail()).await.unwrap();
        source
            .set_flags(&user, "INBOX", 0, &["\\Flagged", "$Later"])
            .await
            .unwrap();
        source.set_flags(&user, "Sent", 1, &[]).await.unwrap();
        for m in [&into_tenant, &into_dovecot] {
            m.incremental().await;
        }
        let after = source.mailbox(&user).await.unwrap();
        assert_eq!(after.len(), before.len() + 2);
        into_tenant
            .assert_exact(
                &format!("{what}, incremental, into the tenant"),
                &after,
                None,
            )
            .await;
        into_dovecot
            .assert_exact(
                &format!("{what}, incremental, into Dovecot"),
                &after,
                Some(&target),
            )
            .await;
        assert_eq!(into_tenant.user().last_sync_items, 2, "{what}");
    }
}

#[tokio::test]
async fn dovecot_every_admin_form_and_security_mode() {
    interop(Kind::Dovecot).await;
}

#[tokio::test]
async fn cyrus_admin_by_authzid() {
    interop(Kind::Cyrus).await;
}

#[tokio::test]
async fn courier_admin_with_a_user_root_copies_every_folder_inbox_included() {
    interop(Kind::Courier).await;
}

#[tokio::test]
async fn courier_a_user_root_that_matches_nothing_fails_the_user_naming_it() {
    let Some(source) = start_or_skip(with_users(RealServer::courier(), 1)).await else {
        return;
    };
    source.seed("u1", &fixture_mail()).await.unwrap();
    let settings = endpoint_settings(source.imap_port(), Security::Tls, Some(source.ca_file()));
    let login = Login {
        user_root: Some("#shared.nobody".into()),
        ..login(Form::UserRoot, "u1")
    };
    let m = Migration::new(settings, &login, "u1@contoso.edu", None);
    m.batch(&login).await;
    m.run().await;
    let u = m.user();
    assert_eq!(u.status, UserStatus::Failed);
    let e = u.error.unwrap();
    assert!(e.contains("\"#shared.nobody\""), "{e}");
    assert_eq!(u.items_synced, 0);
}

#[tokio::test]
async fn courier_ignores_an_authzid_so_the_engine_refuses_it() {
    let Some(source) = start_or_skip(with_users(RealServer::courier(), 1)).await else {
        return;
    };
    source.seed("u1", &fixture_mail()).await.unwrap();
    let mut settings = endpoint_settings(source.imap_port(), Security::Tls, Some(source.ca_file()));
    let login = login(Form::Authzid, "u1");
    settings.authentication = Authentication::Plain;
    let r = test_server(
        &settings,
        Some((&login.user_name, &login.password)),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.result, TestResult::Failed, "{r:?}");
    assert!(
        r.message
            .contains("Courier-IMAP, which ignores the authorization identity"),
        "{r:?}"
    );
    let m = Migration::new(settings, &login, "u1@contoso.edu", None);
    m.batch(&login).await;
    m.run().await;
    let u = m.user();
    assert_eq!(
        u.status,
        UserStatus::Failed,
        "never Synced with the admin's mailbox"
    );
    assert!(u.error.unwrap().contains("UserRoot"));
}
