//! A real OTLP/HTTP receiver for the tests: it decodes the protobuf the runner's exporters
//! send (`opentelemetry-proto`'s types, as a collector would), keeps every span, every
//! metric point and every byte it was sent, and can be told to fail (500) or to hold
//! requests without answering, as a collector that is down or slow does.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse},
        trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    },
    common::v1::{AnyValue, any_value},
    metrics::v1::{metric, number_data_point},
    trace::v1::status::StatusCode as SpanStatusCode,
};
use prost::Message as _;
use serde_json::Value;
use tokio::sync::{Notify, watch};

/// What the receiver does with an export request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Decodes and keeps it, and answers 200.
    Accept,
    /// Answers 500 and keeps nothing.
    Fail,
    /// Never answers (until the receiver stops).
    Hold,
}

/// One span as the receiver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Its name.
    pub name: String,
    /// The trace id, 32 hex digits.
    pub trace_id: String,
    /// Its id, 16 hex digits.
    pub span_id: String,
    /// Its parent's id, empty for a root.
    pub parent_span_id: String,
    /// Its attributes, as JSON values.
    pub attributes: BTreeMap<String, Value>,
    /// Whether its status is an error.
    pub failed: bool,
    /// The status message.
    pub status_message: String,
    /// Start and end, Unix nanoseconds.
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// The resource's attributes it was sent with.
    pub resource: BTreeMap<String, Value>,
}

impl ReceivedSpan {
    /// A string attribute.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

/// One point of a sum or histogram, as the receiver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPoint {
    /// The metric's name.
    pub name: String,
    /// The point's attributes.
    pub attributes: BTreeMap<String, Value>,
    /// A sum's value, or a histogram's sum.
    pub value: f64,
    /// A histogram's count (1 for a sum's point).
    pub count: u64,
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    /// Every point of every metrics request, in the order they came.
    points: Vec<ReceivedPoint>,
    /// Every request body, whole, in the order they came (also the refused ones).
    bytes: Vec<u8>,
    requests: usize,
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Received>,
    behaviour: watch::Sender<Behaviour>,
    arrived: Notify,
}

/// The receiver, on `127.0.0.1` and a port of its own; it stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OtlpReceiver {
    /// Starts a receiver that behaves as `behaviour`.
    pub async fn start(behaviour: Behaviour) -> Self {
        let shared = Arc::new(Shared {
            received: Mutex::new(Received::default()),
            behaviour: watch::Sender::new(behaviour),
            arrived: Notify::new(),
        });
        let app = Router::new()
            .route("/v1/traces", post(export))
            .route("/v1/metrics", post(export_metrics))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the OTLP receiver");
        let address = listener.local_addr().expect("the receiver's address");
        let server = tokio::spawn(async move {
            let _served = axum::serve(listener, app).await;
        });
        Self {
            address,
            shared,
            server,
        }
    }

    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Changes what it does with the next requests.
    pub fn behave(&self, behaviour: Behaviour) {
        self.shared.behaviour.send_replace(behaviour);
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// The last point received of metric `name` with attribute `attribute` (a key and
    /// a string value) if given: cumulative sums end with the session's total.
    pub fn metric(&self, name: &str, attribute: Option<(&str, &str)>) -> Option<ReceivedPoint> {
        self.lock()
            .points
            .iter()
            .rev()
            .find(|point| {
                point.name == name
                    && attribute.is_none_or(|(key, value)| {
                        point.attributes.get(key).and_then(Value::as_str) == Some(value)
                    })
            })
            .cloned()
    }

    /// Every byte of every request received so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// Requests received so far (accepted or not).
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Waits until a request has come that makes `done` true of what was received.
    pub async fn wait_until(&self, mut done: impl FnMut(&[ReceivedSpan], usize) -> bool) {
        loop {
            let arrived = self.shared.arrived.notified();
            {
                let received = self.lock();
                if done(&received.spans, received.requests) {
                    return;
                }
            }
            arrived.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn export(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    receive(&shared, &body, |body, received| {
        let request = ExportTraceServiceRequest::decode(body)?;
        received.spans.extend(spans_of(request));
        Ok(ExportTraceServiceResponse::default().encode_to_vec())
    })
    .await
}

async fn export_metrics(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    receive(&shared, &body, |body, received| {
        let request = ExportMetricsServiceRequest::decode(body)?;
        received.points.extend(points_of(request));
        Ok(ExportMetricsServiceResponse::default().encode_to_vec())
    })
    .await
}

/// One export request: its bytes kept, then decoded and answered as the receiver is told
/// to behave.
async fn receive(
    shared: &Shared,
    body: &[u8],
    decode: impl FnOnce(&[u8], &mut Received) -> Result<Vec<u8>, prost::DecodeError>,
) -> Response {
    let behaviour = *shared.behaviour.borrow();
    let answer = {
        let mut received = shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        received.bytes.extend_from_slice(body);
        received.requests += 1;
        match behaviour {
            Behaviour::Accept => Some(decode(body, &mut received)),
            Behaviour::Fail | Behaviour::Hold => None,
        }
    };
    shared.arrived.notify_waiters();
    match (behaviour, answer) {
        (_, Some(Ok(answer))) => {
            ([(header::CONTENT_TYPE, "application/x-protobuf")], answer).into_response()
        }
        (_, Some(Err(error))) => (
            StatusCode::BAD_REQUEST,
            format!("not OTLP protobuf: {error}"),
        )
            .into_response(),
        (Behaviour::Hold, None) => std::future::pending().await,
        (_, None) => (StatusCode::INTERNAL_SERVER_ERROR, "collector failure").into_response(),
    }
}

fn points_of(request: ExportMetricsServiceRequest) -> Vec<ReceivedPoint> {
    let mut points = Vec::new();
    let metrics = request
        .resource_metrics
        .into_iter()
        .flat_map(|resource| resource.scope_metrics)
        .flat_map(|scope| scope.metrics);
    for metric in metrics {
        match metric.data {
            Some(metric::Data::Sum(sum)) => {
                points.extend(sum.data_points.into_iter().map(|point| ReceivedPoint {
                    name: metric.name.clone(),
                    attributes: key_values(point.attributes),
                    value: match point.value {
                        Some(number_data_point::Value::AsDouble(value)) => value,
                        #[allow(clippy::cast_precision_loss, reason = "test figures are small")]
                        Some(number_data_point::Value::AsInt(value)) => value as f64,
                        None => f64::NAN,
                    },
                    count: 1,
                }));
            }
            Some(metric::Data::Histogram(histogram)) => {
                points.extend(
                    histogram
                        .data_points
                        .into_iter()
                        .map(|point| ReceivedPoint {
                            name: metric.name.clone(),
                            attributes: key_values(point.attributes),
                            value: point.sum.unwrap_or(f64::NAN),
                            count: point.count,
                        }),
                );
            }
            _ => {}
        }
    }
    points
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource: BTreeMap<String, Value> = resource_spans
            .resource
            .map(|resource| key_values(resource.attributes))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                let status = span.status.unwrap_or_default();
                spans.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: key_values(span.attributes),
                    failed: status.code == SpanStatusCode::Error as i32,
                    status_message: status.message,
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                    resource: resource.clone(),
                });
            }
        }
    }
    spans
}

fn key_values(
    pairs: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .map(|pair| (pair.key, pair.value.map_or(Value::Null, json_of)))
        .collect()
}

fn json_of(value: AnyValue) -> Value {
    match value.value {
        Some(any_value::Value::StringValue(text)) => Value::String(text),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(flag),
        Some(any_value::Value::IntValue(number)) => Value::from(number),
        Some(any_value::Value::DoubleValue(number)) => Value::from(number),
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.into_iter().map(json_of).collect())
        }
        Some(other) => Value::String(format!("{other:?}")),
        None => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The spans of one trace as a tree, one line per span (`name` indented under its
/// parent), children in the order they started: what a test compares with the tree
/// it expects.
pub fn tree(spans: &[ReceivedSpan]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|span| {
            !spans
                .iter()
                .any(|parent| parent.span_id == span.parent_span_id)
        })
        .collect();
    roots.sort_by_key(|span| (span.start_ns, span.name.clone()));
    for root in roots {
        walk(spans, root, 0, &mut lines);
    }
    lines
}

fn walk(spans: &[ReceivedSpan], span: &ReceivedSpan, depth: usize, lines: &mut Vec<String>) {
    lines.push(format!("{}{}", "  ".repeat(depth), span.name));
    let mut children: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|child| child.parent_span_id == span.span_id)
        .collect();
    children.sort_by_key(|child| (child.start_ns, child.name.clone()));
    for child in children {
        walk(spans, child, depth + 1, lines);
    }
}
