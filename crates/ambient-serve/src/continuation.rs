//! What an adapter keeps for a later session, on the workspace volume: with no backend to
//! hold annotations, a restarted pod finds its thread or CLI session here.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use tracing::{debug, warn};

/// The file, under the workspace root.
const FILE: &str = ".ambient-runner/continuation.json";

/// The continuation values of the session served from one workspace: read once, then
/// written whole at each change.
#[derive(Debug)]
pub(crate) struct ContinuationFile {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl ContinuationFile {
    /// The file under `root`, with the values kept so far (none when there is no file
    /// yet, or it cannot be read).
    pub(crate) fn open(root: &Path) -> Self {
        let path = root.join(FILE);
        let values = load(&path);
        Self { path, values }
    }

    /// The values kept so far.
    pub(crate) fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Keeps `value` under `key`, replacing the file whole so that a crash leaves the old
    /// one or the new one.
    pub(crate) fn save(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_owned(), value.to_owned());
        let written = (|| {
            if let Some(folder) = self.path.parent() {
                std::fs::create_dir_all(folder)?;
            }
            let staged = self.path.with_extension("json.new");
            std::fs::write(&staged, serde_json::to_vec_pretty(&self.values)?)?;
            std::fs::rename(&staged, &self.path)
        })();
        match written {
            Ok(()) => debug!(%key, "continuation value kept"),
            Err(error) => {
                warn!(path = %self.path.display(), %key, %error, "a continuation value could not be kept")
            }
        }
    }
}

fn load(path: &Path) -> BTreeMap<String, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(error) => {
            warn!(path = %path.display(), %error, "the continuation file cannot be read; starting fresh");
            return BTreeMap::new();
        }
    };
    serde_json::from_str(&text).unwrap_or_else(|error| {
        warn!(path = %path.display(), %error, "the continuation file is not a JSON object of strings; starting fresh");
        BTreeMap::new()
    })
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
        std::fs::write(root.path().join(FILE), "not json").unwrap();
        assert!(ContinuationFile::open(root.path()).values().is_empty());
    }
}
