//! A checkout's folder, pinned: opened beneath the workspace with no symbolic link on the
//! way, so that the runner's git works in the folder the runner means. The agent owns the
//! workspace and can swap `repos/`, or the checkout's own folder, for a link to anywhere
//! at any moment; a runner that is root would then clone into, update or delete whatever
//! the link names. Pinned, the folder is named by its descriptor (`/proc/self/fd/<n>`),
//! which a child enters before it runs, so a swap after the pin changes nothing.

use std::{
    os::fd::{AsFd, AsRawFd, OwnedFd},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2},
    sys::stat::Mode,
    unistd::UnlinkatFlags,
};

/// A checkout's folder and the folder it is in, held open.
#[derive(Debug)]
pub(crate) struct PinnedCheckout {
    parent: OwnedFd,
    folder: OwnedFd,
    name: String,
    /// Whether a checkout (a `.git`) was there already.
    pub(crate) existed: bool,
}

impl PinnedCheckout {
    /// The checkout's folder, for this process and as a child's working directory.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.folder.as_raw_fd()))
    }

    /// Removes the folder if nothing is in it (the one made for a clone that failed).
    pub(crate) fn remove_if_empty(&self) {
        let _kept_if_not_empty =
            nix::unistd::unlinkat(&self.parent, self.name.as_str(), UnlinkatFlags::RemoveDir);
    }

    /// The checkout's folder named from the pinned folder it is in: to remove it, with
    /// nothing on the way followed.
    pub(crate) fn path_in_parent(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.parent.as_raw_fd())).join(&self.name)
    }
}

/// What the folder is opened as: a place, never read, never waited on.
fn how(resolve: ResolveFlag) -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve)
}

fn no_links() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// The folder of the checkout at `path` inside `root`, pinned: the checkout already
/// there, or else a new empty folder the runner makes for a clone (one left empty by an
/// earlier failed clone is made again). Refused, with the reason, when a link or a file
/// is on the way, or when the folder holds something that is not a checkout.
pub(crate) fn checkout(root: &Path, path: &Path) -> Result<PinnedCheckout, String> {
    let relative = inside(root, path)?;
    let (parent, name) = parent_and_name(root, relative)?;
    match open_folder(&parent, &name, relative)? {
        Some(folder) if has_git(&folder) => {
            return Ok(PinnedCheckout {
                parent,
                folder,
                name,
                existed: true,
            });
        }
        Some(_) => match nix::unistd::unlinkat(&parent, name.as_str(), UnlinkatFlags::RemoveDir) {
            Ok(()) => {}
            Err(Errno::ENOTEMPTY | Errno::EEXIST) => {
                return Err(format!(
                    "{} is there and is neither a checkout nor empty; move it away to clone into it",
                    relative.display()
                ));
            }
            Err(errno) => return Err(format!("{}: {errno}", relative.display())),
        },
        None => {}
    }
    match nix::sys::stat::mkdirat(&parent, name.as_str(), Mode::from_bits_truncate(0o755)) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            return Err(format!(
                "{} appeared while the runner made it; try again",
                relative.display()
            ));
        }
        Err(errno) => return Err(format!("{}: {errno}", relative.display())),
    }
    let folder = open_folder(&parent, &name, relative)?
        .ok_or_else(|| format!("{} went away as the runner made it", relative.display()))?;
    // The agent could have put a folder of its own in the new one's place since.
    let made_here = nix::sys::stat::fstat(&folder)
        .is_ok_and(|stat| stat.st_uid == nix::unistd::geteuid().as_raw());
    if !made_here {
        return Err(format!(
            "{} was replaced as the runner made it; try again",
            relative.display()
        ));
    }
    Ok(PinnedCheckout {
        parent,
        folder,
        name,
        existed: false,
    })
}

/// The checkout at `path` inside `root`, pinned, if a folder is there (a checkout or
/// not); `None` if nothing is.
pub(crate) fn existing(root: &Path, path: &Path) -> Result<Option<PinnedCheckout>, String> {
    let relative = inside(root, path)?;
    let (parent, name) = parent_and_name(root, relative)?;
    Ok(
        open_folder(&parent, &name, relative)?.map(|folder| PinnedCheckout {
            existed: has_git(&folder),
            parent,
            folder,
            name,
        }),
    )
}

/// `path` from `root`.
fn inside<'a>(root: &Path, path: &'a Path) -> Result<&'a Path, String> {
    path.strip_prefix(root)
        .map_err(|_| format!("{} is not in the workspace", path.display()))
}

/// The folder `relative` is in, pinned, and its own name.
fn parent_and_name(root: &Path, relative: &Path) -> Result<(OwnedFd, String), String> {
    let name = relative
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{} names no folder", relative.display()))?
        .to_owned();
    let root = openat2(AT_FDCWD, root, how(ResolveFlag::empty()))
        .map_err(|errno| format!("the workspace {}: {errno}", root.display()))?;
    let in_folder = match relative.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent = openat2(root.as_fd(), in_folder, how(no_links())).map_err(|errno| {
        format!(
            "{} is not a plain folder of the workspace ({}): a symbolic link on the way is not followed",
            in_folder.display(),
            errno.desc()
        )
    })?;
    Ok((parent, name))
}

/// Folder `name` in `parent`, if anything is there; a link or a file there is refused.
fn open_folder(parent: &OwnedFd, name: &str, relative: &Path) -> Result<Option<OwnedFd>, String> {
    match openat2(parent.as_fd(), name, how(no_links())) {
        Ok(folder) => Ok(Some(folder)),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(format!(
            "{} is a symbolic link or a file, not a folder ({}); the runner does not follow it",
            relative.display(),
            errno.desc()
        )),
    }
}

/// Whether `folder` holds a `.git` of any kind (whether git may use it is
/// `check_checkout`'s to say).
fn has_git(folder: &OwnedFd) -> bool {
    nix::sys::stat::fstatat(folder, ".git", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
}
