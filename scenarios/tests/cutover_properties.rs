//! Property tests of a cutover (fake-exchange -> engine -> fake tenant, in-process):
//! (a) provisioning converges to one tenant directory whatever the order of the organisation's
//! recipients, the re-runs and the kills, and every generated password is kept;
//! (b) content under arbitrary changes at the source (new, moved and deleted items, read flags)
//! and kills ends with target == source for mail, calendar and contacts, nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use engine::Engine;
use engine::clock::ManualClock;
use engine::control::NewBatch;
use engine::control::endpoint::Endpoint;
use engine::control::status::UserStatus;
use engine::pipeline::{Copier, CopyOptions};
use engine::provisioning::passwords_path;
use engine::service::{RunOptions, Service};
use engine::source::SourceSettings;
use engine::target::Target;
use fake_exchange::org::FolderClass;
use fake_exchange::{Config, FakeExchange, RunningExchange};
use fake_target::inspect::{reconcile, target_messages};
use fake_target::{Settings, Tenant};
use harness::TenantTarget;
use harness::crash::{CrashSwitch, Crashing};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn seed_config() -> Config {
    Config::from_file(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fake-exchange.toml"
    )))
    .unwrap()
}

struct World {
    exchange: RunningExchange,
    dir: tempfile::TempDir,
    clock: ManualClock,
    engine: Arc<Engine>,
    tenant: Tenant,
    target: Arc<TenantTarget>,
}

/// The organisation, an endpoint on it, the tenant, and the cutover batch created -AutoStart.
async fn world(config: Config) -> World {
    let exchange = FakeExchange::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, exchange.ca_pem()).unwrap();
    let clock = ManualClock::new(chrono::Utc::now());
    let engine =
        Arc::new(Engine::open(&dir.path().join("state"), Arc::new(clock.clone())).unwrap());
    engine
        .endpoint_new(Endpoint::new(
            "CutoverEndpoint",
            SourceSettings::ExchangeOutlookAnywhere(Box::new(harness::cutover_settings(
                &exchange, &ca,
            ))),
        ))
        .unwrap();
    let tenant = Tenant::with_clock(
        Settings {
            accepted_domains: vec!["contoso.com".into()],
            ..Settings::default()
        },
        Arc::new(clock.clone()),
    );
    let target = Arc::new(TenantTarget::new(tenant.clone()));
    engine
        .cutover_batch_new(
            NewBatch {
                name: "CutoverBatch".into(),
                source_endpoint: "CutoverEndpoint".into(),
                autostart: true,
                ..NewBatch::default()
            },
            &*target,
        )
        .await
        .unwrap();
    World {
        exchange,
        dir,
        clock,
        engine,
        tenant,
        target,
    }
}

/// One `mailmig run --until-idle`, in-process (dropping it mid-way is the kill).
fn run(w: &World) -> impl Future<Output = Result<(), engine::Error>> + use<> {
    run_with(w, w.target.clone())
}

fn run_with(
    w: &World,
    target: Arc<dyn Target>,
) -> impl Future<Output = Result<(), engine::Error>> + use<> {
    let options = CopyOptions {
        fetch_chunk: 2,
        ..CopyOptions::default()
    };
    let copy = Copier::new(w.engine.clone(), target.clone(), options);
    let service = Service::new(w.engine.clone(), Arc::new(copy), target);
    async move {
        service
            .run(RunOptions {
                poll: Duration::from_millis(1),
                ..RunOptions::default()
            })
            .await
    }
}

async fn kill_after(w: &World, ms: u64) {
    let _ = tokio::time::timeout(Duration::from_millis(ms), run(w)).await;
}

/// A run killed right after the tenant applied its n-th write, before the engine heard back.
async fn crash_after(w: &World, writes: usize) {
    let switch = CrashSwitch::after(writes);
    let target = Arc::new(Crashing {
        inner: w.target.clone(),
        switch: switch.clone(),
    });
    tokio::select! {
        _ = run_with(w, target) => {}
        _ = switch.crashed() => {}
    }
}

// ----- (a) provisioning converges -----

#[derive(Clone, Debug)]
enum Step {
    Kill(u64),
    Crash(usize),
    Run,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..200u64).prop_map(Step::Kill),
        3 => (0..40usize).prop_map(Step::Crash),
        1 => Just(Step::Run),
    ]
}

/// The seed organisation without mail, plus generated mailboxes, contacts and groups (with
/// members and owners), all listed explicitly so that their order can be shuffled.
fn directory_config(order: &[usize]) -> Config {
    let mut config = seed_config();
    for r in &mut config.recipients {
        r.content = Some(fake_exchange::config::ContentSection {
            inbox: 0,
            sent_items: 0,
            user_folders: Vec::new(),
            per_user_folder: 0,
            calendar: 0,
            contacts: 0,
            ..Default::default()
        });
    }
    let generate = fake_exchange::config::GenerateSection {
        mailboxes: 6,
        mail_contacts: 3,
        distribution_groups: 2,
        group_size: 4,
        content: Some(fake_exchange::config::ContentSection {
            inbox: 0,
            sent_items: 0,
            user_folders: Vec::new(),
            per_user_folder: 0,
            calendar: 0,
            contacts: 0,
            ..Default::default()
        }),
        ..Default::default()
    };
    config
        .recipients
        .extend(fake_exchange::generate::recipients(
            &generate,
            &config.organisation.primary_domain,
            config.organisation.seed,
        ));
    if !order.is_empty() {
        let all = std::mem::take(&mut config.recipients);
        config.recipients = order.iter().map(|&i| all[i].clone()).collect();
    }
    config
}

fn directory_size() -> usize {
    directory_config(&[]).recipients.len()
}

/// What a user would compare: every tenant recipient's directory entry (without the clock's
/// grace date), every migration user's status, and the passwords file (address -> password).
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    directory: BTreeMap<String, serde_json::Value>,
    statuses: BTreeMap<String, String>,
}

async fn provisioned(order: &[usize], steps: &[Step]) -> Outcome {
    let w = world(directory_config(order)).await;
    for s in steps {
        match s {
            Step::Kill(ms) => kill_after(&w, *ms).await,
            Step::Crash(n) => crash_after(&w, *n).await,
            Step::Run => run(&w).await.unwrap(),
        }
    }
    run(&w).await.unwrap();
    let mut directory = BTreeMap::new();
    for r in w.tenant.recipients() {
        let mut entry = w.tenant.directory_entry(&r.address).unwrap();
        entry.grace_ends = None;
        directory.insert(
            r.address.to_ascii_lowercase(),
            serde_json::to_value(&entry).unwrap(),
        );
    }
    let statuses = w
        .engine
        .users(None)
        .unwrap()
        .into_iter()
        .map(|u| (u.email_address.to_ascii_lowercase(), u.status.to_string()))
        .collect();
    // Every recipient that signs in has its password in the file, once, and it is the one the
    // tenant set: a kill between the tenant's creation and the file's write loses none.
    let text = std::fs::read_to_string(passwords_path(&w.dir.path().join("state"))).unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let mut passwords: HashMap<String, String> = HashMap::new();
    for row in rows.records() {
        let row = row.unwrap();
        let address = row[0].to_ascii_lowercase();
        let previous = passwords.insert(address.clone(), row[1].to_string());
        assert!(
            previous.is_none_or(|p| p == row[1]),
            "{address} has two different passwords in the file"
        );
    }
    for address in directory.keys() {
        let set = w.tenant.initial_password(address);
        assert_eq!(
            passwords.get(address),
            set.as_ref(),
            "{address}: the file and the tenant disagree on the password"
        );
    }
    drop(w.exchange);
    Outcome {
        directory,
        statuses,
    }
}

static REFERENCE: OnceLock<Outcome> = OnceLock::new();

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn provisioning_converges_whatever_the_order_the_reruns_and_the_kills(
        order in Just((0..directory_size()).collect::<Vec<_>>()).prop_shuffle(),
        steps in prop::collection::vec(step(), 0..8),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let reference = match REFERENCE.get() {
                Some(r) => r.clone(),
                None => {
                    let r = provisioned(&(0..directory_size()).collect::<Vec<_>>(), &[]).await;
                    REFERENCE.get_or_init(|| r).clone()
                }
            };
            assert!(reference.directory.len() > 15, "{:?}", reference.directory.keys());
            let got = provisioned(&order, &steps).await;
            assert_eq!(
                got.directory.keys().collect::<Vec<_>>(),
                reference.directory.keys().collect::<Vec<_>>()
            );
            for (address, entry) in &reference.directory {
                assert_eq!(&got.directory[address], entry, "{address}");
            }
            assert_eq!(got.statuses, reference.statuses);
        });
    }
}

// ----- (b) content converges under changes and kills -----

#[derive(Clone, Debug)]
enum Change {
    Deliver(usize, usize),
    Read(usize, usize, bool),
    Delete(usize, usize),
    Move(usize, usize, usize),
    Kill(u64),
    Crash(usize),
    Run,
    NextDay,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        1 => (0..5usize, 0..8usize).prop_map(|(m, f)| Change::Deliver(m, f)),
        1 => (0..5usize, 0..40usize, any::<bool>()).prop_map(|(m, i, r)| Change::Read(m, i, r)),
        1 => (0..5usize, 0..40usize).prop_map(|(m, i)| Change::Delete(m, i)),
        1 => (0..5usize, 0..40usize, 0..8usize).prop_map(|(m, i, f)| Change::Move(m, i, f)),
        1 => (0..400u64).prop_map(Change::Kill),
        2 => (0..120usize).prop_map(Change::Crash),
        1 => Just(Change::Run),
        1 => Just(Change::NextDay),
    ]
}

const MAILBOXES: [&str; 5] = [
    "alice@contoso.com",
    "bob@contoso.com",
    "carol@contoso.com",
    "dave@contoso.com",
    "erin@contoso.com",
];

/// A mailbox's folders that a cutover copies: (path, class, item ids).
fn folders(w: &World, mailbox: &str) -> Vec<(String, FolderClass, Vec<u64>)> {
    let org = w.exchange.org();
    let state = org.lock();
    let mb = state.mailbox(mailbox).unwrap();
    let path = |mut id: u32| {
        let mut parts = Vec::new();
        while let Some(parent) = mb.folders[id as usize].parent {
            if mb.folders[id as usize].class == FolderClass::Root {
                break;
            }
            parts.push(mb.folders[id as usize].name.clone());
            id = parent;
        }
        parts.reverse();
        parts.join("/")
    };
    mb.folders
        .iter()
        .filter(|f| {
            matches!(
                f.class,
                FolderClass::Mail | FolderClass::Calendar | FolderClass::Contacts
            ) && f.class != FolderClass::Root
                && f.parent.is_some()
        })
        .map(|f| (path(f.id), f.class, f.items.keys().copied().collect()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn content_converges_under_changes_and_kills(
        changes in prop::collection::vec(change(), 0..14),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let w = world(seed_config()).await;
            let org = w.exchange.org().clone();
            // (folder, fingerprint) of items gone from a folder: their copies may stay in the
            // target (a cutover doesn't delete), nothing else may be there.
            let mut gone: BTreeSet<(String, String)> = BTreeSet::new();
            let mut moved: BTreeSet<u64> = BTreeSet::new();
            let mut delivered = 0;
            let fingerprint_of = |mailbox: &str, id: u64| {
                let state = org.lock();
                let mb = state.mailbox(mailbox).unwrap();
                mb.folders
                    .iter()
                    .find_map(|f| f.items.get(&id))
                    .map(|i| fake_target::inspect::fingerprint(&i.mime))
                    .unwrap()
            };
            for c in &changes {
                match *c {
                    Change::Deliver(m, f) => {
                        let fs = folders(&w, MAILBOXES[m]);
                        let (path, class, _) = &fs[f % fs.len()];
                        delivered += 1;
                        let mime = fake_exchange::generate::item_for(*class, MAILBOXES[m], 7, delivered);
                        org.deliver(MAILBOXES[m], path, &mime).unwrap();
                    }
                    Change::Read(m, i, read) => {
                        let ids: Vec<u64> = folders(&w, MAILBOXES[m])
                            .into_iter()
                            .filter(|(_, class, _)| *class == FolderClass::Mail)
                            .flat_map(|(_, _, ids)| ids)
                            .collect();
                        if !ids.is_empty() {
                            org.set_read(MAILBOXES[m], ids[i % ids.len()], read).unwrap();
                        }
                    }
                    Change::Delete(m, i) => {
                        let all: Vec<(String, u64)> = folders(&w, MAILBOXES[m])
                            .into_iter()
                            .flat_map(|(p, _, ids)| ids.into_iter().map(move |id| (p.clone(), id)))
                            .collect();
                        if let Some((path, id)) = all.get(i % all.len().max(1)).cloned() {
                            gone.insert((path.to_ascii_lowercase(), fingerprint_of(MAILBOXES[m], id)));
                            org.delete_item(MAILBOXES[m], id).unwrap();
                        }
                    }
                    Change::Move(m, i, f) => {
                        // Mail between mail folders, each item at most once (an item moved
                        // back would be a new item where its old copy already is).
                        let fs = folders(&w, MAILBOXES[m]);
                        let mail: Vec<&(String, FolderClass, Vec<u64>)> =
                            fs.iter().filter(|(_, c, _)| *c == FolderClass::Mail).collect();
                        let all: Vec<(String, u64)> = mail
                            .iter()
                            .flat_map(|(p, _, ids)| ids.iter().map(move |id| (p.clone(), *id)))
                            .filter(|(_, id)| !moved.contains(id))
                            .collect();
                        let Some((from, id)) = all.get(i % all.len().max(1)).cloned() else {
                            continue;
                        };
                        let to = &mail[f % mail.len()].0;
                        if *to == from {
                            continue;
                        }
                        gone.insert((from.to_ascii_lowercase(), fingerprint_of(MAILBOXES[m], id)));
                        let new = org.move_item(MAILBOXES[m], id, to).unwrap();
                        moved.insert(new);
                    }
                    Change::Kill(ms) => kill_after(&w, ms).await,
                    Change::Crash(n) => crash_after(&w, n).await,
                    Change::Run => run(&w).await.unwrap(),
                    Change::NextDay => w.clock.advance(chrono::Duration::hours(24)),
                }
            }
            // Converge: a run, then the next day's incremental sync.
            run(&w).await.unwrap();
            w.clock.advance(chrono::Duration::hours(24));
            run(&w).await.unwrap();
            for mailbox in MAILBOXES {
                let user = w.engine.user(mailbox).unwrap();
                assert_eq!(user.status, UserStatus::Synced, "{mailbox}: {:?}", user.error);
                let source = harness::source_from_fake_exchange(&org, mailbox).unwrap();
                let target = target_messages(&w.tenant, mailbox).await.unwrap();
                let r = reconcile(&source, &target);
                assert!(r.missing.is_empty(), "{mailbox} lost: {r:#?}");
                assert!(r.duplicated.is_empty(), "{mailbox} duplicated: {r:#?}");
                assert!(r.flag_mismatches.is_empty(), "{mailbox} read flags: {r:#?}");
                assert!(r.date_mismatches.is_empty(), "{mailbox} dates: {r:#?}");
                for id in &r.unexpected {
                    let t = target.iter().find(|t| &t.id == id).unwrap();
                    assert!(
                        gone.contains(&(t.folder.to_ascii_lowercase(), t.fingerprint.clone())),
                        "{mailbox}: {} in {} was never at the source there",
                        t.id,
                        t.folder
                    );
                }
            }
        });
    }
}
