//! Every scenario file is one test, so a failure names the file.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

async fn check(file: &str) {
    let o = scenarios::run_file(&dir().join(file), None).await;
    assert!(o.passed, "{file}: {}", o.failure.unwrap_or_default());
}

macro_rules! scenario_files {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                check($file).await;
            }
        )*

        #[test]
        fn every_scenario_file_is_listed() {
            let listed = [$($file),*];
            for entry in std::fs::read_dir(dir()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                if name.ends_with(".toml") {
                    assert!(listed.contains(&name.as_str()), "{name} is not listed in scenario_files!()");
                }
            }
        }
    };
}

scenario_files!(
    walkthrough_dovecot => "01-walkthrough-dovecot.toml",
    csv_exchange_form => "02-csv-exchange-form.toml",
    csv_mirapoint_form => "03-csv-mirapoint-form.toml",
    csv_courier_userroot => "04-csv-courier-userroot.toml",
    missing_recipient => "05-missing-recipient.toml",
    quota_full => "06-quota-full.toml",
    unlicensed_grace => "07-unlicensed-grace.toml",
    target_throttling => "08-target-throttling.toml",
    quirk_exchange_throttling => "10-quirk-exchange-throttling.toml",
    quirk_gmail_throttled => "11-quirk-gmail-throttled.toml",
    quirk_bye_after_errors => "12-quirk-bye-after-errors.toml",
    quirk_drop_mid_literal => "13-quirk-drop-mid-literal.toml",
    quirk_bye_after_commands => "14-quirk-bye-after-commands.toml",
    quirk_broken_message => "15-quirk-broken-message.toml",
    quirk_uidvalidity_change => "16-quirk-uidvalidity-change.toml",
    quirk_expunge_during_fetch => "17-quirk-expunge-during-fetch.toml",
    quirk_sizes_and_headers => "18-quirk-sizes-and-headers.toml",
    quirk_authenticated_not_connected => "19-quirk-authenticated-not-connected.toml",
    quirk_courier_examine => "20-quirk-courier-examine.toml",
    quirk_slow_server => "21-quirk-slow-server.toml",
    lifecycle_stop_start => "30-lifecycle-stop-start.toml",
    lifecycle_retry_failed => "31-lifecycle-retry-failed.toml",
    lifecycle_remove_while_syncing => "32-lifecycle-remove-while-syncing.toml",
    lifecycle_add_users => "33-lifecycle-add-users.toml",
    lifecycle_complete_refusals => "34-lifecycle-complete-refusals.toml",
    lifecycle_mx_switch_wait => "35-lifecycle-mx-switch-wait.toml",
    lifecycle_start_after => "36-lifecycle-start-after.toml",
    limit_large_items => "40-limit-large-items.toml",
    limit_item_cap => "41-limit-item-cap.toml",
    limit_slash_and_excluded_folders => "42-limit-slash-and-excluded-folders.toml",
    limit_concurrency => "43-limit-concurrency.toml",
    csv_row_errors => "44-csv-row-errors.toml",
    csv_rejected => "45-csv-rejected.toml",
    test_server_wrong_password => "46-test-server-wrong-password.toml",
    security_starttls => "47-security-starttls.toml",
    imap_to_imap_dovecot => "50-imap-to-imap-dovecot.toml",
    imap_target_exchange_append_limit => "51-imap-target-exchange-append-limit.toml",
    imap_target_quota => "52-imap-target-quota.toml",
    imap_target_reserved_folder => "53-imap-target-reserved-folder.toml",
    cutover_walkthrough => "60-cutover-walkthrough.toml",
    cutover_self_signed_certificate => "61-cutover-self-signed-certificate.toml",
    cutover_directory_sync_on => "62-cutover-directory-sync-on.toml",
    cutover_unaccepted_domain => "63-cutover-unaccepted-domain.toml",
    cutover_second_batch => "64-cutover-second-batch.toml",
    cutover_2001_mailboxes => "65-cutover-2001-mailboxes.toml",
    cutover_hidden_mailbox => "66-cutover-hidden-mailbox.toml",
    cutover_unmigrated_manager => "67-cutover-unmigrated-manager.toml",
    cutover_um_enabled => "68-cutover-um-enabled.toml",
    cutover_content_faults => "69-cutover-content-faults.toml",
    cutover_password_changed => "70-cutover-password-changed.toml",
    cutover_kills => "71-cutover-kills.toml",
    cutover_big_group => "72-cutover-big-group.toml",
    cutover_security_group_not_created => "73-cutover-security-group-not-created.toml",
    cutover_security_group_pre_created => "74-cutover-security-group-pre-created.toml",
    cutover_different_type_conflict => "75-cutover-different-type-conflict.toml",
    cutover_wrong_admin_password => "76-cutover-wrong-admin-password.toml",
    cutover_autodiscover_401_then_next => "77-cutover-autodiscover-401-then-next.toml",
    cutover_autodiscover_loop => "78-cutover-autodiscover-loop.toml",
    cutover_autodiscover_redirect => "79-cutover-autodiscover-redirect.toml",
    cutover_autodiscover_too_many_redirects => "80-cutover-autodiscover-too-many-redirects.toml",
    cutover_missing_rights => "81-cutover-missing-rights.toml",
    cutover_content_changes => "82-cutover-content-changes.toml",
    cutover_invalid_smtp_address => "83-cutover-invalid-smtp-address.toml",
    cutover_more_than_50000_recipients => "84-cutover-50001-recipients.toml",
    cutover_stop_start_force_remove => "85-cutover-stop-start-force-remove.toml",
);

/// A key that would be ignored is refused, naming the step and the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_keys_of_the_other_kind_are_refused_not_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let exchange = dir().join("../../examples/fake-exchange.toml");
    let cutover = tmp.path().join("cutover.toml");
    std::fs::write(
        &cutover,
        format!(
            "name = \"x\"\nexchange_file = {exchange:?}\n[target.tenant]\naccepted_domains = [\"contoso.com\"]\n[[steps]]\naction = \"new-endpoint\"\n[[steps]]\naction = \"new-batch\"\nname = \"B\"\nexclude_folders = [\"Junk\"]\n"
        ),
    )
    .unwrap();
    let o = scenarios::run_file(&cutover, None).await;
    assert!(!o.passed);
    let why = o.failure.unwrap();
    assert!(
        why.contains("step 2 (new-batch): exclude_folders is for IMAP batches"),
        "{why}"
    );
    let imap = tmp.path().join("imap.toml");
    let walkthrough = std::fs::read_to_string(dir().join("01-walkthrough-dovecot.toml")).unwrap();
    let first_batch = walkthrough
        .find("action = \"new-batch\"")
        .expect("the walkthrough makes a batch");
    let mut changed = walkthrough.clone();
    changed.insert_str(first_batch, "mailboxes = 3\n");
    std::fs::write(&imap, changed).unwrap();
    let o = scenarios::run_file(&imap, None).await;
    let why = o.failure.unwrap_or_default();
    assert!(why.contains("are for cutover batches"), "{why}");
}
