//! What the data plane does with limits, folders, admin forms, security modes, target kinds,
//! and every source fault of server-quirks.md: retried, skipped with its reason, or the user
//! Failed with a message, and in every case nothing lost or duplicated.

mod common;

use std::time::Duration;

use common::{target_folder, world, world_with};
use engine::control::state::BatchSettings;
use engine::control::status::UserStatus;
use engine::imap::Security;
use fake_imap::{AdminMode, FakeImapServer, Fault, FaultAction, Quirks};
use fake_target::Settings;

const TERRY: &str = "EmailAddress,UserName,Password\nterry@contoso.edu,terry,pw\n";

fn terry(n: usize) -> FakeImapServer {
    FakeImapServer::new()
        .seed(17)
        .user("terry", "pw")
        .generated("terry", "INBOX", n)
}

#[tokio::test]
async fn large_items_are_skipped_by_their_announced_size() {
    // The message is small, but the server announces it as huge: it is skipped without being
    // downloaded, because the decision is made from RFC822.SIZE.
    let mut w = world(
        terry(5).fault(Fault::new(FaultAction::WrongSize).delta(50_000_000)),
        &["terry"],
    )
    .await;
    w.options.max_message_size = 36_700_160;
    w.batch(TERRY).await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(
        (u.status, u.items_synced, u.items_skipped),
        (UserStatus::Synced, 0, 5)
    );
    assert!(
        w.skipped("terry@contoso.edu")
            .iter()
            .all(|(_, _, r)| r == "LargeItem")
    );
}

#[tokio::test]
async fn the_item_cap_keeps_the_newest() {
    let mut w = world(terry(12), &["terry"]).await;
    w.options.item_cap = 5;
    w.batch(TERRY).await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!((u.items_synced, u.items_skipped), (5, 7));
    // Generated mail is one day apart by UID: the newest are UIDs 8..=12.
    let mut skipped: Vec<String> = w
        .skipped("terry@contoso.edu")
        .into_iter()
        .map(|(_, i, r)| {
            assert_eq!(r, "ItemCap");
            i
        })
        .collect();
    skipped.sort();
    let mut want: Vec<String> = (1..=7).map(|u| format!("UID {u}")).collect();
    want.sort();
    assert_eq!(skipped, want);
}

#[tokio::test]
async fn slash_folders_and_excluded_folders_are_skipped_and_reported() {
    let w = world(
        FakeImapServer::new()
            .delimiter('.')
            .seed(3)
            .user("terry", "pw")
            .generated("terry", "INBOX", 2)
            .generated("terry", "INBOX.Projects/2019", 2)
            .generated("terry", "INBOX.Keep", 2)
            .generated("terry", "Junk", 3)
            .generated("terry", "Archive.Old", 2)
            .generated("terry", "Archive.Old.Deeper", 2),
        &["terry"],
    )
    .await;
    let settings = BatchSettings {
        exclude_folders: vec!["Junk".into(), "Archive/*".into()],
        ..BatchSettings::default()
    };
    w.batch_with(TERRY, settings).await;
    w.run().await;
    let skipped = w.skipped("terry@contoso.edu");
    let reason = |f: &str| {
        skipped
            .iter()
            .find(|(x, _, _)| x == f)
            .map(|(_, _, r)| r.clone())
    };
    assert_eq!(reason("INBOX.Projects/2019").as_deref(), Some("FolderName"));
    assert_eq!(reason("Junk").as_deref(), Some("Excluded"));
    assert_eq!(reason("Archive.Old").as_deref(), Some("Excluded"));
    assert_eq!(reason("Archive.Old.Deeper").as_deref(), Some("Excluded"));
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(
        (u.status, u.items_synced, u.items_skipped),
        (UserStatus::Synced, 4, 0),
        "folder skips are not item skips"
    );
    let folders: Vec<String> = w
        .tenant
        .items("terry@contoso.edu", None)
        .unwrap()
        .into_iter()
        .map(|i| i.folder)
        .collect();
    assert!(
        folders.iter().all(|f| f == "Inbox" || f == "Inbox/Keep"),
        "{folders:?}"
    );
}

async fn admin_mode(mode: AdminMode, user_name: &str, user_root: Option<&str>) {
    let mut s = FakeImapServer::new()
        .mode(mode)
        .seed(8)
        .admin("mailadmin", "P@ssw0rd")
        .user_in_domain("terry", "pw", Some("contoso-students"))
        .generated("terry", "INBOX", 6)
        .generated("terry", "Sent", 2);
    if mode == AdminMode::Courier {
        s = s.shared_root("/users");
    }
    let w = world(s, &["terry"]).await;
    let csv = match user_root {
        Some(root) => format!(
            "EmailAddress,UserName,Password,UserRoot\nterry@contoso.edu,{user_name},P@ssw0rd,{root}\n"
        ),
        None => {
            format!("EmailAddress,UserName,Password\nterry@contoso.edu,\"{user_name}\",P@ssw0rd\n")
        }
    };
    w.batch(&csv).await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(
        (u.status, u.items_synced),
        (UserStatus::Synced, 8),
        "{mode:?}: {:?}",
        u.error
    );
    w.exact("terry").await;
}

#[tokio::test]
async fn every_admin_login_form() {
    admin_mode(AdminMode::Dovecot, "terry*mailadmin", None).await;
    admin_mode(
        AdminMode::Exchange,
        "contoso-students/mailadmin/terry",
        None,
    )
    .await;
    admin_mode(
        AdminMode::Mirapoint,
        "#terry@contoso-students#mailadmin#",
        None,
    )
    .await;
    admin_mode(AdminMode::Courier, "mailadmin", Some("/users/terry")).await;
}

#[tokio::test]
async fn sasl_plain_with_an_authorization_identity() {
    let s = FakeImapServer::new()
        .mode(AdminMode::Dovecot)
        .master_separator('%')
        .seed(8)
        .admin("mailadmin", "P@ssw0rd")
        .user("terry", "pw")
        .generated("terry", "INBOX", 5)
        // LOGIN is refused outright here: only AUTHENTICATE PLAIN gets in.
        .fault(Fault::new(FaultAction::Bye).command("LOGIN"));
    let w = world(s, &["terry"]).await;
    w.set_endpoint(|e| {
        e.imap_settings_mut().unwrap().authentication = engine::imap::Authentication::Plain;
        e.imap_settings_mut().unwrap().master_separator = '%';
    });
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry%mailadmin,P@ssw0rd\n")
        .await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(
        (u.status, u.items_synced),
        (UserStatus::Synced, 5),
        "{:?}",
        u.error
    );
    w.exact("terry").await;
}

#[tokio::test]
async fn every_security_mode() {
    for security in [Security::Ssl, Security::Tls] {
        let w = world(terry(4).implicit_tls(true), &["terry"]).await;
        let ca = w.dir.path().join("ca.pem");
        std::fs::write(&ca, w.source.ca_pem()).unwrap();
        let port = match security {
            Security::Ssl => w.source.imaps_addr().unwrap().port(),
            _ => w.source.imap_addr().port(),
        };
        w.set_endpoint(|e| {
            e.imap_settings_mut().unwrap().security = security;
            e.imap_settings_mut().unwrap().port = port;
            e.imap_settings_mut().unwrap().ca_file = Some(ca.clone());
        });
        w.batch(TERRY).await;
        w.run().await;
        let u = w.engine.user("terry@contoso.edu").unwrap();
        assert_eq!(
            (u.status, u.items_synced),
            (UserStatus::Synced, 4),
            "{security:?}: {:?}",
            u.error
        );
        w.exact("terry").await;
    }
}

#[tokio::test]
async fn an_untrusted_source_certificate_fails_the_user() {
    let w = world(terry(1).implicit_tls(true), &["terry"]).await;
    let port = w.source.imaps_addr().unwrap().port();
    w.set_endpoint(|e| {
        e.imap_settings_mut().unwrap().security = Security::Ssl;
        e.imap_settings_mut().unwrap().port = port;
    });
    let mut w = w;
    w.options.error_budget = 1;
    w.batch(TERRY).await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Failed);
    assert!(
        u.error.unwrap().contains("TLS"),
        "the error names the TLS failure"
    );
}

#[tokio::test]
async fn into_the_http_target() {
    let w = world_with(terry(20), &["terry"], Settings::default(), true).await;
    w.batch(TERRY).await;
    w.run().await;
    assert_eq!(w.engine.user("terry@contoso.edu").unwrap().items_synced, 20);
    w.exact("terry").await;
}

#[tokio::test]
async fn wrong_password_fails_with_exchanges_message() {
    let w = world(terry(1), &["terry"]).await;
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry,nope\n")
        .await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Failed);
    assert_eq!(u.error.unwrap(), engine::imap::SIGN_IN_FAILED);
}

/// Runs one fault scenario to the end and checks the target against the source.
async fn survives(server: FakeImapServer, check_exact: bool) -> common::World {
    let mut w = world(server, &["terry"]).await;
    w.options.error_budget = 20;
    w.batch(TERRY).await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Synced, "{:?}", u.error);
    if check_exact {
        w.exact("terry").await;
    }
    w
}

#[tokio::test]
async fn exchange_throttling_with_disconnects_is_waited_out() {
    let f = Fault::new(FaultAction::Throttle)
        .command("UID FETCH")
        .times(2)
        .backoff_ms(30)
        .hold_ms(30)
        .disconnect();
    survives(terry(30).fault(f), true).await;
}

#[tokio::test]
async fn gmail_throttling_is_waited_out() {
    let f = Fault::new(FaultAction::ThrottleGmail)
        .command("EXAMINE")
        .times(2)
        .hold_ms(20);
    survives(terry(10).fault(f), true).await;
}

#[tokio::test]
async fn bye_after_some_commands_reconnects() {
    let f = Fault::new(FaultAction::Bye).after_commands(4).times(3);
    survives(terry(25).fault(f), true).await;
}

#[tokio::test]
async fn bye_after_ten_errors_reconnects() {
    let f = Fault::new(FaultAction::FetchNo).uids(&[3]);
    let quirks = Quirks {
        bye_after_errors: Some(2),
        ..Quirks::default()
    };
    let w = survives(terry(8).fault(f).quirks(quirks), false).await;
    let r = w.reconcile_with("terry", target_folder).await;
    assert_eq!(
        r.missing,
        vec!["INBOX UID 3"],
        "only the broken message is missing"
    );
    assert!(r.duplicated.is_empty());
}

#[tokio::test]
async fn a_connection_dropped_mid_literal_is_resumed() {
    let f = Fault::new(FaultAction::DropMidLiteral)
        .command("UID FETCH")
        .after_commands(4)
        .times(2);
    survives(terry(15).fault(f), true).await;
}

#[tokio::test]
async fn a_broken_message_is_skipped_as_a_bad_item_after_retries() {
    let f = Fault::new(FaultAction::FetchNo).uids(&[2, 5]);
    let w = survives(terry(6).fault(f), false).await;
    let bad: Vec<_> = w
        .skipped("terry@contoso.edu")
        .into_iter()
        .filter(|(_, _, r)| r == "BadItem")
        .collect();
    assert_eq!(bad.len(), 2);
    let r = w.reconcile_with("terry", target_folder).await;
    assert_eq!(r.missing.len(), 2);
    assert!(r.duplicated.is_empty() && r.flag_mismatches.is_empty());
    assert_eq!(w.engine.user("terry@contoso.edu").unwrap().items_skipped, 2);
}

#[tokio::test]
async fn messages_expunged_during_the_fetch_are_reported_not_lost() {
    let f = Fault::new(FaultAction::ExpungeDuringFetch)
        .command("UID FETCH")
        .count(2)
        .after_commands(5)
        .times(1);
    let w = survives(terry(10).fault(f), true).await;
    let vanished = w
        .skipped("terry@contoso.edu")
        .into_iter()
        .filter(|(_, _, r)| r == "Vanished")
        .count();
    assert!(vanished <= 2);
}

#[tokio::test]
async fn wrong_sizes_rewritten_headers_and_missing_headers_change_nothing() {
    let s = terry(10)
        .fault(Fault::new(FaultAction::WrongSize).delta(-40))
        .fault(Fault::new(FaultAction::MissingHeader))
        .fault(Fault::new(FaultAction::WrongSequence));
    survives(s, true).await;
}

#[tokio::test]
async fn a_slow_server_is_slow_but_complete() {
    survives(terry(5).fault(Fault::new(FaultAction::Delay).ms(15)), true).await;
}

#[tokio::test]
async fn authenticated_but_not_connected_fails_the_user_with_a_clear_error() {
    let mut w = world(
        terry(3).fault(Fault::new(FaultAction::LoginThenFail)),
        &["terry"],
    )
    .await;
    w.options.error_budget = 2;
    w.batch("EmailAddress,UserName,Password\nterry@contoso.edu,terry,wrong\n")
        .await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Failed);
    let e = u.error.unwrap();
    assert!(
        e.contains("kept failing") && e.contains("not connected"),
        "{e}"
    );
}

#[tokio::test]
async fn courier_uidvalidity_only_on_select() {
    let quirks = Quirks {
        no_uidvalidity_on_examine: true,
        ..Quirks::default()
    };
    let w = survives(terry(6).quirks(quirks), true).await;
    // A second sync must recognise the same UIDVALIDITY (from STATUS) and copy nothing again.
    w.clock.advance(chrono::Duration::hours(24));
    w.run().await;
    w.exact("terry").await;
}

#[tokio::test]
async fn target_throttling_and_transient_faults_are_retried() {
    let settings = Settings {
        transient_error_rate: 0.3,
        lost_ack_rate: 0.2,
        seed: 5,
        ..Settings::default()
    };
    let mut w = world_with(terry(25), &["terry"], settings, false).await;
    w.options.error_budget = 50;
    w.batch(TERRY).await;
    w.run().await;
    assert_eq!(
        w.engine.user("terry@contoso.edu").unwrap().status,
        UserStatus::Synced
    );
    w.exact("terry").await;
}

#[tokio::test]
async fn target_rules_fail_the_user_with_exchanges_messages() {
    let w = world(terry(3), &["terry"]).await;
    w.tenant.set_quota("terry@contoso.edu", Some(100)).unwrap();
    w.batch(TERRY).await;
    w.run().await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.status, UserStatus::Failed);
    assert_eq!(
        u.error.unwrap(),
        "This mailbox is full. Please free up some space so that email can be downloaded."
    );
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn a_quoted_folder_name_with_escapes_is_read_and_selected_as_it_is() {
    let w = survives(terry(2).generated("terry", "with\"quote\\back", 3), true).await;
    let u = w.engine.user("terry@contoso.edu").unwrap();
    assert_eq!(u.items_synced, 5);
}

#[tokio::test]
async fn a_folder_open_since_its_listing_is_not_examined_again() {
    // A zero delay on every EXAMINE: the fault's count is the number of EXAMINEs sent.
    let count_examines = Fault::new(FaultAction::Delay).command("EXAMINE").ms(0);
    let one = survives(terry(5).fault(count_examines.clone()), true).await;
    assert_eq!(
        one.source.faults_fired(),
        [1],
        "INBOX, listed and copied on one connection: one EXAMINE (a second was a round trip \
         for nothing)"
    );
    // Two folders, listed last to first: the first is still open from its listing when its
    // copy starts; the second is opened again.
    let two = survives(
        terry(5)
            .generated("terry", "Archive", 3)
            .fault(count_examines),
        true,
    )
    .await;
    assert_eq!(two.source.faults_fired(), [3]);
}

#[tokio::test]
async fn fetches_a_server_runs_at_once_still_arrive_whole_and_in_order() {
    // As Dovecot does: a UID FETCH pipelined behind another runs at once with it, their
    // replies interleave and the later one completes first. 300 messages go in growing
    // chunks, each fetch asked for while the one before is read.
    let server = terry(300).quirks(Quirks {
        concurrent_fetches: true,
        ..Quirks::default()
    });
    let w = survives(server, true).await;
    let items = w.tenant.items("terry@contoso.edu", Some("Inbox")).unwrap();
    let uids: Vec<u32> = items
        .iter()
        .map(|i| i.source_key.rsplit('|').next().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<u32> = (1..=300).collect();
    assert_eq!(uids, expected, "imported in the source's order");
}
