//! Runs a scenario in-process: fake-imap, the fake tenant and the engine on one virtual clock.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::csv::UserNameForm;
use engine::control::endpoint::Endpoint;
use engine::control::state::BatchSettings;
use engine::control::{NewBatch, SetBatch};
use engine::imap::{Authentication, Security};
use engine::pipeline::plan::{Plan, SourceFolder, plan};
use engine::pipeline::{Copier, CopyOptions};
use engine::service::{RunOptions, Service};
use engine::target::Target;
use engine::test_server::test_server;
use fake_imap::{FakeImapServer, ServerHandle};
use fake_target::inspect::{SourceMessage, fingerprint, reconcile, target_messages};
use fake_target::{ItemFlags, Tenant};
use harness::TenantTarget;

use crate::format::{Expect, Scenario, Step};

/// How one scenario file went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub file: PathBuf,
    pub name: String,
    pub passed: bool,
    pub failure: Option<String>,
    pub seconds: f64,
}

struct World {
    engine: Arc<Engine>,
    clock: ManualClock,
    tenant: Tenant,
    target: Arc<dyn Target>,
    /// The second fake IMAP server when the scenario migrates IMAP to IMAP.
    imap_target: Option<ServerHandle>,
    /// The IMAP source, or for a cutover the on-premises organisation.
    source: Option<ServerHandle>,
    exchange: Option<fake_exchange::RunningExchange>,
    /// When the `mx-switch` step happened.
    mx_switched: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    csv: Vec<u8>,
    options: CopyOptions,
    _dir: tempfile::TempDir,
}

/// The files a list of paths names: files as given; in folders (and their subfolders), every
/// `*.toml` but Cargo's manifests, sorted.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                if e.file_name()
                    .is_some_and(|n| n != "target" && !n.to_string_lossy().starts_with('.'))
                {
                    walk(&e, out)?;
                }
            } else if e.extension().is_some_and(|x| x == "toml")
                && e.file_name().is_some_and(|n| n != "Cargo.toml")
            {
                out.push(e);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

/// Runs one file; never panics, whatever the file says.
pub async fn run_file(path: &Path, seed: Option<u64>) -> Outcome {
    let started = Instant::now();
    let (name, result) = match Scenario::from_file(path) {
        Err(e) => (path.display().to_string(), Err(e)),
        Ok(s) => {
            let name = s.name.clone();
            let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (name, run(s, &base, seed).await)
        }
    };
    Outcome {
        file: path.to_path_buf(),
        name,
        passed: result.is_ok(),
        failure: result.err(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn table<T: serde::de::DeserializeOwned>(t: &toml::Table, what: &str) -> Result<T, String> {
    toml::Value::Table(t.clone())
        .try_into()
        .map_err(|e| format!("[{what}]: {e}"))
}

/// Merges `extra` into `base`: tables key by key, arrays extended, other values replaced.
fn merge(base: &mut toml::Table, extra: &toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (Some(toml::Value::Array(b)), toml::Value::Array(e)) => b.extend(e.iter().cloned()),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A scenario's organisation: its file, with the inline table merged in.
fn exchange_config(s: &Scenario, base: &Path) -> Result<Option<fake_exchange::Config>, String> {
    let mut table = match &s.exchange_file {
        None => toml::Table::new(),
        Some(f) => {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("exchange_file {}: {e}", path.display()))?;
            text.parse::<toml::Table>()
                .map_err(|e| format!("exchange_file {}: {e}", path.display()))?
        }
    };
    match &s.exchange {
        None if s.exchange_file.is_none() => return Ok(None),
        None => {}
        Some(extra) => merge(&mut table, extra),
    }
    let text = toml::to_string(&table).map_err(|e| format!("[exchange]: {e}"))?;
    let mut config =
        fake_exchange::Config::from_toml(&text).map_err(|e| format!("[exchange]: {e}"))?;
    config.base_dir = Some(base.to_path_buf());
    Ok(Some(config))
}

async fn setup(s: &Scenario, base: &Path, seed: Option<u64>) -> Result<World, String> {
    let exchange = match exchange_config(s, base)? {
        None => None,
        Some(config) => Some(
            fake_exchange::FakeExchange::start(config)
                .await
                .map_err(|e| format!("[exchange]: {e}"))?,
        ),
    };
    let source_table = match (&s.source, &exchange) {
        (Some(t), _) => t.clone(),
        (None, Some(_)) => toml::Table::new(),
        (None, None) => return Err("the scenario needs [source] or [exchange]".into()),
    };
    let mut source: fake_imap::Config = table(&source_table, "source")?;
    if let Some(seed) = seed.or(s.seed) {
        source.server.seed = seed;
    }
    source.resolve_paths(base);
    let source = FakeImapServer::from_config(source)
        .start()
        .await
        .map_err(|e| format!("[source]: {e}"))?;
    let mut target_cfg: fake_target::TenantConfig = table(&s.target, "target")?;
    target_cfg.tenant.database = None;
    let clock = ManualClock::at_epoch();
    let tenant = Tenant::from_config(&target_cfg, Arc::new(clock.clone()))
        .map_err(|e| format!("[target]: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine = Arc::new(
        Engine::open(&dir.path().join("state"), Arc::new(clock.clone()))
            .map_err(|e| e.to_string())?,
    );
    let e = &s.endpoint;
    let security = Security::parse(&e.security)
        .ok_or_else(|| format!("[endpoint] security {:?}", e.security))?;
    let port = match security {
        Security::Ssl => source
            .imaps_addr()
            .ok_or("[endpoint] security = \"ssl\" needs source.server.implicit_tls")?
            .port(),
        _ => source.imap_addr().port(),
    };
    let mut endpoint = Endpoint::imap("Source", "127.0.0.1", port, security);
    endpoint.max_concurrent_migrations = e.max_concurrent_migrations;
    endpoint.max_concurrent_incremental_syncs = e.max_concurrent_incremental_syncs;
    endpoint.imap_settings_mut().unwrap().authentication = Authentication::parse(&e.authentication)
        .ok_or_else(|| format!("[endpoint] authentication {:?}", e.authentication))?;
    endpoint.imap_settings_mut().unwrap().master_separator = e.master_separator;
    endpoint
        .imap_settings_mut()
        .unwrap()
        .accept_untrusted_certificates = e.accept_untrusted_certificates;
    if !e.no_ca_file {
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, source.ca_pem()).map_err(|e| e.to_string())?;
        endpoint.imap_settings_mut().unwrap().ca_file = Some(ca);
    }
    match &exchange {
        None => {
            engine
                .endpoint_new(endpoint)
                .map_err(|e| format!("[endpoint]: {e}"))?;
        }
        // The cutover endpoint is the `new-endpoint` step's; the fake's CA is at hand.
        Some(exchange) => std::fs::write(dir.path().join("exchange-ca.pem"), exchange.ca_pem())
            .map_err(|e| e.to_string())?,
    }
    let csv = match (&s.csv, &s.csv_file) {
        (Some(text), _) => text.trim_start().as_bytes().to_vec(),
        (None, Some(file)) => std::fs::read(base.join(file))
            .map_err(|e| format!("csv_file {}: {e}", file.display()))?,
        (None, None) => Vec::new(),
    };
    let mut options = CopyOptions {
        timeout: Duration::from_secs(10),
        ..CopyOptions::default()
    };
    if let Some(n) = e.item_cap {
        options.item_cap = n;
    }
    if let Some(n) = e.max_message_size {
        options.max_message_size = n;
    }
    if let Some(n) = e.error_budget {
        options.error_budget = n;
    }
    let (target, imap_target): (Arc<dyn Target>, _) = match &s.imap_target {
        None => (Arc::new(TenantTarget(Arc::new(tenant.clone()))), None),
        Some(t) => {
            let mut t = t.clone();
            let login = t
                .remove("username_format")
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or("[imap_target] needs username_format")?;
            let password = t
                .remove("password")
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or("[imap_target] needs password")?;
            let mut config: fake_imap::Config = table(&t, "imap_target")?;
            config.resolve_paths(base);
            let server = FakeImapServer::from_config(config)
                .start()
                .await
                .map_err(|e| format!("[imap_target]: {e}"))?;
            let target =
                engine::target::imap::ImapTarget::new(engine::target::imap::ImapTargetConfig {
                    remote_server: "127.0.0.1".into(),
                    port: server.imap_addr().port(),
                    security: Security::None,
                    ca_file: None,
                    username_format: login,
                    password,
                    source_key_header: false,
                });
            (Arc::new(target) as Arc<dyn Target>, Some(server))
        }
    };
    Ok(World {
        engine,
        clock,
        target,
        imap_target,
        tenant,
        source: exchange.is_none().then_some(source),
        exchange,
        mx_switched: Default::default(),
        csv,
        options,
        _dir: dir,
    })
}

/// Checks an operation's result against `expect_error`.
fn check_op<T>(
    step: usize,
    what: &str,
    r: Result<T, engine::Error>,
    expect_error: &Option<String>,
) -> Result<(), String> {
    match (r, expect_error) {
        (Ok(_), None) => Ok(()),
        (Err(e), Some(want)) if e.to_string().contains(want.as_str()) => Ok(()),
        (Err(e), Some(want)) => Err(format!(
            "step {step} ({what}): refused with \"{e}\", expected a refusal containing {want:?}"
        )),
        (Ok(_), Some(want)) => Err(format!(
            "step {step} ({what}): accepted, expected a refusal containing {want:?}"
        )),
        (Err(e), None) => Err(format!("step {step} ({what}): {e}")),
    }
}

impl World {
    fn imap(&self, n: usize) -> Result<&ServerHandle, String> {
        self.source
            .as_ref()
            .ok_or_else(|| format!("step {n}: this step needs an IMAP [source]"))
    }

    fn org(&self, n: usize) -> Result<&fake_exchange::Organisation, String> {
        self.exchange
            .as_ref()
            .map(|e| e.org())
            .ok_or_else(|| format!("step {n}: this step needs an [exchange] organisation"))
    }

    /// Test-MigrationServerAvailability's input for a cutover, through the fake's names.
    fn cutover_input(
        &self,
        email: Option<&str>,
        password: Option<&str>,
        accept_untrusted: bool,
        no_ca_file: bool,
    ) -> engine::exchange::test::TestInput {
        let exchange = self.exchange.as_ref().expect("cutover");
        let email = email.unwrap_or("administrator@contoso.com").to_string();
        engine::exchange::test::TestInput {
            credential: engine::exchange::AdminCredential {
                user_name: email.clone(),
                password: password.unwrap_or("P@ssw0rd").into(),
            },
            email_address: email,
            exchange_server: None,
            rpc_proxy_server: None,
            nspi_server: None,
            mailbox_permission: None,
            accept_untrusted_certificates: accept_untrusted,
            ca_file: (!no_ca_file).then(|| self._dir.path().join("exchange-ca.pem")),
            connect_to: exchange
                .connect_to()
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            timeout: Duration::from_secs(10),
        }
    }

    fn service(&self) -> Service {
        let copy = Copier {
            engine: self.engine.clone(),
            target: self.target.clone(),
            options: self.options.clone(),
        };
        Service::new(self.engine.clone(), Arc::new(copy), self.target.clone())
    }

    async fn run(&self) -> Result<(), String> {
        self.service()
            .run(RunOptions {
                poll: Duration::from_millis(5),
                ..RunOptions::default()
            })
            .await
            .map_err(|e| e.to_string())
    }
}

pub async fn run(s: Scenario, base: &Path, seed: Option<u64>) -> Result<(), String> {
    let w = setup(&s, base, seed).await?;
    for (i, step) in s.steps.iter().enumerate() {
        let n = i + 1;
        match step {
            Step::TestServer {
                email_address,
                supports_cutover,
                accept_untrusted_certificates,
                no_ca_file,
                username: _,
                password,
                result,
                message_contains,
            } if w.exchange.is_some() => {
                let input = w.cutover_input(
                    email_address.as_deref(),
                    password.as_deref(),
                    *accept_untrusted_certificates,
                    *no_ca_file,
                );
                let r = engine::exchange::test::test(
                    &input,
                    Some(w.tenant.organization().directory_sync),
                )
                .await;
                let said = format!("{} {}", r.message, r.error_detail.as_deref().unwrap_or(""));
                if r.result.to_string() != *result {
                    return Err(format!(
                        "step {n} (test-server): {} ({said}), expected {result}",
                        r.result
                    ));
                }
                if let Some(want) = message_contains
                    && !said.contains(want.as_str())
                {
                    return Err(format!("step {n} (test-server): {said:?} lacks {want:?}"));
                }
                if let Some(want) = supports_cutover
                    && r.supports_cutover != *want
                {
                    return Err(format!(
                        "step {n} (test-server): SupportsCutover {}, expected {want}",
                        r.supports_cutover
                    ));
                }
            }
            Step::TestServer {
                username,
                password,
                result,
                message_contains,
                ..
            } => {
                let endpoint = w.engine.endpoint("Source").map_err(|e| e.to_string())?;
                let settings = endpoint
                    .imap_settings()
                    .ok_or_else(|| format!("step {n}: test-server needs an IMAP endpoint"))?;
                let creds = username.as_deref().zip(password.as_deref());
                let r = test_server(settings, creds, Duration::from_secs(5)).await;
                let got = r.result.to_string();
                if got != *result {
                    return Err(format!(
                        "step {n} (test-server): {got} ({}), expected {result}",
                        r.message
                    ));
                }
                if let Some(want) = message_contains
                    && !r.message.contains(want.as_str())
                {
                    return Err(format!(
                        "step {n} (test-server): message {:?} lacks {want:?}",
                        r.message
                    ));
                }
            }
            Step::NewEndpoint {
                email_address,
                password,
                accept_untrusted_certificates,
                no_ca_file,
                known_settings,
                expect_error,
            } => {
                w.org(n)?;
                let input = w.cutover_input(
                    email_address.as_deref(),
                    password.as_deref(),
                    *accept_untrusted_certificates,
                    *no_ca_file,
                );
                let settings = if *known_settings {
                    Ok(harness::cutover_settings(
                        w.exchange.as_ref().expect("cutover"),
                        &w._dir.path().join("exchange-ca.pem"),
                    ))
                } else {
                    let r = engine::exchange::test::test(&input, None).await;
                    match r.connection_settings {
                        Some(c) if r.result != engine::test_server::TestResult::Failed => {
                            let mut settings = c.endpoint_settings(&input.credential.password);
                            settings.accept_untrusted_certificates = *accept_untrusted_certificates;
                            Ok(settings)
                        }
                        _ => Err(engine::Error::Invalid(format!(
                            "The endpoint was not created: {} {}",
                            r.message,
                            r.error_detail.unwrap_or_default()
                        ))),
                    }
                };
                let r = settings.and_then(|settings| {
                    w.engine.endpoint_new(Endpoint::new(
                        CUTOVER_ENDPOINT,
                        engine::source::SourceSettings::ExchangeOutlookAnywhere(Box::new(settings)),
                    ))
                });
                check_op(n, "new-endpoint", r, expect_error)?;
            }
            Step::NewBatch {
                recipients,
                mailboxes,
                not_taken,
                name,
                autostart,
                exclude_folders,
                include_folders,
                start_after_hours,
                complete_after_hours,
                expect_error,
            } if w.exchange.is_some() => {
                // Keys of an IMAP batch would be ignored here: refused, not silently dropped.
                for (key, set) in [
                    ("exclude_folders", !exclude_folders.is_empty()),
                    ("include_folders", !include_folders.is_empty()),
                    ("start_after_hours", start_after_hours.is_some()),
                    ("complete_after_hours", complete_after_hours.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "step {n} (new-batch): {key} is for IMAP batches; a cutover batch takes the whole organisation"
                        ));
                    }
                }
                let r = w
                    .engine
                    .cutover_batch_new(
                        NewBatch {
                            name: name.clone(),
                            source_endpoint: CUTOVER_ENDPOINT.into(),
                            autostart: *autostart,
                            ..NewBatch::default()
                        },
                        &*w.target,
                    )
                    .await;
                if let Ok(out) = &r {
                    let left_out: Vec<&str> =
                        out.not_taken.iter().map(|(a, _)| a.as_str()).collect();
                    for (what, got, want) in [
                        ("recipients", out.recipients, *recipients),
                        ("mailboxes", out.mailboxes, *mailboxes),
                    ] {
                        if let Some(want) = want
                            && got != want
                        {
                            return Err(format!(
                                "step {n} (new-batch): {got} {what}, expected {want}"
                            ));
                        }
                    }
                    if !not_taken.is_empty() && left_out != *not_taken {
                        return Err(format!(
                            "step {n} (new-batch): not taken {left_out:?}, expected {not_taken:?}"
                        ));
                    }
                }
                check_op(n, "new-batch", r, expect_error)?;
            }
            Step::NewBatch {
                name,
                autostart,
                exclude_folders,
                include_folders,
                start_after_hours,
                complete_after_hours,
                expect_error,
                recipients,
                mailboxes,
                not_taken,
            } => {
                if recipients.is_some() || mailboxes.is_some() || !not_taken.is_empty() {
                    return Err(format!(
                        "step {n} (new-batch): recipients, mailboxes and not_taken are for cutover batches (an [exchange] organisation)"
                    ));
                }
                let now = engine::clock::Clock::now(&w.clock);
                let settings = BatchSettings {
                    exclude_folders: exclude_folders.clone(),
                    include_folders: include_folders.clone(),
                    start_after: start_after_hours.map(|h| now + chrono::Duration::hours(h)),
                    complete_after: complete_after_hours.map(|h| now + chrono::Duration::hours(h)),
                    allow_unknown_columns: false,
                };
                let r = w
                    .engine
                    .batch_new(
                        NewBatch {
                            name: name.clone(),
                            source_endpoint: "Source".into(),
                            autostart: *autostart,
                            settings,
                        },
                        Path::new("users.csv"),
                        &w.csv,
                        &*w.target,
                    )
                    .await;
                check_op(n, "new-batch", r, expect_error)?;
            }
            Step::Start {
                batch,
                expect_error,
            } => check_op(n, "start", w.engine.batch_start(batch), expect_error)?,
            Step::Stop {
                batch,
                expect_error,
            } => check_op(n, "stop", w.engine.batch_stop(batch), expect_error)?,
            Step::Complete {
                batch,
                expect_error,
            } => check_op(n, "complete", w.engine.batch_complete(batch), expect_error)?,
            Step::Remove {
                batch,
                expect_error,
                after_mx_switch,
                force,
            } => {
                let r = if w.exchange.is_some() {
                    let switched = *w.mx_switched.lock().expect("mx");
                    w.engine.batch_remove_cutover(
                        batch,
                        engine::control::cutover::CutoverRemoval {
                            mx_switched_at: switched.filter(|_| *after_mx_switch),
                            force: *force,
                        },
                    )
                } else {
                    w.engine.batch_remove(batch)
                };
                check_op(n, "remove", r, expect_error)?
            }
            Step::MxSwitch => {
                *w.mx_switched.lock().expect("mx") = Some(engine::clock::Clock::now(&w.clock));
            }
            Step::Checklist {
                batch,
                done,
                open,
                detail_contains,
            } => {
                let switched = *w.mx_switched.lock().expect("mx");
                let list = w
                    .engine
                    .cutover_checklist(batch, switched, &*w.target)
                    .await
                    .map_err(|e| format!("step {n} (checklist): {e}"))?;
                let shown: Vec<String> = list
                    .iter()
                    .map(|i| {
                        format!(
                            "[{}] {}: {}",
                            if i.done { "x" } else { " " },
                            i.step,
                            i.detail
                        )
                    })
                    .collect();
                for (want, done) in done
                    .iter()
                    .map(|d| (d, true))
                    .chain(open.iter().map(|o| (o, false)))
                {
                    match list.iter().find(|i| i.step.contains(want.as_str())) {
                        Some(i) if i.done == done => {}
                        _ => {
                            return Err(format!(
                                "step {n} (checklist): {want:?} should be {}: {shown:#?}",
                                if done { "done" } else { "open" }
                            ));
                        }
                    }
                }
                for want in detail_contains {
                    if !shown.iter().any(|l| l.contains(want.as_str())) {
                        return Err(format!("step {n} (checklist): no {want:?} in {shown:#?}"));
                    }
                }
            }
            Step::ExchangeChange {
                mailbox,
                folder,
                index,
                change,
            } => {
                let org = w.org(n)?;
                let ids = org
                    .item_ids(mailbox, folder)
                    .map_err(|e| format!("step {n}: {e}"))?;
                let id = *ids
                    .get(*index)
                    .ok_or_else(|| format!("step {n}: {folder} has {} items", ids.len()))?;
                match change.as_str() {
                    "read" => org.set_read(mailbox, id, true),
                    "unread" => org.set_read(mailbox, id, false),
                    "delete" => org.delete_item(mailbox, id),
                    other => {
                        return Err(format!(
                            "step {n}: change {other:?} is not read, unread or delete"
                        ));
                    }
                }
                .map_err(|e| format!("step {n}: {e}"))?;
            }
            Step::ExchangePassword { admin, password } => w
                .org(n)?
                .set_password(admin, password)
                .map_err(|e| format!("step {n}: {e}"))?,
            Step::SyncNow {
                batch,
                expect_error,
            } => {
                let set = SetBatch {
                    sync_now: true,
                    ..SetBatch::default()
                };
                check_op(
                    n,
                    "sync-now",
                    w.engine
                        .batch_set(batch, set, &*w.target as &dyn Target)
                        .await,
                    expect_error,
                )?
            }
            Step::AddUsers {
                batch,
                csv,
                expect_error,
            } => {
                let set = SetBatch {
                    add_users: Some(("added.csv".into(), csv.trim_start().as_bytes().to_vec())),
                    ..SetBatch::default()
                };
                check_op(
                    n,
                    "add-users",
                    w.engine
                        .batch_set(batch, set, &*w.target as &dyn Target)
                        .await,
                    expect_error,
                )?
            }
            Step::Run => w.run().await.map_err(|e| format!("step {n} (run): {e}"))?,
            Step::Kill { after_ms } => {
                // Dropping the run mid-way is what a SIGKILL leaves behind: claimed syncs that
                // never finished. The next run recovers them.
                let _ = tokio::time::timeout(Duration::from_millis(*after_ms), w.run()).await;
            }
            Step::Advance { hours } => w.clock.advance(chrono::Duration::hours(*hours)),
            Step::Deliver {
                user,
                folder,
                count,
            } if w.exchange.is_some() => {
                let org = w.org(n)?;
                let class = {
                    let mut state = org.lock();
                    let mb = state
                        .mailbox_mut(user)
                        .ok_or_else(|| format!("step {n} (deliver): no mailbox {user}"))?;
                    let f = mb
                        .folder_by_path(folder, true)
                        .ok_or_else(|| format!("step {n} (deliver): no folder {folder}"))?;
                    mb.folders[f as usize].class
                };
                for i in 0..*count {
                    let mime = fake_exchange::generate::item_for(class, user, n as u64, i);
                    org.deliver(user, folder, &mime)
                        .map_err(|e| format!("step {n} (deliver): {e}"))?;
                }
            }
            Step::Deliver {
                user,
                folder,
                count,
            } => {
                let generated = fake_imap::generate::generate(
                    &fake_imap::generate::GeneratorConfig::default(),
                    n as u64,
                    user,
                    folder,
                    *count,
                );
                for m in generated {
                    w.imap(n)?
                        .store()
                        .append(user, folder, m.raw, &m.flags, m.internal_date)
                        .map_err(|e| format!("step {n} (deliver): {e}"))?;
                }
            }
            Step::SetFlags {
                user,
                folder,
                uid,
                flags,
            } => {
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                w.imap(n)?
                    .store()
                    .set_flags(user, folder, *uid, &flags)
                    .map_err(|e| format!("step {n}: {e}"))?;
            }
            Step::Expunge { user, folder, uids } => {
                w.imap(n)?
                    .store()
                    .expunge_uids(user, folder, uids)
                    .map_err(|e| format!("step {n}: {e}"))?;
            }
            Step::UidvalidityChange { user, folder } => {
                w.imap(n)?
                    .store()
                    .reset_uid_validity(user, folder)
                    .map_err(|e| format!("step {n}: {e}"))?;
            }
            Step::Unlicense { address } => w
                .tenant
                .set_licensed(address, false)
                .map_err(|e| format!("step {n}: {e}"))?,
            Step::SetQuota { address, bytes } => w
                .tenant
                .set_quota(address, Some(*bytes))
                .map_err(|e| format!("step {n}: {e}"))?,
            Step::Expect(x) => expect(&w, n, x).await?,
        }
    }
    Ok(())
}

const CUTOVER_ENDPOINT: &str = "CutoverEndpoint";

/// A cutover's reconciliation: every migrated mailbox's mail, calendar and contacts in the
/// tenant, each exactly once, read flags (messages have them) and dates kept, nothing else
/// (bad items excepted).
async fn cutover_equals(w: &World, n: usize, allow_extra: bool) -> Result<(), String> {
    let fail = |m: String| format!("step {n} (expect): {m}");
    let org = w.org(n)?;
    for u in w.engine.users(None).map_err(|e| fail(e.to_string()))? {
        if !u.kind.is_some_and(|k| k.has_mailbox())
            || u.status == engine::control::status::UserStatus::Failed
        {
            continue;
        }
        let skipped = skipped_items(w, &u.email_address).len();
        let source = harness::source_from_fake_exchange(org, &u.email_address)
            .ok_or_else(|| fail(format!("no mailbox {}", u.email_address)))?;
        let target = target_messages(&w.tenant, &u.email_address)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let r = reconcile(&source, &target);
        if !(r.missing.is_empty()
            && r.duplicated.is_empty()
            && r.flag_mismatches.is_empty()
            && r.date_mismatches.is_empty()
            && (allow_extra || r.unexpected.is_empty()))
        {
            return Err(fail(format!(
                "{} ({skipped} skipped): the tenant differs from the organisation: {r:#?}",
                u.email_address
            )));
        }
    }
    Ok(())
}

/// The fake-imap user behind a migration user's credentials.
fn source_user(
    user_name: &str,
    user_root: Option<&str>,
    separator: char,
    users: &[String],
) -> String {
    match UserNameForm::recognise(user_name, user_root, separator) {
        UserNameForm::Exchange { user, .. }
        | UserNameForm::Dovecot { user, .. }
        | UserNameForm::Plain { user } => user,
        UserNameForm::Mirapoint { user, .. } => user.split('@').next().unwrap_or("").to_string(),
        // The user whose name ends the root (user names may contain the delimiter).
        UserNameForm::Courier { user_root, .. } => users
            .iter()
            .filter(|u| {
                user_root
                    .trim_end_matches(['/', '.'])
                    .ends_with(&fake_imap::cmd::mailbox::shared_account_name(u))
            })
            .max_by_key(|u| u.len())
            .cloned()
            .unwrap_or_default(),
    }
}

async fn expect(w: &World, n: usize, x: &Expect) -> Result<(), String> {
    let fail = |m: String| format!("step {n} (expect): {m}");
    if let Some(b) = &x.batch {
        match w.engine.batch(b) {
            Ok(batch) if x.batch_gone => {
                return Err(fail(format!("batch {b} still exists ({})", batch.status)));
            }
            Err(_) if x.batch_gone => {}
            Err(e) => return Err(fail(e.to_string())),
            Ok(batch) => {
                if let Some(want) = &x.batch_status
                    && batch.status.as_str() != want
                {
                    return Err(fail(format!(
                        "batch {b} is {}, expected {want}",
                        batch.status
                    )));
                }
            }
        }
    }
    for eu in &x.users {
        let u = w.engine.user(&eu.email).map_err(|e| fail(e.to_string()))?;
        let who = &eu.email;
        if let Some(s) = &eu.status
            && u.status.as_str() != s
        {
            return Err(fail(format!(
                "{who} is {} ({:?}), expected {s}",
                u.status, u.error
            )));
        }
        if let Some(v) = eu.items_synced
            && u.items_synced != v
        {
            return Err(fail(format!(
                "{who}: {} items synced, expected {v}",
                u.items_synced
            )));
        }
        if let Some(v) = eu.items_skipped
            && u.items_skipped != v
        {
            return Err(fail(format!(
                "{who}: {} items skipped, expected {v}",
                u.items_skipped
            )));
        }
        if let Some(want) = &eu.error_contains
            && !u.error.as_deref().unwrap_or("").contains(want.as_str())
        {
            return Err(fail(format!("{who}: error {:?} lacks {want:?}", u.error)));
        }
        let skipped = skipped_items(w, &u.email_address);
        if let Some(want) = &eu.skipped {
            let mut got: BTreeMap<String, u64> = BTreeMap::new();
            for (_, item, reason) in &skipped {
                if item != "(folder)" {
                    *got.entry(reason.clone()).or_default() += 1;
                }
            }
            if &got != want {
                return Err(fail(format!("{who}: skipped {got:?}, expected {want:?}")));
            }
        }
        if let Some(want) = &eu.skipped_folders {
            for (folder, reason) in want {
                if !skipped
                    .iter()
                    .any(|(f, i, r)| f == folder && i == "(folder)" && r == reason)
                {
                    return Err(fail(format!(
                        "{who}: folder {folder} not skipped as {reason} ({skipped:?})"
                    )));
                }
            }
        }
    }
    if let Some(max) = x.max_source_connections {
        let peak = w.imap(n)?.stats().peak();
        if peak > max {
            return Err(fail(format!(
                "{peak} connections at the source at once, at most {max} expected"
            )));
        }
    }
    for a in &x.tenant_has {
        if w.tenant.directory_entry(a).is_none() {
            return Err(fail(format!("the tenant has no recipient {a}")));
        }
    }
    for a in &x.tenant_lacks {
        if let Some(e) = w.tenant.directory_entry(a) {
            return Err(fail(format!("the tenant has {a} ({:?})", e.kind)));
        }
    }
    for (group, count) in &x.members {
        let got = w
            .tenant
            .directory_entry(group)
            .map(|e| e.members.len())
            .ok_or_else(|| fail(format!("the tenant has no group {group}")))?;
        if got != *count {
            return Err(fail(format!("{group} has {got} members, expected {count}")));
        }
    }
    if x.target_equals_source && w.exchange.is_some() {
        return cutover_equals(w, n, x.allow_extra).await;
    }
    if x.target_equals_source {
        for u in w.engine.users(None).map_err(|e| fail(e.to_string()))? {
            if u.user_name.is_empty() || u.status == engine::control::status::UserStatus::Failed {
                continue;
            }
            let batch = w.engine.batch(&u.batch).map_err(|e| fail(e.to_string()))?;
            let endpoint = w
                .engine
                .endpoint("Source")
                .map_err(|e| fail(e.to_string()))?;
            let users = w.imap(n)?.store().users();
            let user = source_user(
                &u.user_name,
                u.user_root.as_deref(),
                endpoint.imap_settings().map_or('*', |s| s.master_separator),
                &users,
            );
            let source = source_messages(
                w,
                &user,
                &u.email_address,
                &batch.settings,
                u.user_root.is_some(),
            )?;
            let target = match &w.imap_target {
                None => target_messages(&w.tenant, &u.email_address)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
                Some(server) => imap_target_messages(server, &u.email_address),
            };
            let r = reconcile(&source, &target);
            let extra_ok = x.allow_extra || r.unexpected.is_empty();
            if !(r.missing.is_empty()
                && r.duplicated.is_empty()
                && r.flag_mismatches.is_empty()
                && r.date_mismatches.is_empty()
                && extra_ok)
            {
                return Err(fail(format!(
                    "{}: target differs from source: {r:#?}",
                    u.email_address
                )));
            }
        }
    }
    Ok(())
}

/// A second fake IMAP server's mailbox as reconciliation input: the copy's key header removed,
/// INBOX spelt as the tenant spells it, the delimiter turned into `/`.
fn imap_target_messages(
    server: &ServerHandle,
    email: &str,
) -> Vec<fake_target::inspect::TargetMessage> {
    let local = email.split('@').next().unwrap_or(email);
    let store = server.store();
    let delimiter = store.delimiter();
    let mut out = Vec::new();
    for f in store.folders(local).unwrap_or_default() {
        let path = f.name.replace(delimiter, "/");
        let path = match path.strip_prefix("INBOX") {
            Some(rest) => format!("Inbox{rest}"),
            None => path,
        };
        for m in store.messages(local, &f.name).unwrap_or_default() {
            let raw: &[u8] = &m.raw;
            let body = if raw.starts_with(engine::target::imap::KEY_HEADER.as_bytes()) {
                let end = raw
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(0, |p| p + 2);
                &raw[end..]
            } else {
                raw
            };
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            out.push(fake_target::inspect::TargetMessage {
                id: format!("{}:{}", f.name, m.uid),
                folder: path.clone(),
                fingerprint: fingerprint(body),
                flags: ItemFlags::from_imap(&flags),
                received_time: m.internal_date.to_utc(),
            });
        }
    }
    out
}

fn skipped_items(w: &World, email: &str) -> Vec<(String, String, String)> {
    w.engine
        .db
        .read(|tx| tx.skipped_items(email))
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.folder, s.item, s.reason.to_string()))
        .collect()
}

/// The source side of a reconciliation, through the engine's own folder plan, without what
/// was skipped for a documented reason.
fn source_messages(
    w: &World,
    user: &str,
    email: &str,
    settings: &BatchSettings,
    via_user_root: bool,
) -> Result<Vec<SourceMessage>, String> {
    let store = w.imap(0)?.store();
    let delimiter = store.delimiter();
    // Through a UserRoot (Courier's shared tree) every folder is below the user's INBOX.
    let relative = |name: &str| {
        let under = format!("INBOX{delimiter}");
        if !via_user_root || name.eq_ignore_ascii_case("INBOX") || name.starts_with(&under) {
            name.to_string()
        } else {
            format!("{under}{name}")
        }
    };
    let folders: Vec<SourceFolder> = store
        .folders(user)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|f| SourceFolder {
            relative: relative(&f.name),
            name: f.name,
            delimiter: Some(delimiter),
            selectable: f.selectable,
            content: Default::default(),
        })
        .collect();
    let skipped: HashSet<(String, String)> = skipped_items(w, email)
        .into_iter()
        .map(|(f, i, _)| (f, i))
        .collect();
    let mut out = Vec::new();
    for (folder, p) in plan(
        &folders,
        &settings.exclude_folders,
        &settings.include_folders,
    ) {
        let Plan::Copy { target, .. } = p else {
            continue;
        };
        for m in store
            .messages(user, &folder.name)
            .map_err(|e| e.to_string())?
        {
            if skipped.contains(&(folder.relative.clone(), format!("UID {}", m.uid))) {
                continue;
            }
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            out.push(SourceMessage {
                label: format!("{} UID {}", folder.name, m.uid),
                folder: target.clone(),
                fingerprint: fingerprint(&m.raw),
                flags: ItemFlags::from_imap(&flags),
                received_time: Some(m.internal_date.to_utc()),
            });
        }
    }
    Ok(out)
}

/// JUnit XML that standard parsers read: one testsuite, one testcase per file.
pub fn junit(outcomes: &[Outcome]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let failures = outcomes.iter().filter(|o| !o.passed).count();
    let total: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n  <testsuite name=\"mailmig scenarios\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">\n",
        outcomes.len(),
        outcomes.len()
    );
    for o in outcomes {
        x.push_str(&format!(
            "    <testcase classname=\"scenarios\" name=\"{}\" file=\"{}\" time=\"{:.3}\"",
            esc(&o.name),
            esc(&o.file.display().to_string()),
            o.seconds
        ));
        match &o.failure {
            None => x.push_str("/>\n"),
            Some(f) => x.push_str(&format!(
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                esc(f.lines().next().unwrap_or("")),
                esc(f)
            )),
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}
