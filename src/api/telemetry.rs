//! Request counters and latency histograms, exported in the Prometheus text format at
//! `/metrics`. Routes are labelled by their template (`/v1/users/{user_id}`), never by
//! the raw path, so the label set stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Per (method, route, status) request statistics.
#[derive(Default)]
pub struct Telemetry {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Telemetry {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (b, &bound) in s.buckets.iter_mut().zip(&BUCKETS) {
            if seconds <= bound {
                *b += 1;
            }
        }
    }

    /// The Prometheus exposition text.
    pub fn render(&self) -> String {
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP audiorec_http_requests_total Requests answered.\n# TYPE audiorec_http_requests_total counter\n",
        );
        for ((m, r, st), s) in map.iter() {
            let _ = writeln!(
                out,
                "audiorec_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP audiorec_http_request_duration_seconds Request latency.\n# TYPE audiorec_http_request_duration_seconds histogram\n");
        for ((m, r, st), s) in map.iter() {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (b, bound) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "audiorec_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {b}"
                );
            }
            let _ = writeln!(
                out,
                "audiorec_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "audiorec_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "audiorec_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

/// Middleware: times every request and records it under its route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.telemetry.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
