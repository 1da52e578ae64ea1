//! A proxy in front of a real receiver that answers a scripted list of failures first, then
//! forwards. It records every request (headers, body, what it answered) so a test can follow
//! each block through its retries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answered: u16,
    pub at: std::time::Instant,
}

impl Seen {
    /// The timestamps of the `jellyfin_up` samples (one per cycle) in the request's body.
    pub fn up_samples(&self) -> Vec<i64> {
        let request =
            jellyfin_pusher::remote_write::decode(&self.body).expect("a snappy WriteRequest");
        request
            .timeseries
            .iter()
            .filter(|ts| {
                ts.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == "jellyfin_up")
            })
            .flat_map(|ts| ts.samples.iter().map(|s| s.timestamp))
            .collect()
    }

    /// Whether the receiver took it.
    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

pub type Script = Option<(u16, Option<&'static str>)>;

#[derive(Clone)]
struct State {
    upstream: String,
    /// Answers for the next requests, in order: Some((status, Retry-After)) fails one, None
    /// forwards one. Once it runs out every request is forwarded.
    script: Arc<Mutex<VecDeque<Script>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub struct FaultProxy {
    pub port: u16,
    state: State,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, script: Vec<Script>) -> FaultProxy {
        // Bound here, not picked and released: nothing can take the port in between.
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = State {
            upstream: upstream.to_string(),
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        };
        let handler_state = state.clone();
        let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            handle(handler_state.clone(), headers, body)
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            port,
            state,
            server,
        }
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn script_left(&self) -> usize {
        self.state.script.lock().unwrap().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let scripted = state.script.lock().unwrap().pop_front().flatten();
    let (status, retry_after, message) = match scripted {
        Some((status, retry_after)) => (status, retry_after, format!("scripted failure {status}")),
        None => {
            let answer = reqwest::Client::new()
                .post(&state.upstream)
                .header("Content-Encoding", "snappy")
                .header("Content-Type", "application/x-protobuf")
                .body(body.clone())
                .send()
                .await;
            match answer {
                Ok(r) => (
                    r.status().as_u16(),
                    None,
                    r.text().await.unwrap_or_default(),
                ),
                Err(e) => (502, None, e.to_string()),
            }
        }
    };
    state.seen.lock().unwrap().push(Seen {
        headers,
        body,
        answered: status,
        at: std::time::Instant::now(),
    });
    let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
    if let Some(value) = retry_after {
        response = response.header("Retry-After", value);
    }
    response.body(Body::from(message)).unwrap()
}
