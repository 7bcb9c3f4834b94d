//! The directory's vocabulary: the kinds of recipient a tenant holds and a cutover provisions.

use serde::{Deserialize, Serialize};

/// What kind of directory object a recipient is. Cutover provisions all of these; an IMAP
/// migration can only write into `UserMailbox`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RecipientKind {
    UserMailbox,
    MailUser,
    MailContact,
    DistributionGroup { members: Vec<String> },
    MailEnabledSecurityGroup { members: Vec<String> },
}

impl RecipientKind {
    pub fn name(&self) -> &'static str {
        match self {
            RecipientKind::UserMailbox => "userMailbox",
            RecipientKind::MailUser => "mailUser",
            RecipientKind::MailContact => "mailContact",
            RecipientKind::DistributionGroup { .. } => "distributionGroup",
            RecipientKind::MailEnabledSecurityGroup { .. } => "mailEnabledSecurityGroup",
        }
    }
}
