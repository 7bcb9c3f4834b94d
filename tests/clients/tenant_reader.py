#!/usr/bin/env python3
"""A third-party reader of the fake tenant's HTTP API (python's standard library only): the
directory entry of every address given, and every item of the mailboxes given with its bytes.

Usage: tenant_reader.py URL TOKEN --recipients A,B,... --mailboxes A,B,...
Prints one JSON document: {"directory": {address: entry or null},
"items": {mailbox: [{"folder", "id", "flags", "receivedTime", "value" (base64)}]}}.
"""
import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def get(url, token, path, raw=False):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    return body if raw else json.loads(body)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("--recipients", default="")
    p.add_argument("--mailboxes", default="")
    a = p.parse_args()
    q = urllib.parse.quote
    out = {"directory": {}, "items": {}}
    for address in filter(None, a.recipients.split(",")):
        out["directory"][address] = get(a.url, a.token, "/v1/directory/" + q(address))
    for mailbox in filter(None, a.mailboxes.split(",")):
        items = []
        for m in get(a.url, a.token, "/v1/users/%s/messages" % q(mailbox)):
            value = get(a.url, a.token, "/v1/users/%s/messages/%s/$value" % (q(mailbox), q(m["id"])), raw=True)
            items.append({"folder": m["folder"], "id": m["id"], "flags": m.get("flags", []),
                          "receivedTime": m.get("receivedTime"),
                          "value": base64.b64encode(value).decode()})
        if not items:
            print("%s: no items in the tenant" % mailbox, file=sys.stderr)
            sys.exit(1)
        out["items"][mailbox] = items
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
