//! `docs/runner-job.yaml`, read with the Kubernetes API types: the Job an operator runs
//! this image with sets only variables the runner reads, sets every one it needs, and
//! locks the container down.

use std::collections::BTreeSet;

use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{Container, Service},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

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

/// The documents of a manifest in `docs/`.
fn documents(file: &str) -> Vec<serde_yaml::Value> {
    let path = format!("{}/../../docs/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect()
}

/// The document of `kind` in a manifest.
fn of_kind<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    let document = documents(file)
        .into_iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("{file} has no {kind}"));
    serde_yaml::from_value(document).unwrap()
}

fn the_job() -> Job {
    of_kind("runner-job.yaml", "Job")
}

/// The Job of the AG-UI serve mode.
fn the_serving_job() -> Job {
    of_kind("runner-serve.yaml", "Job")
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
    for job in [the_job(), the_serving_job()] {
        the_runner_is_locked_down_with_resources_and_its_volumes(&job);
    }
}

fn the_runner_is_locked_down_with_resources_and_its_volumes(job: &Job) {
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
    let runner = runner_container(job);
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

#[test]
fn the_serving_job_serves_on_its_port_behind_a_service_with_the_token_from_a_secret() {
    let job = the_serving_job();
    let runner = runner_container(&job);
    let reads = variables_the_runner_reads();
    let set = runner.env.clone().unwrap_or_default();
    for variable in &set {
        assert!(
            reads.contains(&variable.name) || passed_to_the_cli(&variable.name),
            "the Job sets {}, which the runner does not read",
            variable.name
        );
    }
    for dialling in ["WEBSOCKET_URL", "AGUI_LISTEN"] {
        assert!(
            set.iter().all(|v| v.name != dialling),
            "the platform's operator sets no {dialling}, yet the Job does"
        );
    }
    let value = |name: &str| {
        set.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("the Job does not set {name}"))
            .clone()
    };
    for secret in ["AGUI_TOKEN", "BOT_TOKEN"] {
        let token = value(secret);
        assert!(
            token.value.is_none(),
            "{secret} is a literal in the manifest"
        );
        assert!(token.value_from.and_then(|f| f.secret_key_ref).is_some());
    }
    assert_eq!(value("USE_AGUI").value.as_deref(), Some("true"));
    let port: i32 = value("AGUI_PORT").value.unwrap().parse().unwrap();
    let declared = runner.ports.clone().unwrap_or_default();
    let agui = declared
        .iter()
        .find(|p| p.container_port == port)
        .expect("the container declares the port it serves on");
    let probe = runner.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(probe.path.as_deref(), Some("/health"));
    assert_eq!(
        probe.port,
        IntOrString::String(agui.name.clone().unwrap()),
        "the probe asks the served port"
    );
    let service: Service = of_kind("runner-serve.yaml", "Service");
    let session = value("SESSION_ID").value.unwrap();
    assert_eq!(
        service.metadata.name.as_deref(),
        Some(format!("session-{session}").as_str()),
        "the backend calls the Service session-<session>"
    );
    let spec = service.spec.unwrap();
    let pod_labels = job
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap_or_default();
    for (key, value) in spec.selector.unwrap_or_default() {
        assert_eq!(
            pod_labels.get(&key),
            Some(&value),
            "the Service selects {key}={value}"
        );
    }
    let target = spec.ports.unwrap()[0].target_port.clone().unwrap();
    assert_eq!(target, IntOrString::String(agui.name.clone().unwrap()));
}

/// The Job with the agent as a user of its own.
fn the_job_with_an_agent_user() -> Job {
    of_kind("runner-job-agent-user.yaml", "Job")
}

#[test]
fn with_a_separate_agent_user_only_the_runner_is_root_and_only_it_reads_the_token() {
    let job = the_job_with_an_agent_user();
    let runner = runner_container(&job);
    let reads = variables_the_runner_reads();
    let env: Vec<_> = runner.env.clone().unwrap_or_default();
    for variable in &env {
        assert!(
            reads.contains(&variable.name) || passed_to_the_cli(&variable.name),
            "the Job sets {}, which the runner does not read",
            variable.name
        );
    }
    let value = |name: &str| {
        env.iter()
            .find(|v| v.name == name)
            .and_then(|v| v.value.clone())
            .unwrap_or_else(|| panic!("{name} is not set"))
    };
    let agent: u32 = value("AGENT_UID").parse().unwrap();
    assert_ne!(agent, 0, "the agent must not be root");
    assert!(
        env.iter().all(|v| v.name != "BOT_TOKEN"),
        "the token must not be in the environment"
    );
    // The token file: a Secret volume only root reads, mounted read-only.
    let token_path = value("BOT_TOKEN_FILE");
    let mount = runner
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| token_path.starts_with(&m.mount_path))
        .expect("BOT_TOKEN_FILE is on a mounted volume");
    assert_eq!(mount.read_only, Some(true));
    let pod = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let secret = volume
        .secret
        .clone()
        .expect("the token comes from a Secret");
    assert_eq!(secret.default_mode, Some(0o400));
    // The runner is root with the capabilities switching and handing over take, and no
    // more; every other container stays the images' user.
    let security = runner.security_context.clone().unwrap();
    assert_eq!(security.run_as_user, Some(0));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let capabilities = security.capabilities.unwrap();
    assert_eq!(capabilities.drop.unwrap_or_default(), ["ALL"]);
    assert_eq!(
        capabilities.add.unwrap_or_default(),
        ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
    );
    let pod_security = pod.security_context.clone().unwrap();
    assert_eq!(pod_security.run_as_user, Some(1001));
    assert_eq!(pod_security.fs_group, Some(i64::from(agent)));
}
