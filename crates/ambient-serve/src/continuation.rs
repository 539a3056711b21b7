//! What an adapter keeps for a later session, on the workspace volume: with no backend to
//! hold annotations, a restarted pod finds its thread or CLI session here.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2},
    sys::stat::Mode,
    unistd::UnlinkatFlags,
};
use tracing::{debug, warn};

/// The folder, under the workspace root, and the file in it.
const FOLDER: &str = ".ambient-runner";
const FILE: &str = "continuation.json";
const STAGED: &str = "continuation.json.new";
/// The largest file read back.
const MAX_BYTES: u64 = 1 << 20;

/// The continuation values of the session served from one workspace: read once, then
/// written whole at each change. The agent owns the workspace and may make the folder or
/// the file a link to anywhere; a runner that is root would then write where it leads,
/// so every step goes by descriptor, beneath the workspace, following no link.
#[derive(Debug)]
pub(crate) struct ContinuationFile {
    root: PathBuf,
    values: BTreeMap<String, String>,
}

impl ContinuationFile {
    /// The file under `root`, with the values kept so far (none when there is no file
    /// yet, or it cannot be read).
    pub(crate) fn open(root: &Path) -> Self {
        let values = match load(root) {
            Ok(values) => values,
            Err(why) => {
                warn!(root = %root.display(), %why, "the continuation file cannot be read; starting fresh");
                BTreeMap::new()
            }
        };
        Self {
            root: root.to_owned(),
            values,
        }
    }

    /// The values kept so far.
    pub(crate) fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Keeps `value` under `key`, replacing the file whole so that a crash leaves the old
    /// one or the new one.
    pub(crate) fn save(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_owned(), value.to_owned());
        match save(&self.root, &self.values) {
            Ok(()) => debug!(%key, "continuation value kept"),
            Err(error) => {
                warn!(root = %self.root.display(), %key, %error, "a continuation value could not be kept")
            }
        }
    }
}

/// How a step beneath the workspace opens: following no link.
fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )
}

/// The workspace root, and the folder in it (made if `make`).
fn folder(root: &Path, make: bool) -> Result<Option<OwnedFd>, Errno> {
    let root = openat2(
        AT_FDCWD,
        root,
        OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC),
    )?;
    if make {
        match nix::sys::stat::mkdirat(&root, FOLDER, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(errno),
        }
    }
    match openat2(
        root.as_fd(),
        FOLDER,
        beneath(OFlag::O_PATH | OFlag::O_DIRECTORY),
    ) {
        Ok(folder) => Ok(Some(folder)),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

fn save(root: &Path, values: &BTreeMap<String, String>) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(values).map_err(|error| error.to_string())?;
    let folder = folder(root, true)
        .map_err(|errno| format!("{FOLDER}: {}", errno.desc()))?
        .ok_or_else(|| format!("{FOLDER} went away"))?;
    match nix::unistd::unlinkat(&folder, STAGED, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(errno) => return Err(format!("{STAGED}: {}", errno.desc())),
    }
    let staged = openat2(
        folder.as_fd(),
        STAGED,
        beneath(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL)
            .mode(Mode::from_bits_truncate(0o600)),
    )
    .map_err(|errno| format!("{STAGED}: {}", errno.desc()))?;
    std::fs::File::from(staged)
        .write_all(&bytes)
        .map_err(|error| format!("{STAGED}: {error}"))?;
    nix::fcntl::renameat(&folder, STAGED, &folder, FILE)
        .map_err(|errno| format!("{FILE}: {}", errno.desc()))
}

fn load(root: &Path) -> Result<BTreeMap<String, String>, String> {
    let Some(folder) =
        folder(root, false).map_err(|errno| format!("{FOLDER}: {}", errno.desc()))?
    else {
        return Ok(BTreeMap::new());
    };
    let file = match openat2(
        folder.as_fd(),
        FILE,
        beneath(OFlag::O_RDONLY | OFlag::O_NONBLOCK),
    ) {
        Ok(file) => std::fs::File::from(file),
        Err(Errno::ENOENT) => return Ok(BTreeMap::new()),
        Err(errno) => return Err(format!("{FILE}: {}", errno.desc())),
    };
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    if !metadata.is_file() || metadata.len() > MAX_BYTES {
        return Err(format!(
            "{FILE} is not a regular file of at most {MAX_BYTES} bytes"
        ));
    }
    let mut text = String::new();
    file.take(MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|error| error.to_string())?;
    serde_json::from_str(&text)
        .map_err(|error| format!("{FILE} is not a JSON object of strings: {error}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::*;

    #[test]
    fn values_survive_a_new_process_and_a_broken_file_starts_fresh() {
        let root = tempfile::tempdir().unwrap();
        let mut file = ContinuationFile::open(root.path());
        assert!(file.values().is_empty());
        file.save("ambient-code.io/sdk-session-id", "abc");
        file.save("ambient-code.io/langgraph-thread-id", "t1");
        file.save("ambient-code.io/sdk-session-id", "def");
        let again = ContinuationFile::open(root.path());
        assert_eq!(
            again
                .values()
                .get("ambient-code.io/sdk-session-id")
                .unwrap(),
            "def"
        );
        assert_eq!(again.values().len(), 2);
        std::fs::write(root.path().join(FOLDER).join(FILE), "not json").unwrap();
        assert!(ContinuationFile::open(root.path()).values().is_empty());
    }

    /// The agent makes the folder, or the staged file, a link to a file of the runner's:
    /// nothing is written where it leads, and nothing is read from it.
    #[test]
    fn a_link_the_agent_put_in_place_is_never_written_through() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("shadow");
        std::fs::write(&victim, "root:secret").unwrap();
        std::os::unix::fs::symlink(&victim, elsewhere.path().join(STAGED)).unwrap();
        std::os::unix::fs::symlink(&victim, elsewhere.path().join(FILE)).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.path().join(FOLDER)).unwrap();
        let mut file = ContinuationFile::open(root.path());
        assert!(file.values().is_empty());
        file.save("ambient-code.io/sdk-session-id", "abc");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret");

        // The folder is real, the staged file a link: it is replaced, not followed.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(FOLDER)).unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join(FOLDER).join(STAGED)).unwrap();
        let mut file = ContinuationFile::open(root.path());
        file.save("ambient-code.io/sdk-session-id", "abc");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret");
        assert_eq!(
            ContinuationFile::open(root.path())
                .values()
                .get("ambient-code.io/sdk-session-id")
                .map(String::as_str),
            Some("abc")
        );
    }
}
