//! The model of Grafana's requests (common/grafana.rs) that the dashboard-load benchmark
//! (benches/dashboards.rs) times: Grafana's interval rounding, and every dashboard turned into
//! requests with every variable filled in.

use crate::common;

use common::dashboards;
use common::grafana::{dashboard_load, default_range_ms, duration_ms, format_ms, round_interval};

#[test]
fn intervals_are_rounded_and_written_as_grafana_does() {
    // 6 h over a half-width panel (960 px): 22.5 s -> 20 s; 30 d: 45 min -> 30 min.
    assert_eq!(round_interval(6 * 3_600_000 / 960), 20_000);
    assert_eq!(round_interval(30 * 86_400_000 / 960), 1_800_000);
    assert_eq!(round_interval(17_500), 15_000);
    assert_eq!(round_interval(17_501), 20_000);
    assert_eq!(format_ms(75_000), "75s");
    assert_eq!(format_ms(240_000), "4m");
    assert_eq!(duration_ms("6h"), Some(21_600_000));
}

#[test]
fn every_target_of_every_dashboard_becomes_a_request_with_its_variables_filled() {
    let end_ms = 1_800_000_000_000;
    for dashboard in dashboards::load_all() {
        let range_ms = default_range_ms(&dashboard);
        let (variables, panels) = dashboard_load(&dashboard, range_ms, end_ms, ".+", ".+");
        assert_eq!(variables.len(), 2, "{}: job and instance", dashboard.file);
        assert!(
            panels.len() >= dashboard.targets().len(),
            "{}: every target",
            dashboard.file
        );
        for request in variables.iter().chain(&panels) {
            for (name, value) in &request.params {
                assert!(
                    !value.contains('$'),
                    "{} {}: {name}={value}",
                    dashboard.file,
                    request.what
                );
            }
        }
        // A range query's step is at least the data source's scrape interval, its start
        // aligned to the step, and it covers the whole range.
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
