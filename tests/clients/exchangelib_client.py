"""exchangelib (a client not written here) against fake-exchange's EWS, over HTTPS with the CA
verified and Basic authentication.

Run by tests/fake_exchange_serve.rs against `mailmig fake-exchange serve --control`:
    exchangelib_client.py EWS_URL BUSY_EWS_URL CA_FILE
It prints one line per step; between the two item syncs it prints `WAITING` and reads a line
from stdin, while the test changes the mailbox through the fake's handle (the control commands). Ends with
`all checks passed`.
"""

import os
import sys

ews_url, busy_url, ca_file = sys.argv[1:4]
# requests (under exchangelib) verifies against this bundle: our CA, nothing else.
os.environ["REQUESTS_CA_BUNDLE"] = ca_file

from exchangelib import (  # noqa: E402
    BASIC,
    DELEGATE,
    IMPERSONATION,
    Account,
    Configuration,
    Credentials,
    FailFast,
    FaultTolerance,
)
from exchangelib.errors import ErrorImpersonateUserDenied, ErrorServerBusy  # noqa: E402
from exchangelib.protocol import CachingProtocol  # noqa: E402


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def config(url, user="administrator@contoso.com", password="P@ssw0rd", retry=None):
    return Configuration(
        service_endpoint=url,
        credentials=Credentials(user, password),
        auth_type=BASIC,
        retry_policy=retry or FailFast(),
    )


admin = config(ews_url)
alice = Account("alice@contoso.com", config=admin, autodiscover=False, access_type=DELEGATE)
check(alice.version.build is not None and alice.version.build.major_version == 15,
      f"version guessed from ServerVersionInfo: {alice.version}")

# The folder tree.
names = {f.name for f in alice.root.walk()}
for wanted in ["Top of Information Store", "Inbox", "Sent Items", "Projects", "Calendar", "Contacts"]:
    check(wanted in names, f"walk finds {wanted}")
check(alice.inbox.total_count == 6, f"inbox holds 6 items ({alice.inbox.total_count})")

# Item sync, twice: the second returns only what changed in between.
first = list(alice.inbox.sync_items())
creates = [i for kind, i in first if kind == "create"]
check(len(creates) == 6, f"first sync_items: 6 creates ({len(first)} changes)")
state = alice.inbox.item_sync_state
check(bool(state), "a sync state comes back")
print("WAITING", flush=True)
sys.stdin.readline()
second = list(alice.inbox.sync_items())
kinds = sorted(kind for kind, _ in second)
check(kinds == ["create", "delete", "read_flag_change"],
      f"second sync_items: one create, one read flag, one delete ({kinds})")
# Replaying the first state gives the same changes again (sync states are replayable).
alice.inbox.item_sync_state = state
replay = sorted(kind for kind, _ in alice.inbox.sync_items())
check(replay == kinds, f"replaying a sync state gives the same changes ({replay})")
third = list(alice.inbox.sync_items())
check(third == [], f"a third sync_items returns nothing ({len(third)})")

# MIME of a message, an event and a contact.
message_id = [i for kind, i in second if kind == "create"][0]
msg = list(alice.fetch(ids=[message_id], only_fields=["mime_content"]))[0]
check(msg.mime_content.startswith(b"From: ") and b"\r\nSubject: Delivered during the test" in msg.mime_content,
      "the delivered message's MIME")
cal_items = [i for kind, i in alice.calendar.sync_items() if kind == "create"]
event = list(alice.fetch(ids=cal_items[:1], only_fields=["mime_content"]))[0]
check(event.mime_content.startswith(b"BEGIN:VCALENDAR") and b"BEGIN:VEVENT" in event.mime_content,
      "an event as iCalendar")
contacts = [i for kind, i in alice.contacts.sync_items() if kind == "create"]
card = list(alice.fetch(ids=contacts[:1], only_fields=["mime_content"]))[0]
check(card.mime_content.startswith(b"BEGIN:VCARD"), "a contact as vCard")

# Impersonation: allowed for the admin with ApplicationImpersonation ...
bob = Account("bob@contoso.com", config=admin, autodiscover=False, access_type=IMPERSONATION)
check(bob.inbox.total_count == 5, f"impersonating bob reads his inbox ({bob.inbox.total_count})")
# ... refused for an account without the role.
helpdesk = config(ews_url, user="helpdesk@contoso.com", password="Help1234!")
try:
    carol = Account("carol@contoso.com", config=helpdesk, autodiscover=False, access_type=IMPERSONATION)
    carol.inbox.total_count
    check(False, "impersonation without the role is refused")
except ErrorImpersonateUserDenied as e:
    check(True, f"impersonation without the role is refused: {e}")

# ErrorServerBusy: fail-fast raises it; fault tolerance backs off and retries.
try:
    busy = Account("alice@contoso.com", config=config(busy_url), autodiscover=False,
                   access_type=DELEGATE)
    busy.inbox.total_count
    check(False, "ErrorServerBusy reaches a fail-fast client")
except ErrorServerBusy as e:
    check(e.back_off is not None and e.back_off > 0, f"ErrorServerBusy with a back-off ({e.back_off} s)")
# Protocols are cached per endpoint and credentials: drop the fail-fast one.
CachingProtocol.clear_cache()
patient = Account("alice@contoso.com", config=config(busy_url, retry=FaultTolerance(max_wait=30)),
                  autodiscover=False, access_type=DELEGATE)
check(patient.inbox.total_count == 6, "fault tolerance retries past ErrorServerBusy")

# The CA really is verified: a client trusting only the public CAs (certifi) is refused.
import certifi  # noqa: E402

os.environ["REQUESTS_CA_BUNDLE"] = certifi.where()
CachingProtocol.clear_cache()
try:
    stranger = Account("alice@contoso.com", config=config(ews_url), autodiscover=False,
                       access_type=DELEGATE)
    stranger.inbox.total_count
    check(False, "a client that does not trust the organisation's CA is refused")
except Exception as e:  # noqa: BLE001 (exchangelib wraps the SSL error in several ways)
    check("CERTIFICATE_VERIFY_FAILED" in repr(e) or "certificate verify failed" in str(e),
          f"a client that does not trust the organisation's CA is refused ({type(e).__name__})")

print("all checks passed", flush=True)
