//! A fake Exchange Online tenant: recipients, licences, limits, throttling and an idempotent
//! mailbox import API. Filled by the fake-target issue.
