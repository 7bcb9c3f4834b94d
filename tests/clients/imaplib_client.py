"""A client not written here: Python's imaplib against `mailmig fake-imap serve`.

Usage: imaplib_client.py IMAP_PORT IMAPS_PORT CA_PATH
Exits non-zero (with a traceback) on the first thing that is not as a real server would do.
"""
import imaplib
import ssl
import sys

imap_port, imaps_port, ca_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca_path)  # verifies the chain and 127.0.0.1


def ok(result, what):
    typ, data = result
    assert typ == "OK", f"{what}: {typ} {data}"
    return data


# 1. STARTTLS, plain login, LIST, APPEND, FETCH, STORE, EXPUNGE.
m = imaplib.IMAP4("127.0.0.1", imap_port)
assert "STARTTLS" in m.capabilities, m.capabilities
ok(m.starttls(ssl_context=ctx), "starttls")
ok(m.login("terry.adams", "1091990"), "login")
folders = ok(m.list(), "list")
# Names come quoted, as Dovecot sends them.
names = [f.decode().rsplit(' "/" ', 1)[1].strip('"') for f in folders]
assert any(b"\\HasChildren" in f and b'"Archive"' in f for f in folders), folders
assert "INBOX" in names and "Archive/2019" in names, names

message = b"From: a@example.org\r\nSubject: imaplib test\r\nMessage-ID: <py@x>\r\n\r\nhello from python\r\n"
data = ok(m.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(1577836800), message), "append")
ok(m.select("INBOX"), "select")
typ, data = m.search(None, "HEADER", "Message-ID", "<py@x>")
assert typ == "OK" and data[0], data
seq = data[0].split()[-1]
data = ok(m.fetch(seq, "(BODY.PEEK[] FLAGS INTERNALDATE)"), "fetch")
assert data[0][1] == message, data[0][1]
rest = data[1]  # what follows the literal: FLAGS and INTERNALDATE
assert b"\\Flagged" in rest and b"01-Jan-2020" in rest, data
ok(m.store(seq, "+FLAGS", r"(\Deleted)"), "store")
expunged = ok(m.expunge(), "expunge")
assert expunged == [seq], expunged
assert m.logout()[0] == "BYE"

# 2. Implicit TLS with a Dovecot master login, sent as imaplib sends it: a bare atom with the
#    '*' in it (`LOGIN terry.adams*mailadmin "P@ssw0rd"`), which Dovecot accepts.
m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx)
ok(m.login("terry.adams*mailadmin", "P@ssw0rd"), "master login")
data = ok(m.select("INBOX", readonly=True), "examine")
assert int(data[0]) == 20, data
try:
    m.login("x", "y")
except imaplib.IMAP4.error:
    pass
m.logout()

# 3. Wrong password and an untrusted chain are refused.
m = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ctx)
try:
    m.login("terry.adams", "wrong")
    raise AssertionError("wrong password accepted")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
try:
    imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ssl.create_default_context())
    raise AssertionError("a certificate from an unknown CA was accepted")
except ssl.SSLCertVerificationError:
    pass

print("imaplib: all checks passed")
