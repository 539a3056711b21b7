//! The session's trace sent over OTLP/HTTP (protobuf), when the standard variables name a
//! collector; with none, nothing is installed and the host's spans are OpenTelemetry's
//! no-ops.
//!
//! Three rules hold whatever the collector does:
//! - export never holds the session up: spans wait in the SDK's batch queue (bounded,
//!   [`MAX_QUEUED_SPANS`]; past it, spans are dropped), and a background thread sends
//!   them with a timeout per request;
//! - at the end, what is queued gets [`FLUSH_BUDGET`] to go out, and no more;
//! - every string that leaves (span names, attributes, events, status messages) passes
//!   through the process's redactor first (`RedactingExporter`).

use std::{borrow::Cow, collections::HashMap, fmt, time::Duration};

use ambient_host::Redactor;
use ambient_protocol::Secret;
use base64::Engine as _;
use opentelemetry::{Array, KeyValue, StringValue, Value, trace::Status};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter},
};

/// Spans waiting to be exported; past it, new spans are dropped (the session goes on).
pub const MAX_QUEUED_SPANS: usize = 2048;
/// How long what is queued at the end may take to go out.
pub const FLUSH_BUDGET: Duration = Duration::from_secs(3);
/// The largest answer read from a collector.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The default `service.name`, when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` names one: the runner's own name.
const SERVICE_NAME: &str = "service.name";

/// OpenTelemetry's standard variables, as far as the runner uses them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtelArgs {
    /// The OTLP/HTTP collector's base URL; traces go to `<it>/v1/traces`. Unset: no
    /// trace is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_endpoint: Option<String>,
    /// The full URL traces go to, instead of the one derived from the base.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otel_traces_endpoint: Option<String>,
    /// Headers for every export request, `key=value` pairs separated by commas, values
    /// percent-encoded (`Authorization=Basic%20…` for Langfuse). Treated as secrets.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", hide_env_values = true)]
    pub otel_headers: Option<String>,
    /// Headers for trace exports only (read by the exporter itself). Treated as secrets.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        hide_env_values = true
    )]
    pub otel_traces_headers: Option<String>,
    /// Headers for metric exports only (read by the exporter itself). Treated as secrets.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        hide_env_values = true
    )]
    pub otel_metrics_headers: Option<String>,
    /// The `service.name` of the runner's spans (default: the runner's name).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
    /// More resource attributes, `key=value` pairs separated by commas.
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES")]
    pub otel_resource_attributes: Option<String>,
    /// The longest one export request may take, in milliseconds.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", default_value_t = 10_000)]
    pub otel_timeout_ms: u64,
    /// The full URL metrics go to, instead of `<endpoint>/v1/metrics`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")]
    pub otel_metrics_endpoint: Option<String>,
    /// How often the session's metrics are exported, in milliseconds (and once more at
    /// the end).
    #[arg(long, env = "OTEL_METRIC_EXPORT_INTERVAL", default_value_t = 60_000)]
    pub otel_metric_interval_ms: u64,
}

/// What is wrong with the OpenTelemetry settings.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// A list variable has an entry without `=`.
    #[error("{variable}: the entry {entry:?} is not key=value")]
    NotKeyValue {
        /// The variable.
        variable: &'static str,
        /// The entry, for a header its key only (its value may be a secret).
        entry: String,
    },
    /// The exporter could not be built.
    #[error("the OTLP exporter could not be built: {0}")]
    Exporter(String),
}

impl OtelArgs {
    /// The endpoint traces go to, when export is on.
    fn traces_endpoint(&self) -> Option<String> {
        signal_endpoint(&self.otel_traces_endpoint, &self.otel_endpoint, "traces")
    }

    /// The endpoint metrics go to, when export is on.
    fn metrics_endpoint(&self) -> Option<String> {
        signal_endpoint(&self.otel_metrics_endpoint, &self.otel_endpoint, "metrics")
    }

    /// The header values, for the redactor: a collector's key must never be logged or
    /// sent anywhere else. Of an `Authorization` value, its credentials are secrets on
    /// their own too (the token after `Bearer`; after `Basic`, the pair it encodes and
    /// its password), since they can show without the scheme.
    pub fn secret_values(&self) -> Vec<Secret> {
        let mut secrets = Vec::new();
        let mut values: Vec<String> = Vec::new();
        for list in [
            &self.otel_headers,
            &self.otel_traces_headers,
            &self.otel_metrics_headers,
        ] {
            let pairs = entries(list.as_deref().unwrap_or_default())
                .filter_map(|entry| entry.split_once('='));
            for (_, raw) in pairs {
                // As sent (the exporter keeps a value it cannot decode) and decoded.
                values.push(raw.trim().to_owned());
                values.push(percent_decode(raw.trim()));
            }
        }
        for value in values {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            secrets.push(Secret::new(value));
            let Some((scheme, credentials)) = value.split_once(char::is_whitespace) else {
                continue;
            };
            let credentials = credentials.trim();
            secrets.push(Secret::new(credentials));
            if scheme.eq_ignore_ascii_case("basic")
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials)
                && let Ok(pair) = String::from_utf8(decoded)
            {
                if let Some((_, password)) = pair.split_once(':') {
                    secrets.push(Secret::new(password));
                }
                secrets.push(Secret::new(pair));
            }
        }
        secrets.retain(|secret| !secret.is_empty());
        secrets
    }

    fn headers(&self) -> Result<HashMap<String, String>, OtelError> {
        key_values(
            "OTEL_EXPORTER_OTLP_HEADERS",
            self.otel_headers.as_deref(),
            true,
        )
        .map(|pairs| pairs.into_iter().collect())
    }

    /// Installs the tracer and meter providers when an endpoint is set; `None` when
    /// none is.
    pub fn install(
        &self,
        runner: &str,
        redactor: Redactor,
        runtime: tokio::runtime::Handle,
    ) -> Result<Option<Tracing>, OtelError> {
        let Some(endpoint) = self.traces_endpoint() else {
            return Ok(None);
        };
        let timeout = Duration::from_millis(self.otel_timeout_ms.max(1));
        let client = ExportClient {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|error| OtelError::Exporter(error.to_string()))?,
            runtime,
        };
        let resource = self.resource(runner)?;
        // Metrics go with the traces, where a base or a metrics URL says where.
        let meters = match self.metrics_endpoint() {
            Some(metrics_endpoint) => {
                let metrics = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(metrics_endpoint)
                    .with_timeout(timeout)
                    .with_headers(self.headers()?)
                    .build()
                    .map_err(|error| {
                        OtelError::Exporter(redactor.text(&error.to_string()).into_owned())
                    })?;
                let meters = SdkMeterProvider::builder()
                    .with_reader(
                        PeriodicReader::builder(metrics)
                            .with_interval(Duration::from_millis(
                                self.otel_metric_interval_ms.max(100),
                            ))
                            .build(),
                    )
                    .with_resource(resource.clone())
                    .build();
                opentelemetry::global::set_meter_provider(meters.clone());
                Some(meters)
            }
            None => None,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .with_headers(self.headers()?)
            .build()
            .map_err(|error| OtelError::Exporter(redactor.text(&error.to_string()).into_owned()))?;
        let exporter = RedactingExporter {
            inner: exporter,
            redactor,
        };
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUED_SPANS)
                    .with_scheduled_delay(Duration::from_secs(2))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(Some(Tracing { provider, meters }))
    }

    fn resource(&self, runner: &str) -> Result<Resource, OtelError> {
        let mut attributes: Vec<KeyValue> = key_values(
            "OTEL_RESOURCE_ATTRIBUTES",
            self.otel_resource_attributes.as_deref(),
            false,
        )?
        .into_iter()
        .map(|(key, value)| KeyValue::new(key, value))
        .collect();
        let named = self
            .otel_service_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty());
        match named {
            Some(name) => {
                attributes.retain(|kv| kv.key.as_str() != SERVICE_NAME);
                attributes.push(KeyValue::new(SERVICE_NAME, name.to_owned()));
            }
            None if !attributes.iter().any(|kv| kv.key.as_str() == SERVICE_NAME) => {
                attributes.push(KeyValue::new(SERVICE_NAME, runner.to_owned()));
            }
            None => {}
        }
        attributes.push(KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ));
        Ok(Resource::builder_empty()
            .with_attributes(attributes)
            .build())
    }
}

/// A signal's own URL, or the base's `/v1/<signal>`; `None` when neither is set.
fn signal_endpoint(own: &Option<String>, base: &Option<String>, signal: &str) -> Option<String> {
    let non_empty = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    non_empty(own).or_else(|| {
        non_empty(base).map(|base| format!("{}/v1/{signal}", base.trim_end_matches('/')))
    })
}

/// `key=value,key=value`, values percent-decoded. `secret_values` keeps an entry's value
/// out of the error.
fn key_values(
    variable: &'static str,
    list: Option<&str>,
    secret_values: bool,
) -> Result<Vec<(String, String)>, OtelError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    entries(list)
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), percent_decode(value.trim())))
            }
            _ => Err(OtelError::NotKeyValue {
                variable,
                entry: if secret_values {
                    entry.split('=').next().unwrap_or_default().to_owned()
                } else {
                    entry.to_owned()
                },
            }),
        })
        .collect()
}

/// The entries of a comma-separated list, trimmed, the empty ones left out.
fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

/// `%XX` sequences decoded; anything else kept as it is.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The installed providers, to flush at the end.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
    meters: Option<SdkMeterProvider>,
}

impl Tracing {
    /// Sends what is queued, within [`FLUSH_BUDGET`]; what has not gone out by then is
    /// given up. Runs the blocking shutdown on a thread of its own, so that the runtime
    /// goes on serving the export it waits for.
    pub async fn shutdown(self) {
        let Self { provider, meters } = self;
        let flushing = tokio::task::spawn_blocking(move || {
            // Both at once, each on its own thread; the caller's timeout bounds the two.
            let metrics = meters.map(|meters| {
                std::thread::spawn(move || meters.shutdown_with_timeout(FLUSH_BUDGET))
            });
            let traces = provider.shutdown_with_timeout(FLUSH_BUDGET);
            let metrics = metrics.map_or(Ok(()), |flushing| {
                flushing.join().unwrap_or_else(|_| {
                    Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                        String::from("the metrics' flush panicked"),
                    ))
                })
            });
            traces.and(metrics)
        });
        match tokio::time::timeout(FLUSH_BUDGET + Duration::from_millis(500), flushing).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "the last spans or metrics were not exported")
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(budget = ?FLUSH_BUDGET, "the last spans or metrics were not exported in time");
            }
        }
    }
}

/// The exporter's HTTP client: the runner's own reqwest, its requests run on the
/// runner's runtime (the SDK's export thread only waits for them).
#[derive(Clone)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let mut response = client.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err::<_, HttpError>("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            Ok(answer.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

/// Scrubs every string of a span before the exporter sees it.
#[derive(Debug)]
struct RedactingExporter<E> {
    inner: E,
    redactor: Redactor,
}

impl<E: SpanExporter> SpanExporter for RedactingExporter<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            self.scrub(span);
        }
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E> RedactingExporter<E> {
    fn scrub(&self, span: &mut SpanData) {
        if let Cow::Owned(clean) = self.redactor.text(&span.name) {
            span.name = Cow::Owned(clean);
        }
        self.attributes(&mut span.attributes);
        for event in &mut span.events.events {
            if let Cow::Owned(clean) = self.redactor.text(&event.name) {
                event.name = Cow::Owned(clean);
            }
            self.attributes(&mut event.attributes);
        }
        for link in &mut span.links.links {
            self.attributes(&mut link.attributes);
        }
        if let Status::Error { description } = &mut span.status
            && let Cow::Owned(clean) = self.redactor.text(description)
        {
            *description = Cow::Owned(clean);
        }
    }

    fn attributes(&self, attributes: &mut [KeyValue]) {
        for attribute in attributes {
            let clean = match &attribute.value {
                Value::String(text) => match self.redactor.text(text.as_str()) {
                    Cow::Owned(clean) => Value::String(clean.into()),
                    Cow::Borrowed(_) => continue,
                },
                Value::Array(Array::String(items)) => Value::Array(Array::String(
                    items
                        .iter()
                        .map(|item| {
                            StringValue::from(self.redactor.text(item.as_str()).into_owned())
                        })
                        .collect(),
                )),
                _ => continue,
            };
            attribute.value = clean;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_as_the_specification_writes_them() {
        assert_eq!(
            key_values("X", Some("a=1, b = x%20y ,,c=%zz"), false).unwrap(),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y".to_owned()),
                ("c".to_owned(), "%zz".to_owned()),
            ]
        );
    }

    #[test]
    fn a_malformed_header_is_named_by_its_key_never_its_value() {
        let error = key_values("OTEL_EXPORTER_OTLP_HEADERS", Some("Authorization"), true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{error}");
        let args = OtelArgs {
            otel_headers: Some("Authorization=Basic%20c2VjcmV0".to_owned()),
            ..OtelArgs::default()
        };
        let exposed = |args: &OtelArgs| -> Vec<String> {
            args.secret_values()
                .iter()
                .map(|secret| secret.expose().to_owned())
                .collect()
        };
        let secrets = exposed(&args);
        // `c2VjcmV0` is `secret`, with no user.
        // As sent, and decoded.
        assert_eq!(
            secrets,
            ["Basic%20c2VjcmV0", "Basic c2VjcmV0", "c2VjcmV0", "secret"]
        );
        let langfuse = OtelArgs {
            // `pk-lf-1:sk-lf-2`
            otel_headers: Some("Authorization=Basic%20cGstbGYtMTpzay1sZi0y".to_owned()),
            ..OtelArgs::default()
        };
        let secrets = exposed(&langfuse);
        assert!(secrets.contains(&"sk-lf-2".to_owned()), "{secrets:?}");
        assert!(
            secrets.contains(&"pk-lf-1:sk-lf-2".to_owned()),
            "{secrets:?}"
        );
    }

    #[test]
    fn traces_go_to_the_signal_path_of_the_base_or_to_the_full_url() {
        let base = OtelArgs {
            otel_endpoint: Some("http://collector:4318/".to_owned()),
            ..OtelArgs::default()
        };
        assert_eq!(
            base.traces_endpoint().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let full = OtelArgs {
            otel_traces_endpoint: Some("http://langfuse/api/public/otel/v1/traces".to_owned()),
            ..base
        };
        assert_eq!(
            full.traces_endpoint().as_deref(),
            Some("http://langfuse/api/public/otel/v1/traces")
        );
        assert_eq!(OtelArgs::default().traces_endpoint(), None);
        // A traces URL alone exports traces, and no metrics (nothing says where).
        let traces_only = OtelArgs {
            otel_traces_endpoint: Some("http://collector/v1/traces".to_owned()),
            ..OtelArgs::default()
        };
        assert!(traces_only.traces_endpoint().is_some());
        assert_eq!(traces_only.metrics_endpoint(), None);
    }
}
