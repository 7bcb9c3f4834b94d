//! Provisioning a cutover's recipients into the tenant (cutover.md §4), in two passes: every
//! object first (created or updated by type, Exchange's different-type refusal failing that
//! recipient), then what needs the others to exist — manager, delegates, owners, and group
//! members in chunks of 100. A recipient whose links or members are not there yet stays
//! ProvisionUpdating. Every call is idempotent in the tenant, so a re-run (after a crash or a
//! fix) converges to the same directory. The batch rules that refuse a cutover batch outright
//! are [`check_batch`].

use std::collections::{HashMap, HashSet};

use mailmig_model::{DirectoryKind, DirectoryLinks, MEMBERS_PER_CALL, OrganizationInfo};
use mailmig_model::{DirectoryRefusal, ProvisionOutcome};

use super::directory::Plan;
use crate::target::{Target, TargetError};

/// At most this many mailboxes in one cutover batch (150 recommended).
pub const MAX_MAILBOXES: usize = 2_000;
pub const RECOMMENDED_MAILBOXES: usize = 150;
/// At most this many recipients of any kind.
pub const MAX_RECIPIENTS: usize = 50_000;

/// Where one recipient stands after a provisioning run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProvisionState {
    /// The object and all its links and members exist.
    Done,
    /// The object exists; links or members wait for objects that do not (yet).
    Updating(String),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provisioned {
    pub identity: String,
    pub kind: DirectoryKind,
    pub state: ProvisionState,
    /// Set when this run created a recipient that signs in; shown once, kept owner-only.
    pub initial_password: Option<String>,
}

/// Why a cutover batch cannot be created (plain words: Exchange's own texts are not published
/// for these; cutover.md §4 and §6).
pub fn check_batch(
    plan: &Plan,
    org: &OrganizationInfo,
    other_cutover_batch: Option<&str>,
) -> Result<(), String> {
    if let Some(other) = other_cutover_batch {
        return Err(format!(
            "The cutover migration batch \"{other}\" already exists: an organisation is migrated by one cutover batch. Remove it before creating another."
        ));
    }
    if org.directory_sync {
        return Err(DirectoryRefusal::DirectorySyncOn.message());
    }
    let mailboxes = plan.mailboxes();
    if mailboxes > MAX_MAILBOXES {
        return Err(format!(
            "The organisation has {mailboxes} mailboxes: a cutover migration moves at most {MAX_MAILBOXES} ({RECOMMENDED_MAILBOXES} are recommended). Use a staged or IMAP migration instead."
        ));
    }
    let recipients = plan.recipients.len();
    if recipients > MAX_RECIPIENTS {
        return Err(format!(
            "The organisation has {recipients} recipients: a cutover migration takes at most {MAX_RECIPIENTS}."
        ));
    }
    let Some(domain) = plan.primary_domain() else {
        return Err(
            "The organisation has no mailbox with an SMTP address: there is nothing to migrate."
                .into(),
        );
    };
    if !org
        .accepted_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        return Err(format!(
            "The primary SMTP domain {domain} of the organisation isn't an accepted domain of the tenant. Add and verify it in the tenant, then create the batch again."
        ));
    }
    Ok(())
}

/// One provisioning run over the plan. A target that does not answer ends the run with its
/// error (nothing is half-recorded: the caller records results only from a finished run, and
/// a re-run repeats what was done without harm).
///
/// `passwords` (by lower-cased identity) are the initial passwords chosen for objects not yet
/// created: a new object gets its own, and one that exists although a password was chosen for
/// it was created with it by a run that crashed before hearing back, so it is reported as made.
pub async fn provision(
    plan: &Plan,
    target: &dyn Target,
    passwords: &HashMap<String, String>,
) -> Result<Vec<Provisioned>, TargetError> {
    let mut out: Vec<Provisioned> = Vec::with_capacity(plan.recipients.len());
    // First pass: the objects.
    for p in &plan.recipients {
        let mut r = Provisioned {
            identity: p.identity.clone(),
            kind: p.kind,
            state: ProvisionState::Done,
            initial_password: None,
        };
        if let Some(f) = &p.failure {
            r.state = ProvisionState::Failed(f.clone());
        } else {
            let chosen = passwords.get(&p.identity.to_ascii_lowercase());
            let mut object = p.object.clone();
            object.initial_password = chosen.cloned();
            match target.provision(&object).await? {
                Ok(ProvisionOutcome::Created { initial_password }) => {
                    r.initial_password = initial_password;
                }
                Ok(ProvisionOutcome::Updated) => r.initial_password = chosen.cloned(),
                Err(refusal) => r.state = ProvisionState::Failed(refusal.message()),
            }
        }
        out.push(r);
    }
    let exists: HashSet<String> = out
        .iter()
        .filter(|r| !matches!(r.state, ProvisionState::Failed(_)))
        .map(|r| r.identity.to_ascii_lowercase())
        .collect();
    let present = |a: &String| exists.contains(&a.to_ascii_lowercase());
    let index: HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, r)| (r.identity.to_ascii_lowercase(), i))
        .collect();
    // Second pass: links and members, once the objects exist.
    for p in &plan.recipients {
        let i = index[&p.identity.to_ascii_lowercase()];
        if matches!(out[i].state, ProvisionState::Failed(_)) {
            continue;
        }
        let mut waiting: Vec<String> = Vec::new();
        let links = DirectoryLinks {
            manager: p.links.manager.clone().filter(|m| {
                present(m) || {
                    waiting.push(m.clone());
                    false
                }
            }),
            delegates: keep_present(&p.links.delegates, &present, &mut waiting),
            owners: keep_present(&p.links.owners, &present, &mut waiting),
        };
        if links != DirectoryLinks::default()
            && let Err(refusal) = target.set_links(&p.identity, &links).await?
        {
            waiting.push(refusal.message());
        }
        if p.kind.is_group() {
            let members = keep_present(&p.members, &present, &mut waiting);
            for chunk in members.chunks(MEMBERS_PER_CALL) {
                if let Err(refusal) = target.add_members(&p.identity, chunk).await? {
                    waiting.push(refusal.message());
                }
            }
        }
        if !waiting.is_empty() {
            out[i].state = ProvisionState::Updating(format!(
                "Waiting for recipients that aren't provisioned: {}",
                waiting.join(", ")
            ));
        }
    }
    Ok(out)
}

fn keep_present(
    list: &[String],
    present: &impl Fn(&String) -> bool,
    waiting: &mut Vec<String>,
) -> Vec<String> {
    let mut keep = Vec::new();
    for a in list {
        if present(a) {
            keep.push(a.clone());
        } else {
            waiting.push(a.clone());
        }
    }
    keep
}
