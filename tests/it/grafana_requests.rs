//! The dashboard loads that the benchmark (benches/dashboards.rs) times
//! (common/grafana_load.rs): every target of every dashboard becomes a request with every
//! variable filled in, after the two variable refreshes.

use crate::common;

use common::dashboards;
use common::grafana_load::dashboard_load;
use common::grafana_time::{ALL, default_range_ms};

#[test]
fn every_target_of_every_dashboard_becomes_a_request_with_its_variables_filled() {
    let now_ms = 1_800_000_012_345;
    for dashboard in dashboards::load_all() {
        let range_ms = default_range_ms(&dashboard.json);
        let (variables, panels) = dashboard_load(&dashboard, range_ms, now_ms, ALL, ALL);
        let paths: Vec<&str> = variables.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/api/v1/label/job/values", "/api/v1/label/instance/values"],
            "{}",
            dashboard.file
        );
        assert!(
            panels.len() >= dashboard.targets().len(),
            "{}: every target",
            dashboard.file
        );
        for request in variables.iter().chain(&panels) {
            for (name, value) in &request.params {
                assert!(
                    !value.contains('$') && !value.is_empty(),
                    "{} {}: {name}={value}",
                    dashboard.file,
                    request.what
                );
            }
        }
        // A range query covers the range in steps of at least the scrape interval, aligned.
        for request in panels.iter().filter(|r| r.path == "/api/v1/query_range") {
            let param = |k: &str| -> f64 {
                request
                    .params
                    .iter()
                    .find(|(n, _)| n == k)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or_else(|| panic!("{}: {k}", request.what))
            };
            let (start, end, step) = (param("start"), param("end"), param("step"));
            assert!(step >= 15.0, "{}", request.what);
            assert_eq!(start % step, 0.0, "{}", request.what);
            assert!(
                end - start >= range_ms as f64 / 1000.0 - step,
                "{}",
                request.what
            );
        }
    }
}
