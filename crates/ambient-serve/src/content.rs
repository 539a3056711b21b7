//! The workspace file API the platform's UI calls (`/content/list`, `/content/file`,
//! `/content/write`, `/content/delete`), confined to the workspace.
//!
//! A path is always inside the workspace: a leading `/` means the workspace's root, a
//! `..` component is refused, and every path is opened with `openat2(RESOLVE_BENEATH)`
//! from the workspace's own descriptor, so that the kernel refuses a symbolic link that
//! leads out (absolute, or `..` past the root, or a `/proc` magic link) at the moment of
//! the open, whatever the agent swapped in before it. The agent we host can write the
//! workspace; it cannot make this API read or write anything outside it.

use std::{
    ffi::OsStr,
    io::{Read, Write},
    os::{
        fd::{AsFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{OFlag, OpenHow, ResolveFlag, openat2},
    sys::stat::{Mode, mkdirat},
    unistd::{UnlinkatFlags, unlinkat},
};
use time::OffsetDateTime;

/// The largest file `/content/file` sends and `/content/write` takes.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The most entries `/content/list` lists.
const MAX_ENTRIES: usize = 10_000;

/// Why a file request was refused; each names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The path is not one inside the workspace.
    #[error("invalid path `{path}`: {why}")]
    InvalidPath {
        /// The path asked for.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// Nothing is there.
    #[error("`{0}` does not exist in the workspace")]
    NotFound(String),
    /// A file over the bound of what is read ([`MAX_FILE_BYTES`] for `/content/file`).
    #[error("`{path}` is {bytes} bytes; at most {limit} are read")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        bytes: u64,
        /// The bound.
        limit: u64,
    },
    /// A directory where a file was meant, or the other way.
    #[error("`{path}` is {what}")]
    WrongKind {
        /// The path.
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// The system refused.
    #[error("`{path}`: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

impl ContentError {
    /// The HTTP status the error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidPath { .. } | Self::WrongKind { .. } => 400,
            Self::NotFound(_) => 404,
            Self::TooLarge { .. } => 413,
            Self::Io { .. } => 500,
        }
    }
}

/// One entry of a listing, as the platform's UI reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Its name.
    pub name: String,
    /// Its path from the workspace's root, with a leading `/`.
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Its size in bytes.
    pub size: u64,
    /// When it last changed, `YYYY-MM-DDTHH:MM:SSZ`.
    pub modified_at: String,
}

/// The workspace, as the file API opens it.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    /// Whether a symbolic link anywhere on the root's own path is refused (for a root in
    /// a folder the agent can change).
    root_without_links: bool,
    /// The agent's user and group, when it runs as its own user: what the file API
    /// creates is theirs, as the rest of the workspace is.
    owner: Option<(u32, u32)>,
}

/// A path checked to be inside the workspace, as its relative components.
#[derive(Debug)]
struct Inside {
    asked: String,
    relative: PathBuf,
}

impl Inside {
    fn new(asked: &str) -> Result<Self, ContentError> {
        let invalid = |why| ContentError::InvalidPath {
            path: asked.to_owned(),
            why,
        };
        if asked.bytes().any(|b| b == 0) {
            return Err(invalid("it holds a NUL byte"));
        }
        let mut relative = PathBuf::new();
        for component in Path::new(asked).components() {
            match component {
                // A leading `/` means the workspace's root.
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => relative.push(part),
                Component::ParentDir => {
                    return Err(invalid("`..` is not allowed: paths stay in the workspace"));
                }
                Component::Prefix(_) => return Err(invalid("not a path of this system")),
            }
        }
        Ok(Self {
            asked: asked.to_owned(),
            relative,
        })
    }

    /// `.` for the root, else the relative path.
    fn for_open(&self) -> &Path {
        if self.relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.relative
        }
    }

    fn io(&self, error: Errno) -> ContentError {
        match error {
            Errno::ENOENT => ContentError::NotFound(self.asked.clone()),
            // The kernel refused a path that leaves the root (RESOLVE_BENEATH).
            Errno::EXDEV => ContentError::InvalidPath {
                path: self.asked.clone(),
                why: "it leads out of the workspace (a symbolic link)",
            },
            Errno::ENOTDIR => ContentError::WrongKind {
                path: self.asked.clone(),
                what: "not in a directory",
            },
            Errno::EISDIR => ContentError::WrongKind {
                path: self.asked.clone(),
                what: "a directory",
            },
            // A FIFO with no reader, opened to write without waiting.
            Errno::ENXIO => ContentError::WrongKind {
                path: self.asked.clone(),
                what: "not a regular file",
            },
            other => ContentError::Io {
                path: self.asked.clone(),
                error: std::io::Error::from(other),
            },
        }
    }
}

fn beneath(flags: OFlag) -> OpenHow {
    // Never waits: a FIFO the agent made would hold the open until someone wrote to it.
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    // The kernel takes a mode only for a file it may create.
    if flags.contains(OFlag::O_CREAT) {
        how.mode(Mode::from_bits_truncate(0o644))
    } else {
        how
    }
}

fn modified(metadata: &std::fs::Metadata) -> String {
    format_mtime(std::os::unix::fs::MetadataExt::mtime(metadata))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn format_mtime(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|time| {
            time.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn display_path(relative: &Path) -> String {
    format!("/{}", relative.to_string_lossy())
}

impl Workspace {
    /// The file API of the workspace at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            root_without_links: false,
            owner: None,
        }
    }

    /// The root is refused if its path goes through a symbolic link, and so is a path
    /// beneath it that does: it is in a folder the agent can change, and a link put in
    /// its place would lead anywhere.
    #[must_use]
    pub fn root_without_links(mut self) -> Self {
        self.root_without_links = true;
        self
    }

    /// The agent's user and group, when it runs as its own user.
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.owner
    }

    /// What the file API creates goes to the agent's user `uid` and group `gid`.
    #[must_use]
    pub fn owned_by(mut self, uid: u32, gid: u32) -> Self {
        self.owner = Some((uid, gid));
        self
    }

    /// Gives `name` in `dir` (just made by the file API) to the agent's user, if it has
    /// one of its own.
    fn give(&self, dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        nix::unistd::fchownat(
            dir.as_fd(),
            name,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    fn root_fd(&self) -> Result<OwnedFd, ContentError> {
        // Never waits either: a FIFO put in the root's place would hold a blocking thread.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC);
        let how = if self.root_without_links {
            how.resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
        } else {
            how
        };
        openat2(nix::fcntl::AT_FDCWD, &self.root, how).map_err(|errno| ContentError::Io {
            path: String::from("/"),
            error: std::io::Error::from(errno),
        })
    }

    fn open(&self, inside: &Inside, flags: OFlag) -> Result<OwnedFd, ContentError> {
        let root = self.root_fd()?;
        let how = beneath(flags);
        // A root in the agent's folders: no link beneath it either (the path asked for
        // is one the runner resolved already).
        let how = if self.root_without_links {
            how.resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_SYMLINKS,
            )
        } else {
            how
        };
        openat2(root.as_fd(), inside.for_open(), how).map_err(|e| inside.io(e))
    }

    /// The directory at `path`, opened beneath the workspace: `/proc/self/fd/<n>` names
    /// it for a command run in it, whatever is swapped in along its path meanwhile.
    pub fn open_dir(&self, path: &str) -> Result<OwnedFd, ContentError> {
        let inside = Inside::new(path)?;
        self.open(&inside, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// `path` opened for reading, with what it is.
    fn open_read(
        &self,
        path: &str,
    ) -> Result<(Inside, std::fs::File, std::fs::Metadata), ContentError> {
        let inside = Inside::new(path)?;
        let file = std::fs::File::from(self.open(&inside, OFlag::O_RDONLY)?);
        let metadata = file.metadata().map_err(|error| ContentError::Io {
            path: inside.asked.clone(),
            error,
        })?;
        if !(metadata.is_file() || metadata.is_dir()) {
            return Err(ContentError::WrongKind {
                path: inside.asked,
                what: "neither a file nor a directory (a FIFO, a socket or a device)",
            });
        }
        Ok((inside, file, metadata))
    }

    /// What `path` holds: its entries for a directory, itself for a file.
    pub fn list(&self, path: &str) -> Result<Vec<Item>, ContentError> {
        let (inside, file, metadata) = self.open_read(path)?;
        if !metadata.is_dir() {
            let name = inside
                .relative
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(vec![Item {
                name,
                path: display_path(&inside.relative),
                is_dir: false,
                size: metadata.len(),
                modified_at: modified(&metadata),
            }]);
        }
        let mut dir = nix::dir::Dir::from_fd(OwnedFd::from(file)).map_err(|e| inside.io(e))?;
        let dir_fd = dir
            .as_fd()
            .try_clone_to_owned()
            .map_err(|error| ContentError::Io {
                path: inside.asked.clone(),
                error,
            })?;
        let mut items = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| inside.io(e))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            if items.len() >= MAX_ENTRIES {
                break;
            }
            // Each entry is looked at where it is: a symbolic link is listed, not followed.
            let Ok(stat) = nix::sys::stat::fstatat(
                dir_fd.as_fd(),
                name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) else {
                continue;
            };
            let is_dir = (stat.st_mode & nix::libc::S_IFMT) == nix::libc::S_IFDIR;
            let modified_at = format_mtime(stat.st_mtime);
            items.push(Item {
                name: name.to_string_lossy().into_owned(),
                path: display_path(&inside.relative.join(name)),
                is_dir,
                size: u64::try_from(stat.st_size).unwrap_or(0),
                modified_at,
            });
        }
        items.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
        Ok(items)
    }

    /// The bytes of the file at `path`, [`MAX_FILE_BYTES`] at most.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, ContentError> {
        self.read_small(path, MAX_FILE_BYTES)
    }

    /// The bytes of the file at `path` if it is at most `max` bytes long (for the small
    /// files read on the way to an answer, a `.git/HEAD`, a command's front matter, a
    /// bound well under [`MAX_FILE_BYTES`]).
    pub fn read_small(&self, path: &str, max: u64) -> Result<Vec<u8>, ContentError> {
        let (inside, file, metadata) = self.open_read(path)?;
        if metadata.is_dir() {
            return Err(inside.io(Errno::EISDIR));
        }
        if metadata.len() > max {
            return Err(ContentError::TooLarge {
                path: inside.asked,
                bytes: metadata.len(),
                limit: max,
            });
        }
        let mut bytes = Vec::new();
        // A file that grows while it is read is cut at the bound.
        file.take(max)
            .read_to_end(&mut bytes)
            .map_err(|error| ContentError::Io {
                path: inside.asked,
                error,
            })?;
        Ok(bytes)
    }

    /// Writes `bytes` to the file at `path`, creating the directories on the way.
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ContentError> {
        let inside = Inside::new(path)?;
        let Some(name) = inside.relative.file_name().map(OsStr::to_owned) else {
            return Err(ContentError::InvalidPath {
                path: inside.asked,
                why: "it names no file",
            });
        };
        let mut dir = self.root_fd()?;
        if let Some(parent) = inside.relative.parent() {
            for part in parent.components() {
                let Component::Normal(part) = part else {
                    continue;
                };
                match mkdirat(dir.as_fd(), part, Mode::from_bits_truncate(0o755)) {
                    Ok(()) => self.give(&dir, part).map_err(|e| inside.io(e))?,
                    Err(Errno::EEXIST) => {}
                    Err(error) => return Err(inside.io(error)),
                }
                dir = openat2(
                    dir.as_fd(),
                    part,
                    beneath(OFlag::O_RDONLY | OFlag::O_DIRECTORY),
                )
                .map_err(|e| inside.io(e))?;
            }
        }
        let fd = openat2(
            dir.as_fd(),
            name.as_os_str(),
            beneath(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC),
        )
        .map_err(|e| inside.io(e))?;
        let mut file = std::fs::File::from(fd);
        if !file.metadata().is_ok_and(|metadata| metadata.is_file()) {
            return Err(ContentError::WrongKind {
                path: inside.asked,
                what: "not a regular file",
            });
        }
        self.give(&dir, &name).map_err(|e| inside.io(e))?;
        file.write_all(bytes).map_err(|error| ContentError::Io {
            path: inside.asked,
            error,
        })
    }

    /// Deletes the file at `path`.
    pub fn delete(&self, path: &str) -> Result<(), ContentError> {
        let inside = Inside::new(path)?;
        let Some(name) = inside.relative.file_name().map(OsStr::to_owned) else {
            return Err(ContentError::InvalidPath {
                path: inside.asked,
                why: "the workspace itself is not deleted",
            });
        };
        let parent = Inside {
            asked: inside.asked.clone(),
            relative: inside
                .relative
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let dir = self.open(&parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        unlinkat(dir.as_fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| inside.io(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::*;

    /// A workspace with a file, a directory, and the links an agent could plant: to a
    /// secret outside, to `/`, to `/proc/self`, and one that stays inside.
    fn planted() -> (tempfile::TempDir, tempfile::TempDir, Workspace) {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "the runner's secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("src")).unwrap();
        std::fs::write(root.path().join("src/main.rs"), "fn main() {}").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.path().join(name)).unwrap();
        };
        link(&outside.path().join("secret.txt"), "secret-link");
        link(outside.path(), "outside-dir");
        link(Path::new("/"), "system-root");
        link(Path::new("/proc/self/environ"), "environ");
        link(Path::new("src/main.rs"), "inside-link");
        let workspace = Workspace::new(root.path());
        (root, outside, workspace)
    }

    #[test]
    fn reads_and_lists_stay_in_the_workspace_whatever_the_agent_planted() {
        let (_root, _outside, workspace) = planted();
        assert_eq!(workspace.read("src/main.rs").unwrap(), b"fn main() {}");
        // An absolute path is a path in the workspace.
        assert_eq!(workspace.read("/src/main.rs").unwrap(), b"fn main() {}");
        assert_eq!(workspace.read("inside-link").unwrap(), b"fn main() {}");
        assert!(matches!(
            workspace.read("/etc/passwd"),
            Err(ContentError::NotFound(_))
        ));
        for escape in [
            "secret-link",
            "outside-dir/secret.txt",
            "system-root/etc/passwd",
            "environ",
        ] {
            let refused = workspace.read(escape).unwrap_err();
            assert_eq!(refused.status(), 400, "{escape}: {refused}");
            assert!(refused.to_string().contains("leads out"), "{refused}");
        }
        for dots in ["../secret.txt", "src/../../x", "/.."] {
            let refused = workspace.read(dots).unwrap_err();
            assert!(
                refused.to_string().contains("`..` is not allowed"),
                "{refused}"
            );
        }
        assert!(workspace.list("outside-dir").is_err());
        let items = workspace.list("/").unwrap();
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names[0], "src", "directories first: {names:?}");
        assert!(
            names.contains(&"secret-link"),
            "a link is listed, not followed"
        );
        let src = items.iter().find(|i| i.name == "src").unwrap();
        assert_eq!((src.path.as_str(), src.is_dir), ("/src", true));
        let file = &workspace.list("src/main.rs").unwrap()[0];
        assert_eq!((file.size, file.path.as_str()), (12, "/src/main.rs"));
        assert_eq!(file.modified_at.len(), "2026-12-01T04:00:00Z".len());
    }

    #[test]
    fn writes_and_deletes_never_reach_outside_through_a_link() {
        let (root, outside, workspace) = planted();
        workspace.write("/new/dir/notes.md", b"# notes").unwrap();
        assert_eq!(
            std::fs::read(root.path().join("new/dir/notes.md")).unwrap(),
            b"# notes"
        );
        for escape in [
            "outside-dir/planted.txt",
            "secret-link",
            "system-root/tmp/x",
        ] {
            let refused = workspace.write(escape, b"overwritten").unwrap_err();
            assert_eq!(refused.status(), 400, "{escape}: {refused}");
        }
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
            "the runner's secret"
        );
        assert!(!outside.path().join("planted.txt").exists());
        assert!(workspace.delete("outside-dir/secret.txt").is_err());
        assert!(outside.path().join("secret.txt").exists());
        // Deleting the link deletes the link, never what it points at.
        workspace.delete("secret-link").unwrap();
        assert!(outside.path().join("secret.txt").exists());
        assert!(workspace.delete("/").is_err());
        assert_eq!(workspace.delete("src").unwrap_err().status(), 400);
        assert_eq!(workspace.delete("nothing-here").unwrap_err().status(), 404);
    }

    #[test]
    fn what_the_file_api_creates_belongs_to_the_agents_own_user() {
        use std::os::unix::fs::MetadataExt as _;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("kept")).unwrap();
        let before = std::fs::metadata(root.path().join("kept")).unwrap().uid();
        // As root (the tests' user in CI), a user of its own; else this user.
        let (uid, gid) = if nix::unistd::geteuid().is_root() {
            (4242, 4243)
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        };
        let workspace = Workspace::new(root.path()).owned_by(uid, gid);
        workspace
            .write("kept/new/dir/notes.md", b"# notes")
            .unwrap();
        for made in ["kept/new", "kept/new/dir", "kept/new/dir/notes.md"] {
            let meta = std::fs::metadata(root.path().join(made)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{made}");
        }
        let kept = std::fs::metadata(root.path().join("kept")).unwrap();
        assert_eq!(
            kept.uid(),
            before,
            "a folder that was there keeps its owner"
        );
    }

    #[test]
    fn a_fifo_the_agent_made_is_refused_at_once_never_waited_on() {
        let (root, _outside, workspace) = planted();
        let fifo = root.path().join("pipe");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(workspace.read("pipe").unwrap_err().status(), 400);
        assert_eq!(
            workspace.read_small("pipe", 1024).unwrap_err().status(),
            400
        );
        assert_eq!(workspace.write("pipe", b"x").unwrap_err().status(), 400);
        assert!(
            workspace
                .list("/")
                .unwrap()
                .iter()
                .any(|item| item.name == "pipe")
        );
    }
}
