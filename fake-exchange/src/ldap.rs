//! The directory over LDAP (read-only), as Active Directory answers: the rootDSE, simple bind
//! (a DN, a UPN or `NETBIOS\user`), search with base / one-level / subtree scope and AD's filter
//! forms (including `objectCategory=person` shorthand and the bitwise matching rules), attribute
//! selection, and the paged-results control with AD's 1,000-entry page limit. Plain LDAP and
//! LDAPS (the organisation's certificate); codec from ldap3_proto.
//!
//! Not modelled: range retrieval of `member` (groups here stay below AD's 1,500 values),
//! StartTLS, SASL, writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindResponse, LdapExtendedResponse, LdapFilter, LdapMsg, LdapOp,
    LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest, LdapSearchResultEntry,
    LdapSearchScope,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

use crate::config::RecipientKind;
use crate::org::{OrgState, Principal, Recipient};
use crate::server::Shared;

/// AD's MaxPageSize.
pub const MAX_PAGE: usize = 1000;
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// The directory, plain (`tls` none) or LDAPS.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    crate::server::accept_loop(listener, tls, stop, move |io| session(io, shared.clone())).await
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: S, shared: Arc<Shared>) {
    let mut framed = Framed::new(stream, LdapCodec::default());
    let mut bound: Option<Principal> = None;
    // The directory as the first page of a paged search saw it: AD keeps a paged search's state
    // on the server, so later pages come from the same view (and are not rebuilt per page).
    let mut snapshot: Option<Arc<Vec<Entry>>> = None;
    loop {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(IDLE_TIMEOUT, framed.next()).await else {
            return;
        };
        let replies = match msg.op {
            LdapOp::BindRequest(req) => {
                let (res, who) = bind(&shared, &req.dn, &req.cred);
                bound = who;
                vec![LdapMsg {
                    msgid: msg.msgid,
                    op: LdapOp::BindResponse(LdapBindResponse {
                        res,
                        saslcreds: None,
                    }),
                    ctrl: vec![],
                }]
            }
            LdapOp::UnbindRequest => return,
            LdapOp::SearchRequest(req) => search(
                &shared,
                bound.as_ref(),
                &mut snapshot,
                msg.msgid,
                &req,
                &msg.ctrl,
            ),
            LdapOp::AbandonRequest(_) => Vec::new(),
            LdapOp::ExtendedRequest(_) => vec![LdapMsg {
                msgid: msg.msgid,
                op: LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: result(
                        LdapResultCode::ProtocolError,
                        "00000057: LdapErr: DSID-0C090E1A, comment: Error in extended operation",
                    ),
                    name: None,
                    value: None,
                }),
                ctrl: vec![],
            }],
            other => {
                // Writes are not served: the directory is read-only here.
                let res = result(
                    LdapResultCode::UnwillingToPerform,
                    "00000057: the fake directory is read-only",
                );
                let op = match other {
                    LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(res),
                    LdapOp::AddRequest(_) => LdapOp::AddResponse(res),
                    LdapOp::DelRequest(_) => LdapOp::DelResponse(res),
                    LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(res),
                    LdapOp::CompareRequest(_) => LdapOp::CompareResult(res),
                    _ => return,
                };
                vec![LdapMsg {
                    msgid: msg.msgid,
                    op,
                    ctrl: vec![],
                }]
            }
        };
        for r in replies {
            if framed.send(r).await.is_err() {
                return;
            }
        }
    }
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_string(),
        referral: vec![],
    }
}

fn bind(shared: &Shared, dn: &str, cred: &LdapBindCred) -> (LdapResult, Option<Principal>) {
    let LdapBindCred::Simple(password) = cred else {
        return (
            result(
                LdapResultCode::AuthMethodNotSupported,
                "00002028: LdapErr: DSID-0C090202, comment: only simple binds here",
            ),
            None,
        );
    };
    if dn.is_empty() && password.is_empty() {
        return (result(LdapResultCode::Success, ""), None);
    }
    let state = shared.org.lock();
    // A DN names an admin by its entry; otherwise the name is a UPN or NETBIOS\user.
    let username = state
        .admins
        .iter()
        .find(|a| state.admin_dn(a).eq_ignore_ascii_case(dn))
        .map(|a| a.address.clone())
        .or_else(|| {
            state
                .recipients
                .iter()
                .find(|r| state.recipient_dn(r).eq_ignore_ascii_case(dn))
                .and_then(|r| r.address.clone())
        })
        .unwrap_or_else(|| dn.to_string());
    match state.authenticate(&username, password) {
        Some(p) => (result(LdapResultCode::Success, ""), Some(p)),
        None => (
            result(
                LdapResultCode::InvalidCredentials,
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563",
            ),
            None,
        ),
    }
}

/// One directory entry: its DN and attributes (canonical names, string values).
#[derive(Clone, Debug)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    fn values(&self, name: &str) -> Option<&[String]> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

fn push(attrs: &mut Vec<(String, Vec<String>)>, name: &str, values: Vec<String>) {
    if !values.is_empty() {
        attrs.push((name.to_string(), values));
    }
}

fn one(v: impl Into<String>) -> Vec<String> {
    vec![v.into()]
}

/// (msExchRecipientTypeDetails, msExchRecipientDisplayType) of a kind.
pub fn type_codes(kind: RecipientKind) -> (i64, i64) {
    match kind {
        RecipientKind::UserMailbox => (1, 1_073_741_824),
        RecipientKind::RoomMailbox => (16, 7),
        RecipientKind::EquipmentMailbox => (32, 8),
        RecipientKind::MailUser => (128, 6),
        RecipientKind::MailContact => (64, 6),
        RecipientKind::DistributionGroup => (256, 1),
        RecipientKind::SecurityGroup => (1024, 1_073_741_833),
        RecipientKind::PublicFolder => (4096, 2),
    }
}

/// Each address's groups (their DNs), for `memberOf`: built once per directory read, so that a
/// directory of 50,000 recipients is not searched once per recipient.
fn member_of_index(state: &OrgState) -> HashMap<String, Vec<String>> {
    let mut index: HashMap<String, Vec<String>> = HashMap::new();
    for g in state.recipients.iter().filter(|g| g.kind.is_group()) {
        let dn = state.recipient_dn(g);
        for m in &g.members {
            index
                .entry(m.to_ascii_lowercase())
                .or_default()
                .push(dn.clone());
        }
    }
    index
}

fn recipient_entry(
    state: &OrgState,
    member_of: &HashMap<String, Vec<String>>,
    r: &Recipient,
) -> Entry {
    let base = state.base_dn();
    let dn = state.recipient_dn(r);
    let schema = |c: &str| format!("CN={c},CN=Schema,CN=Configuration,{base}");
    let (classes, category): (&[&str], String) = match r.kind {
        RecipientKind::MailContact => (
            &["top", "person", "organizationalPerson", "contact"],
            schema("Person"),
        ),
        RecipientKind::DistributionGroup | RecipientKind::SecurityGroup => {
            (&["top", "group"], schema("Group"))
        }
        RecipientKind::PublicFolder => (&["top", "publicFolder"], schema("ms-Exch-Public-Folder")),
        _ => (
            &["top", "person", "organizationalPerson", "user"],
            schema("Person"),
        ),
    };
    let (details, display) = type_codes(r.kind);
    let dns = |list: &[String]| -> Vec<String> {
        list.iter().filter_map(|a| state.dn_of_address(a)).collect()
    };
    let mut a = Vec::new();
    push(
        &mut a,
        "objectClass",
        classes.iter().map(|c| c.to_string()).collect(),
    );
    push(&mut a, "objectCategory", one(category));
    push(&mut a, "distinguishedName", one(dn.clone()));
    push(&mut a, "cn", one(r.cn()));
    push(&mut a, "name", one(r.cn()));
    push(&mut a, "displayName", one(r.display_name.clone()));
    push(&mut a, "mailNickname", one(r.alias.clone()));
    if matches!(
        r.kind,
        RecipientKind::UserMailbox
            | RecipientKind::RoomMailbox
            | RecipientKind::EquipmentMailbox
            | RecipientKind::MailUser
    ) {
        push(&mut a, "sAMAccountName", one(r.alias.clone()));
        push(&mut a, "userAccountControl", one("512"));
        if let Some(addr) = &r.address {
            push(&mut a, "userPrincipalName", one(addr.clone()));
        }
    }
    if let Some(addr) = &r.address {
        push(&mut a, "mail", one(addr.clone()));
    }
    push(&mut a, "proxyAddresses", r.proxy_addresses.clone());
    push(&mut a, "legacyExchangeDN", one(r.legacy_dn.clone()));
    push(
        &mut a,
        "msExchRecipientTypeDetails",
        one(details.to_string()),
    );
    push(
        &mut a,
        "msExchRecipientDisplayType",
        one(display.to_string()),
    );
    if r.hidden {
        push(&mut a, "msExchHideFromAddressLists", one("TRUE"));
    }
    if r.um_enabled {
        push(&mut a, "msExchUMEnabledFlags", one("831"));
        push(
            &mut a,
            "msExchUMRecipientDialPlanLink",
            one(format!(
                "CN=Default Dial Plan,CN=UM DialPlan Container,CN={},CN=Microsoft Exchange,CN=Services,CN=Configuration,{base}",
                state.name
            )),
        );
    }
    if let Some(m) = &r.manager {
        push(&mut a, "manager", dns(std::slice::from_ref(m)));
    }
    push(&mut a, "publicDelegates", dns(&r.delegates));
    let owners = dns(&r.managed_by);
    if let Some((first, rest)) = owners.split_first() {
        push(&mut a, "managedBy", one(first.clone()));
        push(&mut a, "msExchCoManagedByLink", rest.to_vec());
    }
    if r.kind.is_group() {
        push(&mut a, "member", dns(&r.members));
        let group_type = if r.kind == RecipientKind::SecurityGroup {
            "-2147483640"
        } else {
            "8"
        };
        push(&mut a, "groupType", one(group_type));
    }
    let groups = r
        .address
        .as_ref()
        .and_then(|addr| member_of.get(&addr.to_ascii_lowercase()))
        .cloned()
        .unwrap_or_default();
    push(&mut a, "memberOf", groups);
    if let Some(db) = &r.database {
        push(&mut a, "homeMDB", one(state.database_dn(db)));
        let server = state
            .databases
            .iter()
            .find(|d| &d.name == db)
            .map(|d| d.server.clone())
            .unwrap_or_default();
        push(
            &mut a,
            "msExchHomeServerName",
            one(format!(
                "/o={}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn={}",
                state.name,
                server.split('.').next().unwrap_or("").to_ascii_uppercase()
            )),
        );
    }
    if let Some(t) = &r.target_address {
        push(&mut a, "targetAddress", one(t.clone()));
    }
    for (name, v) in [
        ("givenName", &r.first_name),
        ("sn", &r.last_name),
        ("title", &r.title),
        ("department", &r.department),
        ("telephoneNumber", &r.phone),
    ] {
        if let Some(v) = v {
            push(&mut a, name, one(v.clone()));
        }
    }
    Entry { dn, attrs: a }
}

/// Every entry of the directory: the domain, the Users container, the admins, the Domain
/// Admins group, and the recipients.
pub fn entries(state: &OrgState) -> Vec<Entry> {
    let base = state.base_dn();
    let schema = |c: &str| format!("CN={c},CN=Schema,CN=Configuration,{base}");
    let mut out = vec![
        Entry {
            dn: base.clone(),
            attrs: vec![
                (
                    "objectClass".into(),
                    vec!["top".into(), "domain".into(), "domainDNS".into()],
                ),
                ("objectCategory".into(), one(schema("Domain-DNS"))),
                ("distinguishedName".into(), one(base.clone())),
                ("name".into(), one(state.netbios.clone())),
            ],
        },
        Entry {
            dn: format!("CN=Users,{base}"),
            attrs: vec![
                ("objectClass".into(), vec!["top".into(), "container".into()]),
                ("objectCategory".into(), one(schema("Container"))),
                ("distinguishedName".into(), one(format!("CN=Users,{base}"))),
                ("cn".into(), one("Users")),
            ],
        },
    ];
    let domain_admins = format!("CN=Domain Admins,CN=Users,{base}");
    let mut da_members = Vec::new();
    for admin in &state.admins {
        let dn = state.admin_dn(admin);
        let sam = admin.address.split('@').next().unwrap_or("").to_string();
        let mut attrs = vec![
            (
                "objectClass".to_string(),
                vec![
                    "top".into(),
                    "person".into(),
                    "organizationalPerson".into(),
                    "user".into(),
                ],
            ),
            ("objectCategory".into(), one(schema("Person"))),
            ("distinguishedName".into(), one(dn.clone())),
            ("sAMAccountName".into(), one(sam)),
            ("userPrincipalName".into(), one(admin.address.clone())),
            ("userAccountControl".into(), one("512")),
        ];
        if admin.domain_admins {
            attrs.push(("memberOf".into(), one(domain_admins.clone())));
            da_members.push(dn.clone());
        }
        out.push(Entry { dn, attrs });
    }
    let mut da = vec![
        (
            "objectClass".to_string(),
            vec!["top".into(), "group".into()],
        ),
        ("objectCategory".into(), one(schema("Group"))),
        ("distinguishedName".into(), one(domain_admins.clone())),
        ("cn".into(), one("Domain Admins")),
        ("sAMAccountName".into(), one("Domain Admins")),
        ("groupType".into(), one("-2147483646")),
    ];
    if !da_members.is_empty() {
        da.push(("member".into(), da_members));
    }
    out.push(Entry {
        dn: domain_admins,
        attrs: da,
    });
    let member_of = member_of_index(state);
    out.extend(
        state
            .recipients
            .iter()
            .map(|r| recipient_entry(state, &member_of, r)),
    );
    out
}

fn root_dse(state: &OrgState) -> Entry {
    let base = state.base_dn();
    let host = state.ldap_server().to_string();
    Entry {
        dn: String::new(),
        attrs: vec![
            ("defaultNamingContext".into(), one(base.clone())),
            ("rootDomainNamingContext".into(), one(base.clone())),
            (
                "configurationNamingContext".into(),
                one(format!("CN=Configuration,{base}")),
            ),
            (
                "schemaNamingContext".into(),
                one(format!("CN=Schema,CN=Configuration,{base}")),
            ),
            (
                "namingContexts".into(),
                vec![base.clone(), format!("CN=Configuration,{base}")],
            ),
            (
                "supportedControl".into(),
                vec![
                    PAGED_RESULTS_OID.into(),
                    "1.2.840.113556.1.4.473".into(),
                    "1.2.840.113556.1.4.801".into(),
                ],
            ),
            ("supportedLDAPVersion".into(), vec!["3".into(), "2".into()]),
            ("supportedSASLMechanisms".into(), Vec::new()),
            ("dnsHostName".into(), one(host.clone())),
            (
                "ldapServiceName".into(),
                one(format!(
                    "{}:{host}$@{}",
                    state.primary_domain,
                    state.primary_domain.to_ascii_uppercase()
                )),
            ),
            ("isGlobalCatalogReady".into(), one("TRUE")),
            ("domainFunctionality".into(), one("7")),
        ],
    }
}

fn search(
    shared: &Shared,
    bound: Option<&Principal>,
    snapshot: &mut Option<Arc<Vec<Entry>>>,
    msgid: i32,
    req: &LdapSearchRequest,
    controls: &[LdapControl],
) -> Vec<LdapMsg> {
    let done = |res: LdapResult, ctrl: Vec<LdapControl>| LdapMsg {
        msgid,
        op: LdapOp::SearchResultDone(res),
        ctrl,
    };
    let entry_msg = |e: &Entry| LdapMsg {
        msgid,
        op: LdapOp::SearchResultEntry(LdapSearchResultEntry {
            dn: e.dn.clone(),
            attributes: select(e, &req.attrs, req.typesonly),
        }),
        ctrl: vec![],
    };
    let state = shared.org.lock();
    if req.base.is_empty() && req.scope == LdapSearchScope::Base {
        let dse = root_dse(&state);
        let mut out = Vec::new();
        if matches(&dse, &req.filter) {
            out.push(entry_msg(&dse));
        }
        out.push(done(result(LdapResultCode::Success, ""), vec![]));
        return out;
    }
    if bound.is_none() {
        return vec![done(
            result(
                LdapResultCode::OperationsError,
                "000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a successful bind must be completed on the connection., data 0, v4563",
            ),
            vec![],
        )];
    }
    if shared.faults.ldap.busy {
        return vec![done(
            result(LdapResultCode::Busy, "00002024: the directory is busy"),
            vec![],
        )];
    }
    let base = normalise_dn(&req.base);
    let next_page = controls
        .iter()
        .any(|c| matches!(c, LdapControl::SimplePagedResults { cookie, .. } if !cookie.is_empty()));
    let all = match snapshot {
        Some(all) if next_page => all.clone(),
        _ => {
            let all = Arc::new(entries(&state));
            *snapshot = Some(all.clone());
            all
        }
    };
    if !all.iter().any(|e| normalise_dn(&e.dn) == base) {
        let mut res = result(
            LdapResultCode::NoSuchObject,
            "0000208D: NameErr: DSID-0310028C, problem 2001 (NO_OBJECT), data 0",
        );
        res.matcheddn = state.base_dn();
        return vec![done(res, vec![])];
    }
    let in_scope = |e: &Entry| {
        let dn = normalise_dn(&e.dn);
        match req.scope {
            LdapSearchScope::Base => dn == base,
            LdapSearchScope::OneLevel => parent_dn(&dn) == Some(base.as_str()),
            LdapSearchScope::Subtree => dn == base || dn.ends_with(&format!(",{base}")),
            LdapSearchScope::Children => dn.ends_with(&format!(",{base}")),
        }
    };
    let hits: Vec<&Entry> = all
        .iter()
        .filter(|e| in_scope(e) && matches(e, &req.filter))
        .collect();
    let paged = controls.iter().find_map(|c| match c {
        LdapControl::SimplePagedResults { size, cookie } => Some((*size, cookie.clone())),
        _ => None,
    });
    let mut out = Vec::new();
    match paged {
        Some((size, cookie)) => {
            let page = usize::try_from(size).unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
            let offset = match parse_cookie(&cookie) {
                Some(o) => o,
                None => {
                    return vec![done(
                        result(
                            LdapResultCode::UnwillingToPerform,
                            "00002024: SvcErr: DSID-02060265, problem 5003 (WILL_NOT_PERFORM), data 0 (bad paged-results cookie)",
                        ),
                        vec![],
                    )];
                }
            };
            let end = (offset + page).min(hits.len());
            for e in &hits[offset.min(end)..end] {
                out.push(entry_msg(e));
            }
            let next = if end < hits.len() {
                end.to_string().into_bytes()
            } else {
                Vec::new()
            };
            out.push(done(
                result(LdapResultCode::Success, ""),
                vec![LdapControl::SimplePagedResults {
                    size: 0,
                    cookie: next,
                }],
            ));
        }
        None => {
            let limit = if req.sizelimit > 0 {
                (req.sizelimit as usize).min(MAX_PAGE)
            } else {
                MAX_PAGE
            };
            for e in hits.iter().take(limit) {
                out.push(entry_msg(e));
            }
            let res = if hits.len() > limit {
                result(
                    LdapResultCode::SizeLimitExceeded,
                    "Size limit exceeded (use the paged-results control)",
                )
            } else {
                result(LdapResultCode::Success, "")
            };
            out.push(done(res, vec![]));
        }
    }
    out
}

fn parse_cookie(cookie: &[u8]) -> Option<usize> {
    if cookie.is_empty() {
        return Some(0);
    }
    std::str::from_utf8(cookie).ok()?.parse().ok()
}

fn normalise_dn(dn: &str) -> String {
    dn.split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

fn parent_dn(dn: &str) -> Option<&str> {
    // Escaped commas (`\,`) stay inside the first RDN.
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return Some(&dn[i + 1..]),
            _ => i += 1,
        }
    }
    None
}

fn select(e: &Entry, wanted: &[String], types_only: bool) -> Vec<LdapPartialAttribute> {
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "*");
    let none = wanted.len() == 1 && wanted[0] == "1.1";
    e.attrs
        .iter()
        .filter(|(k, _)| !none && (all || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))))
        .map(|(k, v)| LdapPartialAttribute {
            atype: k.clone(),
            vals: if types_only {
                Vec::new()
            } else {
                v.iter().map(|s| s.as_bytes().to_vec()).collect()
            },
        })
        .collect()
}

/// Whether an entry matches a filter, with AD's comparisons (case-insensitive strings,
/// `objectCategory=person` for the category's DN, bitwise AND/OR rules on integers).
pub fn matches(e: &Entry, f: &LdapFilter) -> bool {
    match f {
        LdapFilter::And(v) => v.iter().all(|f| matches(e, f)),
        LdapFilter::Or(v) => v.iter().any(|f| matches(e, f)),
        LdapFilter::Not(f) => !matches(e, f),
        LdapFilter::Present(a) => a.eq_ignore_ascii_case("objectClass") || e.values(a).is_some(),
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            let Some(values) = e.values(a) else {
                return false;
            };
            values.iter().any(|x| {
                x.eq_ignore_ascii_case(v)
                    || (a.eq_ignore_ascii_case("objectCategory") && !v.contains('=') && {
                        x.split(',')
                            .next()
                            .and_then(|rdn| rdn.strip_prefix("CN="))
                            .is_some_and(|cn| cn.eq_ignore_ascii_case(v))
                    })
            })
        }
        LdapFilter::Substring(a, s) => e.values(a).is_some_and(|values| {
            values.iter().any(|x| {
                let x = x.to_ascii_lowercase();
                let mut rest = x.as_str();
                if let Some(i) = &s.initial {
                    let i = i.to_ascii_lowercase();
                    let Some(r) = rest.strip_prefix(i.as_str()) else {
                        return false;
                    };
                    rest = r;
                }
                for any in &s.any {
                    let any = any.to_ascii_lowercase();
                    match rest.find(any.as_str()) {
                        Some(p) => rest = &rest[p + any.len()..],
                        None => return false,
                    }
                }
                match &s.final_ {
                    Some(fin) => rest.ends_with(fin.to_ascii_lowercase().as_str()),
                    None => true,
                }
            })
        }),
        LdapFilter::GreaterOrEqual(a, v) => compare(e, a, v, |o| o.is_ge()),
        LdapFilter::LessOrEqual(a, v) => compare(e, a, v, |o| o.is_le()),
        LdapFilter::Extensible(m) => {
            let Some(a) = &m.type_ else { return false };
            let Ok(bits) = m.match_value.parse::<i64>() else {
                return false;
            };
            let Some(values) = e.values(a) else {
                return false;
            };
            values
                .iter()
                .filter_map(|x| x.parse::<i64>().ok())
                .any(|x| {
                    // 32-bit attributes: AD compares their unsigned form.
                    let x = x & 0xffff_ffff;
                    let bits = bits & 0xffff_ffff;
                    match m.matching_rule.as_deref() {
                        Some("1.2.840.113556.1.4.803") => x & bits == bits,
                        Some("1.2.840.113556.1.4.804") => x & bits != 0,
                        _ => false,
                    }
                })
        }
    }
}

fn compare(e: &Entry, a: &str, v: &str, ok: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    e.values(a).is_some_and(|values| {
        values
            .iter()
            .any(|x| match (x.parse::<i64>(), v.parse::<i64>()) {
                (Ok(x), Ok(v)) => ok(x.cmp(&v)),
                _ => ok(x.to_ascii_lowercase().cmp(&v.to_ascii_lowercase())),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use ldap3_proto::parse_ldap_filter_str;

    fn state() -> OrgState {
        let text = r#"
[organisation]
name = "Contoso"
primary_domain = "contoso.com"
[[admins]]
address = "administrator@contoso.com"
password = "P@ssw0rd"
domain_admins = true
[[recipients]]
kind = "user-mailbox"
address = "alice@contoso.com"
display_name = "Alice Wonder"
manager = "bob@contoso.com"
[[recipients]]
kind = "user-mailbox"
address = "bob@contoso.com"
display_name = "Bob, Jr."
um_enabled = true
[[recipients]]
kind = "security-group"
address = "sec@contoso.com"
members = ["alice@contoso.com"]
[[recipients]]
kind = "distribution-group"
address = "all@contoso.com"
members = ["alice@contoso.com", "bob@contoso.com"]
"#;
        OrgState::from_config(&Config::from_toml(text).unwrap()).unwrap()
    }

    fn find(filter: &str) -> Vec<String> {
        let s = state();
        let f = parse_ldap_filter_str(filter).unwrap();
        entries(&s)
            .into_iter()
            .filter(|e| matches(e, &f))
            .map(|e| e.dn)
            .collect()
    }

    #[test]
    fn ad_filter_forms_match_as_ad_does() {
        assert_eq!(
            find("(&(objectCategory=person)(objectClass=user)(mail=ALICE@contoso.com))"),
            ["CN=Alice Wonder,CN=Users,DC=contoso,DC=com"]
        );
        assert_eq!(find("(mail=b*@contoso.*)").len(), 1);
        assert_eq!(
            find("(&(objectClass=group)(groupType:1.2.840.113556.1.4.803:=2147483648))").len(),
            2,
            "the security groups: sec and Domain Admins"
        );
        assert_eq!(find("(&(mail=*)(!(groupType=*)))").len(), 2);
        assert_eq!(find("(msExchUMEnabledFlags=*)").len(), 1);
        // Ordering on integers and on strings.
        assert_eq!(
            find("(&(objectClass=group)(groupType>=8))").len(),
            1,
            "the distribution group"
        );
        assert_eq!(
            find("(&(objectClass=user)(mail<=b))").len(),
            1,
            "alice sorts before b"
        );
        // A DN value (the test's filter parser stops at '='; on the wire it is BER).
        let s = state();
        let member_of = LdapFilter::Equality(
            "memberOf".into(),
            "cn=ALL,CN=Users,DC=contoso,DC=com".into(),
        );
        assert_eq!(
            entries(&s)
                .iter()
                .filter(|e| matches(e, &member_of))
                .count(),
            2
        );
    }

    #[test]
    fn links_are_distinguished_names_with_escaped_commas() {
        let s = state();
        let all = entries(&s);
        let alice = all.iter().find(|e| e.dn.starts_with("CN=Alice")).unwrap();
        assert_eq!(
            alice.values("manager").unwrap(),
            ["CN=Bob\\, Jr.,CN=Users,DC=contoso,DC=com"]
        );
        assert_eq!(
            parent_dn("CN=Bob\\, Jr.,CN=Users,DC=contoso,DC=com"),
            Some("CN=Users,DC=contoso,DC=com")
        );
    }
}
