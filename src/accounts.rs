//! Accounts through NSS: name, uid and every group (getgrouplist), so that groups from
//! LDAP or SSSD count as much as those in /etc/group.

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;

use nix::errno::Errno;
use nix::unistd::{getgrouplist, Gid, Group, User};

use crate::username::UserName;

/// An account as NSS knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: UserName,
    pub uid: u32,
    /// Names of the primary group and every supplementary group.
    pub groups: Vec<String>,
}

/// A lookup that did not give a usable account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    /// NSS does not know the name.
    Unknown,
    /// The passwd lookup itself failed (e.g. the directory server is down).
    Lookup(Errno),
    /// getgrouplist failed.
    Groups(Errno),
    /// A group id that NSS cannot name: policy on group names cannot be decided.
    UnnamedGroup(u32),
    /// NSS answered with an account whose own name pam-mfa cannot use as a name.
    BadName(String),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("no such account"),
            Self::Lookup(e) => write!(f, "the account lookup failed: {}", e.desc()),
            Self::Groups(e) => write!(f, "the group lookup (getgrouplist) failed: {}", e.desc()),
            Self::UnnamedGroup(gid) => write!(f, "group id {gid} has no name in NSS"),
            Self::BadName(name) => write!(f, "NSS names the account {name:?}, not a usable name"),
        }
    }
}

impl std::error::Error for AccountError {}

/// Looks `name` up in NSS with all its groups. Any failure is an error, never a
/// shorter group list: a missing group could otherwise demote a privileged account.
///
/// The account's name is the one NSS answers with, which may differ from `name`: a
/// directory that ignores case, or knows aliases, finds `ALICE` as `alice`. Rules, the
/// record and the state all go by that canonical name, so that every spelling of one
/// account is the same account.
pub fn lookup(name: &UserName) -> Result<Account, AccountError> {
    let user = match User::from_name(name.as_str()) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(AccountError::Unknown),
        // glibc reports "not found" through these for some backends.
        Err(Errno::ENOENT | Errno::ESRCH) => return Err(AccountError::Unknown),
        Err(e) => return Err(AccountError::Lookup(e)),
    };
    let name = UserName::parse(&user.name).map_err(|_| AccountError::BadName(user.name))?;
    // UserName cannot hold NUL, so this conversion cannot fail; treat failure as unknown.
    let c_name = CString::new(name.as_str()).map_err(|_| AccountError::Unknown)?;
    let gids = getgrouplist(&c_name, user.gid).map_err(AccountError::Groups)?;
    let mut groups = Vec::with_capacity(gids.len());
    for gid in gids {
        groups.push(group_name(gid)?);
    }
    Ok(Account {
        name,
        uid: user.uid.as_raw(),
        groups,
    })
}

fn group_name(gid: Gid) -> Result<String, AccountError> {
    match Group::from_gid(gid) {
        Ok(Some(group)) => Ok(group.name),
        Ok(None) | Err(Errno::ENOENT | Errno::ESRCH) => {
            Err(AccountError::UnnamedGroup(gid.as_raw()))
        }
        Err(e) => Err(AccountError::Groups(e)),
    }
}

/// Whether NSS knows a group of this name: Ok(false) when it does not, Err when the
/// lookup itself failed.
pub fn group_exists(name: &str) -> Result<bool, Errno> {
    match Group::from_name(name) {
        Ok(found) => Ok(found.is_some()),
        Err(Errno::ENOENT | Errno::ESRCH) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The members a group lists by name (its `gr_mem`; accounts whose primary group it is are
/// not among them). Empty when NSS does not know the group.
pub fn group_members(name: &str) -> Result<Vec<String>, Errno> {
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.mem),
        Ok(None) | Err(Errno::ENOENT | Errno::ESRCH) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
