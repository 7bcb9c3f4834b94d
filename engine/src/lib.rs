//! mailmig's reference migration engine: endpoints, CSV, batches and users with Exchange Online's
//! lifecycle, and the per-user copy. Filled by the control-plane and data-plane issues.
