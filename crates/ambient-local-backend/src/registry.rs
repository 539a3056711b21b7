//! The session resources: what the `AgenticSession` custom resources of a cluster would
//! hold, kept in memory and keyed by project and name (a resource is namespaced, unlike
//! the hub's connections).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard, PoisonError},
};

use ambient_protocol::status::{AgenticSession, ObjectMeta, Phase, STATUS_FIELDS, SessionStatus};
use serde_json::{Map, Value};

use crate::SessionSeed;

/// The API version of the custom resource.
const API_VERSION: &str = "vteam.ambient-code/v1alpha1";
/// The kind of the custom resource.
const KIND: &str = "AgenticSession";

/// One session resource.
#[derive(Debug, Clone)]
struct Resource {
    annotations: BTreeMap<String, String>,
    spec: Value,
    status: Map<String, Value>,
}

/// Why an annotation patch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchError {
    /// No such session.
    NotFound,
    /// An annotation value is not a string (the API server would refuse the update).
    NotAString,
}

/// Every session resource.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    resources: Mutex<HashMap<(String, String), Resource>>,
}

impl Registry {
    pub(crate) fn new(seeds: Vec<SessionSeed>) -> Self {
        let resources = seeds
            .into_iter()
            .map(|seed| {
                let mut status = Map::new();
                status.insert("phase".to_owned(), Value::String(seed.phase.to_string()));
                let resource = Resource {
                    annotations: seed.annotations,
                    spec: seed.spec,
                    status,
                };
                ((seed.project, seed.name), resource)
            })
            .collect();
        Self {
            resources: Mutex::new(resources),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Resource>> {
        // Every update below leaves a resource whole, so a poisoned lock is still usable.
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, project: &str, name: &str) -> bool {
        self.lock().contains_key(&key(project, name))
    }

    /// The resource as `GET …/agentic-sessions/{s}` returns it, status in full.
    pub(crate) fn resource_json(&self, project: &str, name: &str) -> Option<Value> {
        let resources = self.lock();
        let resource = resources.get(&key(project, name))?;
        let mut metadata = Map::new();
        metadata.insert("name".to_owned(), Value::String(name.to_owned()));
        metadata.insert("namespace".to_owned(), Value::String(project.to_owned()));
        metadata.insert(
            "annotations".to_owned(),
            annotations_json(&resource.annotations),
        );
        let mut object = Map::new();
        object.insert(
            "apiVersion".to_owned(),
            Value::String(API_VERSION.to_owned()),
        );
        object.insert("kind".to_owned(), Value::String(KIND.to_owned()));
        object.insert("metadata".to_owned(), Value::Object(metadata));
        object.insert("spec".to_owned(), resource.spec.clone());
        object.insert("status".to_owned(), Value::Object(resource.status.clone()));
        Some(Value::Object(object))
    }

    /// The resource as a runner reads it.
    pub(crate) fn session(&self, project: &str, name: &str) -> Option<AgenticSession> {
        let resources = self.lock();
        let resource = resources.get(&key(project, name))?;
        // Read field by field so that a status PUT with an odd phase string does not make
        // the whole resource unreadable here.
        let phase = resource
            .status
            .get("phase")
            .and_then(|phase| serde_json::from_value::<Phase>(phase.clone()).ok());
        let message = resource
            .status
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(AgenticSession {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: ObjectMeta {
                name: name.to_owned(),
                namespace: Some(project.to_owned()),
                annotations: resource.annotations.clone(),
            },
            spec: resource.spec.clone(),
            status: Some(SessionStatus { phase, message }),
        })
    }

    pub(crate) fn status(&self, project: &str, name: &str) -> Option<Map<String, Value>> {
        self.lock()
            .get(&key(project, name))
            .map(|resource| resource.status.clone())
    }

    /// Keeps the whitelisted keys of `update` and merges them into the status; `false` if
    /// there is no such session.
    pub(crate) fn merge_status(
        &self,
        project: &str,
        name: &str,
        update: Map<String, Value>,
    ) -> bool {
        let mut resources = self.lock();
        let Some(resource) = resources.get_mut(&key(project, name)) else {
            return false;
        };
        for (field, value) in update {
            if STATUS_FIELDS.contains(&field.as_str()) {
                resource.status.insert(field, value);
            }
        }
        true
    }

    /// Merges `metadata.annotations` of a patch body; returns every annotation after it.
    pub(crate) fn patch_annotations(
        &self,
        project: &str,
        name: &str,
        patch: &Map<String, Value>,
    ) -> Result<BTreeMap<String, String>, PatchError> {
        let mut resources = self.lock();
        let resource = resources
            .get_mut(&key(project, name))
            .ok_or(PatchError::NotFound)?;
        let Some(Value::Object(annotations)) = patch
            .get("metadata")
            .and_then(|metadata| metadata.get("annotations"))
        else {
            return Ok(resource.annotations.clone());
        };
        let mut merged = resource.annotations.clone();
        for (annotation, value) in annotations {
            let Value::String(value) = value else {
                return Err(PatchError::NotAString);
            };
            merged.insert(annotation.clone(), value.clone());
        }
        resource.annotations.clone_from(&merged);
        Ok(merged)
    }
}

fn key(project: &str, name: &str) -> (String, String) {
    (project.to_owned(), name.to_owned())
}

fn annotations_json(annotations: &BTreeMap<String, String>) -> Value {
    Value::Object(
        annotations
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect(),
    )
}
