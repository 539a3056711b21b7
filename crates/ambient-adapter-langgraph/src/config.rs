//! The adapter's settings: the server, the workflow, and `WORKFLOW_CONFIG`.

use ambient_protocol::Secret;

use crate::driver::DriverSettings;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The stream modes every run asks for: `updates` carries node outputs, whole messages
/// and interrupts (without it the server hides interrupts), `messages-tuple` the tokens,
/// `custom` what nodes write to the stream.
pub const REQUIRED_STREAM_MODES: [&str; 3] = ["updates", "messages-tuple", "custom"];

/// The stream mode that carries the graph's state after each step, asked for when the
/// state is wanted ([`WorkflowConfig::stream_state`]).
pub const STATE_STREAM_MODE: &str = "values";

/// The stream modes a server knows.
const KNOWN_STREAM_MODES: [&str; 9] = [
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "tasks",
    "checkpoints",
    "debug",
    "events",
];

/// A setting that cannot be used; it names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} is invalid: {reason}")]
pub struct ConfigError {
    /// The environment variable (or `WORKFLOW_CONFIG` key) at fault.
    pub variable: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &str, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What to do with a user message that arrives while a run is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusyPolicy {
    /// Keep it; it starts the next run when the current one ends (or answers the question
    /// the current one ends with). Nothing the user says is dropped.
    #[default]
    Queue,
    /// Cancel the current run, then start one with the message.
    Interrupt,
}

/// `WORKFLOW_CONFIG`: how to run the workflow. Every key is optional; an unknown key is
/// an error, so that a typo is not silently ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// The LangGraph Server, when the workflow runs on one (as `LANGGRAPH_URL`).
    #[serde(default)]
    pub url: Option<String>,
    /// The run's `config` (`configurable`, `tags`, `recursion_limit`, …).
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
    /// The run's `context` (the graph's `context_schema`).
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Metadata stored on each run.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// Stream modes to ask for besides [`REQUIRED_STREAM_MODES`].
    #[serde(default)]
    pub stream_mode: Vec<String>,
    /// Stream what subgraphs do, too.
    #[serde(default = "yes")]
    pub stream_subgraphs: bool,
    /// The input every run starts from; the user's message is added to it.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// The input field the user's message goes in. `messages` gets a list holding one
    /// user message; any other field gets the text itself. Unset, the graph's input
    /// schema decides ([`prompt_field_for`]).
    #[serde(default)]
    pub prompt_field: Option<String>,
    /// What to do with a message that arrives while a run is going.
    #[serde(default)]
    pub on_busy: BusyPolicy,
    /// In the pod: the file that keeps the threads' checkpoints between processes
    /// [default: `.langgraph-runner/checkpoints.sqlite` in the workspace root; a
    /// `checkpoints.pkl` of the earlier format beside it is carried over once].
    #[serde(default)]
    pub checkpoints: Option<std::path::PathBuf>,
    /// Relay the graph's state after each step (`Event::State`): set by the binary for
    /// the AG-UI serve mode, which streams it. The WebSocket protocol has no frame for
    /// it, and the whole state after every step grows with the conversation, so it is
    /// not asked for otherwise.
    #[serde(skip)]
    pub stream_state: bool,
}

fn yes() -> bool {
    true
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            url: None,
            config: None,
            context: None,
            metadata: None,
            stream_mode: Vec::new(),
            stream_subgraphs: true,
            input: Map::new(),
            prompt_field: None,
            on_busy: BusyPolicy::Queue,
            checkpoints: None,
            stream_state: false,
        }
    }
}

impl WorkflowConfig {
    /// Reads `WORKFLOW_CONFIG`; empty means the defaults.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_json::from_str(text)
            .map_err(|error| ConfigError::new("WORKFLOW_CONFIG", error.to_string()))?;
        if let Some(unknown) = config
            .stream_mode
            .iter()
            .find(|mode| !KNOWN_STREAM_MODES.contains(&mode.as_str()))
        {
            return Err(ConfigError::new(
                "WORKFLOW_CONFIG",
                format!(
                    "stream_mode `{unknown}` is not one of {}",
                    KNOWN_STREAM_MODES.join(", ")
                ),
            ));
        }
        if config
            .prompt_field
            .as_deref()
            .is_some_and(|field| field.trim().is_empty())
        {
            return Err(ConfigError::new("WORKFLOW_CONFIG", "prompt_field is empty"));
        }
        Ok(config)
    }

    /// The stream modes a run asks for.
    pub fn stream_modes(&self) -> Vec<String> {
        let mut modes: Vec<String> = REQUIRED_STREAM_MODES.map(String::from).to_vec();
        if self.stream_state {
            modes.push(String::from(STATE_STREAM_MODE));
        }
        for mode in &self.stream_mode {
            if !modes.contains(mode) {
                modes.push(mode.clone());
            }
        }
        modes
    }

    /// The input of a run that starts with the user's `message`, put in `field`.
    pub fn input_for(&self, message: &str, field: &str) -> Value {
        let mut input = self.input.clone();
        let value = if field == MESSAGES {
            serde_json::json!([{ "role": "user", "content": message }])
        } else {
            Value::String(message.to_owned())
        };
        input.insert(field.to_owned(), value);
        Value::Object(input)
    }
}

/// The state key of a chat graph's conversation.
pub const MESSAGES: &str = "messages";

/// The fields a JSON Schema object names, in its order.
fn properties(schema: Option<&Value>) -> Option<&Map<String, Value>> {
    schema?
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
}

/// Where the prompt goes: `explicit` when set; else `messages` when the graph's input
/// takes it, or its only text field; an input schema the runner cannot read means
/// `messages`. An error says what the input takes and what to set.
pub fn prompt_field_for(
    explicit: Option<&str>,
    input_schema: Option<&Value>,
    graph: &str,
) -> Result<String, String> {
    if let Some(field) = explicit {
        return Ok(field.to_owned());
    }
    let Some(fields) = properties(input_schema) else {
        return Ok(String::from(MESSAGES));
    };
    if fields.contains_key(MESSAGES) {
        return Ok(String::from(MESSAGES));
    }
    let texts: Vec<&String> = fields
        .iter()
        .filter(|(_, field)| field.get("type").and_then(Value::as_str) == Some("string"))
        .map(|(name, _)| name)
        .collect();
    if let [only] = texts[..] {
        return Ok(only.clone());
    }
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    Err(format!(
        "the graph `{graph}` takes no `messages` and {} text field in its input ({}): set \
         `prompt_field` in WORKFLOW_CONFIG to the field the prompt goes in",
        if texts.is_empty() {
            "no"
        } else {
            "more than one"
        },
        names.join(", ")
    ))
}

/// The answer of a run that said nothing, from the graph's state after it: `None` for a
/// chat graph (its answer is its messages). The keys the output schema names, else the
/// whole state; one text field is shown as its text, anything else as indented JSON.
pub fn answer_from_state(values: &Value, output_schema: Option<&Value>) -> Option<String> {
    let Value::Object(state) = values else {
        return None;
    };
    if state.contains_key(MESSAGES) || state.is_empty() {
        return None;
    }
    let shown: Map<String, Value> = match properties(output_schema) {
        Some(keys) => state
            .iter()
            .filter(|(key, _)| keys.contains_key(*key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        None => state
            .iter()
            .filter(|(key, _)| !key.starts_with("__"))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    };
    match shown.len() {
        0 => None,
        1 => shown.values().next().map(|value| match value {
            Value::String(text) => text.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        }),
        _ => serde_json::to_string_pretty(&Value::Object(shown)).ok(),
    }
}

/// Where the workflow runs.
#[derive(Debug, Clone)]
pub enum Engine {
    /// On a LangGraph Server.
    Server {
        /// Its base URL.
        url: String,
        /// Sent as `x-api-key` (`LANGGRAPH_API_KEY`).
        api_key: Option<Secret>,
    },
    /// In the pod, by the driver.
    Driver(DriverSettings),
}

/// Everything the adapter needs to run a workflow.
#[derive(Debug, Clone)]
pub struct LangGraphSettings {
    /// The server, or the driver.
    pub engine: Engine,
    /// The assistant id or graph name, or for the driver also `module:attribute`
    /// (`WORKFLOW_ID`).
    pub assistant: String,
    /// `WORKFLOW_CONFIG`.
    pub workflow: WorkflowConfig,
    /// The largest answer or streamed event read from a server.
    pub max_event_bytes: usize,
    /// How long a call to a server waits for its answer.
    pub response_timeout: std::time::Duration,
}

impl LangGraphSettings {
    /// Validates the settings as the environment gives them: `url` from `LANGGRAPH_URL`,
    /// `workflow_id` from `WORKFLOW_ID`, `api_key` from `LANGGRAPH_API_KEY`,
    /// `workflow_config` from `WORKFLOW_CONFIG`. A server URL (here or in the workflow
    /// configuration) means the server; without one the workflow runs in the pod with
    /// `driver`. Each error names its variable.
    pub fn from_env_values(
        url: Option<&str>,
        workflow_id: Option<&str>,
        api_key: Option<&str>,
        workflow_config: Option<&str>,
        driver: DriverSettings,
    ) -> Result<Self, ConfigError> {
        let workflow = WorkflowConfig::parse(workflow_config.unwrap_or_default())?;
        let assistant = workflow_id
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    "WORKFLOW_ID",
                    "it is required: the graph to run (a name in langgraph.json, `module:attribute`, or a server's assistant id)",
                )
            })?
            .to_owned();
        let url = match (url.map(str::trim).filter(|u| !u.is_empty()), &workflow.url) {
            (Some(env), Some(config))
                if env.trim_end_matches('/') != config.trim_end_matches('/') =>
            {
                return Err(ConfigError::new(
                    "LANGGRAPH_URL",
                    format!("it says {env} but WORKFLOW_CONFIG's url says {config}; set one"),
                ));
            }
            (Some(url), _) => Some(url.to_owned()),
            (None, Some(url)) => Some(url.clone()),
            (None, None) => None,
        };
        let engine = match url {
            Some(url) => {
                check_url(&url)?;
                let api_key = api_key
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(Secret::new);
                Engine::Server { url, api_key }
            }
            None => Engine::Driver(driver),
        };
        Ok(Self {
            engine,
            assistant,
            workflow,
            max_event_bytes: crate::DEFAULT_MAX_EVENT_BYTES,
            response_timeout: crate::DEFAULT_RESPONSE_TIMEOUT,
        })
    }
}

fn check_url(url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|error| {
        ConfigError::new("LANGGRAPH_URL", format!("`{url}` is not a URL: {error}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            "LANGGRAPH_URL",
            format!("`{url}` is not an http or https URL"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in a URL end up in error messages and logs.
        return Err(ConfigError::new(
            "LANGGRAPH_URL",
            "it holds credentials; pass the key in LANGGRAPH_API_KEY instead",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{answer_from_state, prompt_field_for};

    #[test]
    fn the_prompt_goes_where_the_graphs_input_can_take_it() {
        let schema = |properties: serde_json::Value| json!({ "properties": properties });
        let text = json!({"type": "string"});
        let number = json!({"type": "integer"});
        let cases = [
            (
                None,
                Some(schema(json!({"messages": {}, "topic": text}))),
                "messages",
            ),
            (
                None,
                Some(schema(json!({"request": text, "n": number}))),
                "request",
            ),
            (Some("topic"), Some(schema(json!({"a": number}))), "topic"),
            // A schema the runner cannot read: a chat graph, as before.
            (None, None, "messages"),
            (None, Some(json!({})), "messages"),
        ];
        for (explicit, input, expected) in cases {
            assert_eq!(
                prompt_field_for(explicit, input.as_ref(), "g").as_deref(),
                Ok(expected),
                "{input:?}"
            );
        }
        let none = prompt_field_for(None, Some(&schema(json!({"a": number}))), "g").unwrap_err();
        assert!(none.contains("no text field in its input (a)"), "{none}");
        let two =
            prompt_field_for(None, Some(&schema(json!({"a": text, "b": text}))), "g").unwrap_err();
        assert!(
            two.contains("more than one text field in its input (a, b)"),
            "{two}"
        );
    }

    #[test]
    fn a_graph_without_messages_answers_with_its_output() {
        let state = json!({"request": "r", "plan": "p", "result": "done", "__x": 1});
        let output = json!({"properties": {"result": {}}});
        assert_eq!(
            answer_from_state(&state, Some(&output)).as_deref(),
            Some("done")
        );
        let whole = answer_from_state(&state, None).unwrap();
        assert!(
            whole.contains("\"plan\": \"p\"") && !whole.contains("__x"),
            "{whole}"
        );
        // A chat graph's answer is its messages; an empty state says nothing.
        assert_eq!(answer_from_state(&json!({"messages": []}), None), None);
        assert_eq!(answer_from_state(&json!({}), None), None);
    }
}
