//! The background-task routes the platform's UI calls (`/tasks`, `/tasks/{id}/stop`,
//! `/tasks/{id}/output`), from what the adapter reports: its `tasks` report (each task
//! with the fields of the UI's `BackgroundTask`) and its `task_output_roots` (the folders
//! a task's output may be read from). A framework that reports no task has none, and
//! each route says so.

use std::path::{Path, PathBuf};

use axum::{
    Router,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tracing::info;

use crate::{content::Workspace, http::Front, hub::Command};

/// A task's output is read up to this size, as the platform's runner reads it.
const MAX_OUTPUT_BYTES: u64 = 10 << 20;

/// Outputs read at once: each may take tens of megabytes as parsed JSON, and the UI polls.
static OUTPUT_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub(crate) fn routes() -> Router<Front> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{task_id}/stop", post(stop))
        .route("/tasks/{task_id}/output", get(output))
}

/// The agent's background tasks as it last reported them.
async fn list(State(front): State<Front>) -> Response {
    axum::Json(
        front
            .hub
            .report("tasks")
            .unwrap_or_else(|| json!({"tasks": []})),
    )
    .into_response()
}

/// A task id as the CLI makes them: letters, digits, `-` and `_`. Anything else is
/// refused before it is looked up or near a path.
fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Task `id` as last reported, or the answer that says why there is none.
fn task(front: &Front, id: &str) -> Result<Value, Box<Response>> {
    if !plain_id(id) {
        return Err(Box::new(front.error(
            StatusCode::BAD_REQUEST,
            "a task id is letters, digits, '-' and '_'",
        )));
    }
    front
        .hub
        .report("tasks")
        .and_then(|report| {
            report["tasks"]
                .as_array()?
                .iter()
                .find(|task| task["task_id"] == id)
                .cloned()
        })
        .ok_or_else(|| {
            Box::new(front.error(
                StatusCode::NOT_FOUND,
                &format!("the agent has no background task {id}"),
            ))
        })
}

/// Stops a running task; one that already ended is said to have, as the platform's
/// runner says it.
async fn stop(State(front): State<Front>, UrlPath(id): UrlPath<String>) -> Response {
    let task = match task(&front, &id) {
        Ok(task) => task,
        Err(response) => return *response,
    };
    let status = task["status"].as_str().unwrap_or("running");
    if status != "running" {
        return axum::Json(json!({"message": format!("Task already {status}")})).into_response();
    }
    match front
        .ask(|reply| Command::StopTask(id.clone(), reply))
        .await
        .and_then(|stopped| stopped)
    {
        Ok(()) => {
            info!(task = %id, "background task stopped by the user");
            axum::Json(json!({"message": "stop signal sent"})).into_response()
        }
        Err(refused) => front.refusal(&refused),
    }
}

/// A task's output (a subagent's transcript, a background shell's output), one JSON value
/// per line, a line that is not JSON as `{"raw": line}`, scrubbed of secrets as all the
/// agent says is. The file is the one the framework named for this task, read only inside
/// a folder the framework fixed before the agent ran: the agent can replace the file or
/// the folders with links, and a link that leads out of them is refused.
async fn output(State(front): State<Front>, UrlPath(id): UrlPath<String>) -> Response {
    let task = match task(&front, &id) {
        Ok(task) => task,
        Err(response) => return *response,
    };
    let Some(file) = task["output_file"].as_str().map(PathBuf::from) else {
        return front.error(
            StatusCode::NOT_FOUND,
            &format!("background task {id} has no output yet"),
        );
    };
    let roots: Vec<PathBuf> = front
        .hub
        .report("task_output_roots")
        .and_then(|roots| serde_json::from_value(roots).ok())
        .unwrap_or_default();
    let Ok(permit) = OUTPUT_READS.try_acquire() else {
        return front.error(
            StatusCode::TOO_MANY_REQUESTS,
            "other task outputs are being read; ask again in a moment",
        );
    };
    let redactor = front.redactor.clone();
    let task_id = id.clone();
    let read = tokio::task::spawn_blocking(move || {
        let _reading = permit;
        let bytes = read_confined(&file, &task_id, &roots)?;
        let said = String::from_utf8_lossy(&bytes);
        let text = redactor.text(&said);
        let output: Vec<Value> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| json!({"raw": line})))
            .collect();
        Ok(axum::Json(json!({"task_id": task_id, "output": output})).into_response())
    })
    .await;
    match read {
        Ok(Ok(response)) => response,
        Ok(Err((status, why))) => front.error(status, &format!("task {id}'s output: {why}")),
        Err(_) => front.error(StatusCode::INTERNAL_SERVER_ERROR, "the read failed"),
    }
}

/// Reads `file`, task `id`'s output, where it leads, if that is a file of the task's
/// (`agent-<id>.jsonl` or `<id>.output`) inside one of `roots`: the link is followed to
/// find the root, then the file is opened beneath the root, itself opened with no link
/// on its path, so that a link swapped in meanwhile cannot lead out.
fn read_confined(
    file: &Path,
    id: &str,
    roots: &[PathBuf],
) -> Result<Vec<u8>, (StatusCode, String)> {
    let gone = |_| (StatusCode::NOT_FOUND, String::from("its file is not there"));
    let target = std::fs::canonicalize(file).map_err(gone)?;
    let named_for_the_task = target.file_name().is_some_and(|name| {
        name.to_str() == Some(&format!("agent-{id}.jsonl"))
            || name.to_str() == Some(&format!("{id}.output"))
    });
    let inside = roots.iter().find_map(|root| {
        let relative = target.strip_prefix(root).ok()?.to_owned();
        Some((root, relative))
    });
    let (Some((root, relative)), true) = (inside, named_for_the_task) else {
        return Err((
            StatusCode::FORBIDDEN,
            String::from(
                "its file is not one of the task's, in the folders the agent's outputs are kept in",
            ),
        ));
    };
    Workspace::new(root)
        .root_without_links()
        .read_small(&relative.to_string_lossy(), MAX_OUTPUT_BYTES)
        .map_err(|error| {
            let status = StatusCode::from_u16(match error.status() {
                // A path refused beneath the root is one that left it; a root that is no
                // longer a plain folder is one the agent swapped.
                400 | 500 => 403,
                status => status,
            })
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, error.to_string())
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::*;

    struct Folders {
        config: tempfile::TempDir,
        scratch: tempfile::TempDir,
        outside: tempfile::TempDir,
    }

    fn folders() -> Folders {
        let folders = Folders {
            config: tempfile::tempdir().unwrap(),
            scratch: tempfile::tempdir().unwrap(),
            outside: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(folders.config.path().join("projects/p/s/subagents")).unwrap();
        std::fs::write(
            folders.outside.path().join("runner-secret"),
            "ghp_the_runners_token",
        )
        .unwrap();
        folders
    }

    fn roots(folders: &Folders) -> Vec<PathBuf> {
        vec![
            folders.config.path().join("projects"),
            folders.scratch.path().join("claude-0"),
        ]
    }

    #[test]
    fn a_transcript_is_read_also_through_the_clis_own_link_to_it() {
        let folders = folders();
        let transcript = folders
            .config
            .path()
            .join("projects/p/s/subagents/agent-a1.jsonl");
        std::fs::write(&transcript, "{\"type\":\"user\"}\n").unwrap();
        assert_eq!(
            read_confined(&transcript, "a1", &roots(&folders)).unwrap(),
            b"{\"type\":\"user\"}\n"
        );
        let tasks = folders.scratch.path().join("claude-0/p/s/tasks");
        std::fs::create_dir_all(&tasks).unwrap();
        std::os::unix::fs::symlink(&transcript, tasks.join("a1.output")).unwrap();
        assert_eq!(
            read_confined(&tasks.join("a1.output"), "a1", &roots(&folders)).unwrap(),
            b"{\"type\":\"user\"}\n"
        );
    }

    #[test]
    fn an_output_the_agent_linked_out_of_the_folders_is_refused() {
        let folders = folders();
        let secret = folders.outside.path().join("runner-secret");
        let planted = folders
            .config
            .path()
            .join("projects/p/s/subagents/agent-a2.jsonl");
        std::os::unix::fs::symlink(&secret, &planted).unwrap();
        let (status, why) = read_confined(&planted, "a2", &roots(&folders)).unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!why.contains("ghp_"), "{why}");
        // The scratch folder beside the CLI's own is not a root either.
        let beside = folders.scratch.path().join("a2.output");
        std::fs::write(&beside, "not the CLI's").unwrap();
        assert_eq!(
            read_confined(&beside, "a2", &roots(&folders))
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
        // With no roots reported, nothing is read.
        let transcript = folders
            .config
            .path()
            .join("projects/p/s/subagents/agent-a.jsonl");
        std::fs::write(&transcript, "{}").unwrap();
        assert_eq!(
            read_confined(&transcript, "a", &[]).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn a_missing_output_a_fifo_and_one_too_large_are_refused_without_blocking() {
        let folders = folders();
        let subagents = folders.config.path().join("projects/p/s/subagents");
        assert_eq!(
            read_confined(
                &subagents.join("agent-none.jsonl"),
                "none",
                &roots(&folders)
            )
            .unwrap_err()
            .0,
            StatusCode::NOT_FOUND
        );
        let fifo = subagents.join("agent-fifo.jsonl");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            read_confined(&fifo, "fifo", &roots(&folders))
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
        let large = subagents.join("agent-large.jsonl");
        std::fs::File::create(&large)
            .unwrap()
            .set_len(MAX_OUTPUT_BYTES + 1)
            .unwrap();
        assert_eq!(
            read_confined(&large, "large", &roots(&folders))
                .unwrap_err()
                .0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    /// The agent owns the CLI's folders: a root it replaced with a link (to `/`, say) is
    /// refused, not followed, and so is a FIFO in its place, at once.
    #[test]
    fn a_root_the_agent_replaced_is_refused_without_blocking() {
        let folders = folders();
        let projects = folders.config.path().join("projects");
        let secret = folders.outside.path().join("agent-a3.jsonl");
        std::fs::write(&secret, "ghp_the_runners_token").unwrap();
        std::fs::rename(&projects, folders.config.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(folders.outside.path(), &projects).unwrap();
        let (status, why) =
            read_confined(&projects.join("agent-a3.jsonl"), "a3", &roots(&folders)).unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}");
        assert!(!why.contains("ghp_"), "{why}");
        // A link above the root is refused as well.
        let config = folders.config.path();
        std::fs::remove_file(&projects).unwrap();
        let elsewhere = folders.outside.path().join("config");
        std::fs::create_dir_all(elsewhere.join("projects")).unwrap();
        std::fs::write(elsewhere.join("projects/agent-a4.jsonl"), "{}").unwrap();
        let linked = config.join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        let through = vec![linked.join("projects")];
        assert_eq!(
            read_confined(&linked.join("projects/agent-a4.jsonl"), "a4", &through)
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
        // A FIFO where the root was: refused, not waited on.
        nix::unistd::mkfifo(&projects, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let inside = folders.outside.path().join("agent-a5.jsonl");
        std::fs::write(&inside, "{}").unwrap();
        assert_eq!(
            read_confined(&inside, "a5", &[projects]).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    /// A file of another task, or no task's, is refused even inside the folders.
    #[test]
    fn only_the_tasks_own_file_is_read() {
        let folders = folders();
        let subagents = folders.config.path().join("projects/p/s/subagents");
        std::fs::write(subagents.join("agent-other.jsonl"), "{}").unwrap();
        std::fs::write(subagents.join("notes.txt"), "{}").unwrap();
        for file in ["agent-other.jsonl", "notes.txt"] {
            assert_eq!(
                read_confined(&subagents.join(file), "mine", &roots(&folders))
                    .unwrap_err()
                    .0,
                StatusCode::FORBIDDEN,
                "{file}"
            );
        }
    }

    #[test]
    fn only_a_plain_task_id_is_looked_up() {
        for id in ["a45697f7feef25fb3", "b-1_2"] {
            assert!(plain_id(id), "{id}");
        }
        for id in ["", "../etc", "a.b", "a/b", "*", &"a".repeat(129)] {
            assert!(!plain_id(id), "{id}");
        }
    }
}
