//! Accounts through NSS: name, uid and every group id (getgrouplist), so that groups from
//! LDAP or SSSD count as much as those in /etc/group. Groups are matched by id: only the
//! names a policy mentions are resolved, and a gid without a name is simply a gid.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fmt;

use nix::errno::Errno;
use nix::unistd::{getgrouplist, Gid, Group, User};

use crate::username::UserName;

/// An account as NSS knows it, and how it stands to the names a policy mentions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: UserName,
    pub uid: u32,
    /// The primary group's id and every supplementary group's (getgrouplist), named or not.
    pub gids: Vec<u32>,
    /// The resolved groups (see `Names`) whose gid is among `gids`, in the order resolved.
    pub groups: Vec<NamedId>,
    /// The resolved user names, other than the account's own, that NSS gives this
    /// account's uid: a second passwd entry (`alice2` with alice's uid) is that account.
    pub same_uid: Vec<NamedId>,
}

impl Account {
    /// The membership of group `name`, when the account has its gid.
    pub fn group(&self, name: &str) -> Option<&NamedId> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// A name and the numeric id NSS gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedId {
    pub name: String,
    pub id: u32,
}

/// The group and user names a policy mentions, with their ids: resolved once per login,
/// before any account is matched against them. A name NSS does not know has no id and
/// matches nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub groups: Vec<(String, Option<u32>)>,
    pub users: Vec<(String, Option<u32>)>,
}

impl Names {
    /// Resolves `groups` (getgrnam) and `users` (getpwnam), each name once. "Not found" is
    /// an answer; any other failure is an error, as a name that cannot be resolved could
    /// otherwise let a member of a required group pass as no member.
    pub fn resolve<'a>(
        groups: impl IntoIterator<Item = &'a str>,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Result<Names, AccountError> {
        let mut names = Names::default();
        // Names seen so far: a repeat costs a lookup in a set, not a scan of the list, so
        // that a policy naming thousands of groups resolves in n log n at every login.
        let mut seen = BTreeSet::new();
        for group in groups {
            if !seen.insert(group) {
                continue;
            }
            let gid = group_id(group).map_err(|e| AccountError::GroupName(group.to_owned(), e))?;
            names.groups.push((group.to_owned(), gid));
        }
        let mut seen = BTreeSet::new();
        for user in users {
            if !seen.insert(user) {
                continue;
            }
            let uid = user_id(user).map_err(|e| AccountError::UserName(user.to_owned(), e))?;
            names.users.push((user.to_owned(), uid));
        }
        Ok(names)
    }

    /// The group names NSS does not know.
    pub fn unknown_groups(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .filter(|(_, gid)| gid.is_none())
            .map(|(name, _)| name.as_str())
    }
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
    /// Resolving a group name the policy mentions failed (not "not found": an error).
    GroupName(String, Errno),
    /// Resolving a user name the policy mentions failed (not "not found": an error).
    UserName(String, Errno),
    /// NSS answered with an account whose own name pam-mfa cannot use as a name.
    BadName(String),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown => f.write_str("no such account"),
            Self::Lookup(e) => write!(f, "the account lookup failed: {}", e.desc()),
            Self::Groups(e) => write!(f, "the group lookup (getgrouplist) failed: {}", e.desc()),
            Self::GroupName(name, e) => {
                write!(
                    f,
                    "looking up the policy's group {name:?} failed: {}",
                    e.desc()
                )
            }
            Self::UserName(name, e) => {
                write!(
                    f,
                    "looking up the policy's user {name:?} failed: {}",
                    e.desc()
                )
            }
            Self::BadName(name) => write!(f, "NSS names the account {name:?}, not a usable name"),
        }
    }
}

impl std::error::Error for AccountError {}

/// Looks `name` up in NSS with all its group ids, and matches it against `names`. Any
/// failure is an error, never a shorter group list: a missing group could otherwise demote
/// a privileged account. A group id without a name is no failure: it is not one of the
/// policy's groups (unless the policy names a group NSS gives that id).
///
/// The account's name is the one NSS answers with, which may differ from `name`: a
/// directory that ignores case, or knows aliases, finds `ALICE` as `alice`. Rules, the
/// record and the state all go by that canonical name, so that every spelling of one
/// account is the same account.
pub fn lookup(name: &UserName, names: &Names) -> Result<Account, AccountError> {
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
    let gids: Vec<u32> = getgrouplist(&c_name, user.gid)
        .map_err(AccountError::Groups)?
        .into_iter()
        .map(|gid| gid.as_raw())
        .collect();
    let uid = user.uid.as_raw();
    let groups = names
        .groups
        .iter()
        .filter_map(|(group, gid)| {
            let gid = (*gid)?;
            gids.contains(&gid).then(|| NamedId {
                name: group.clone(),
                id: gid,
            })
        })
        .collect();
    let same_uid = names
        .users
        .iter()
        .filter(|(user, id)| *id == Some(uid) && user != name.as_str())
        .map(|(user, _)| NamedId {
            name: user.clone(),
            id: uid,
        })
        .collect();
    Ok(Account {
        name,
        uid,
        gids,
        groups,
        same_uid,
    })
}

/// The gid of group `name`: Ok(None) when NSS does not know it, Err when the lookup itself
/// failed.
pub fn group_id(name: &str) -> Result<Option<u32>, Errno> {
    match Group::from_name(name) {
        Ok(found) => Ok(found.map(|g| g.gid.as_raw())),
        Err(Errno::ENOENT | Errno::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The uid of user `name`: Ok(None) when NSS does not know it, Err when the lookup itself
/// failed.
pub fn user_id(name: &str) -> Result<Option<u32>, Errno> {
    match User::from_name(name) {
        Ok(found) => Ok(found.map(|u| u.uid.as_raw())),
        Err(Errno::ENOENT | Errno::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The name NSS gives group id `gid` (its first, where several groups share the id):
/// Ok(None) when it has none.
pub fn group_name(gid: u32) -> Result<Option<String>, Errno> {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(found) => Ok(found.map(|g| g.name)),
        Err(Errno::ENOENT | Errno::ESRCH) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether NSS knows a group of this name: Ok(false) when it does not, Err when the
/// lookup itself failed.
pub fn group_exists(name: &str) -> Result<bool, Errno> {
    group_id(name).map(|gid| gid.is_some())
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
