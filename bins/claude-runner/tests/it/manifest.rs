//! `docs/runner-job.yaml`, read with the Kubernetes API types: the Job an operator runs
//! this image with sets only variables the runner reads, sets every one it needs, and
//! locks the container down.

use std::collections::BTreeSet;

use k8s_openapi::api::{batch::v1::Job, core::v1::Container};

/// Every variable `claude-runner --help` names: the ones the runner reads.
fn variables_the_runner_reads() -> BTreeSet<String> {
    ambient_test_support::harness::help_names_every_variable(env!("CARGO_BIN_EXE_claude-runner"))
        .into_iter()
        .collect()
}

/// Variables the runner does not read but passes to the CLI on purpose.
fn passed_to_the_cli(name: &str) -> bool {
    name == "HOME" || name.starts_with("CLAUDE_") || name.starts_with("ANTHROPIC_")
}

fn the_job() -> Job {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/runner-job.yaml"
    ))
    .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn runner_container(job: &Job) -> Container {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers
        .iter()
        .find(|c| c.name == "ambient-code-runner")
        .cloned()
        .expect("a container named ambient-code-runner, as the operator names it")
}

#[test]
fn the_job_sets_only_variables_the_runner_reads_and_every_one_it_needs() {
    let job = the_job();
    let runner = runner_container(&job);
    let reads = variables_the_runner_reads();
    assert!(
        reads.contains("SESSION_ID"),
        "the help names no variables: {reads:?}"
    );
    let set: Vec<_> = runner.env.clone().unwrap_or_default();
    for variable in &set {
        assert!(
            reads.contains(&variable.name) || passed_to_the_cli(&variable.name),
            "the Job sets {}, which the runner does not read",
            variable.name
        );
    }
    for needed in [
        "SESSION_ID",
        "WEBSOCKET_URL",
        "BOT_TOKEN",
        "AGENTIC_SESSION_NAMESPACE",
        "BACKEND_API_URL",
        "WORKSPACE_PATH",
        "PROMPT",
    ] {
        assert!(
            set.iter().any(|v| v.name == needed),
            "the Job does not set {needed}"
        );
    }
    // The token comes from its Secret, never as a literal in the manifest.
    let token = set.iter().find(|v| v.name == "BOT_TOKEN").unwrap();
    assert!(token.value.is_none());
    assert!(
        token
            .value_from
            .as_ref()
            .and_then(|from| from.secret_key_ref.as_ref())
            .is_some()
    );
}

#[test]
fn the_job_runs_the_runner_locked_down_with_resources_and_its_volumes() {
    let job = the_job();
    let pod = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let pod_security = pod.security_context.clone().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(1001), "the images' user");
    let volumes: BTreeSet<String> = pod
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    for container in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let security = container.security_context.clone().unwrap_or_default();
        assert_eq!(
            security.allow_privilege_escalation,
            Some(false),
            "{}",
            container.name
        );
        assert_eq!(
            security.read_only_root_filesystem,
            Some(true),
            "{}",
            container.name
        );
        let dropped = security
            .capabilities
            .and_then(|c| c.drop)
            .unwrap_or_default();
        assert_eq!(dropped, ["ALL"], "{}", container.name);
        let resources = container.resources.clone().unwrap_or_default();
        assert!(
            resources.limits.is_some() && resources.requests.is_some(),
            "{} has no requests and limits",
            container.name
        );
        for mount in container.volume_mounts.iter().flatten() {
            assert!(
                volumes.contains(&mount.name),
                "{} mounts {}, which the pod does not declare",
                container.name,
                mount.name
            );
        }
    }
    let runner = runner_container(&job);
    let mounts: Vec<&str> = runner
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    for path in ["/workspace", "/app/.claude", "/tmp"] {
        assert!(
            mounts.contains(&path),
            "the runner has no {path}: {mounts:?}"
        );
    }
}
