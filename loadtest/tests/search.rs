//! `--find-max rate`: bracket then bisect, every step in `find_max.steps`, and `loadtest capacity`
//! sizing from the rate found.

mod common;
use common::{loadtest, read_json, small_run, SMOKE};

#[test]
fn rate_search_finds_the_highest_passing_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("fm.json");
    // 40 connections of 10 users publish floor(rate × 0.2 s) events, each reaching 4 connections:
    // `expected<=1000` holds exactly up to 1250 events/s, whatever the machine's speed.
    let (code, out, err) = small_run(
        &json,
        &[
            "--model",
            "rate",
            "--rate",
            "1000",
            "--rate-duration",
            "200ms",
            "--drain-timeout",
            "1s",
            "-t",
            "expected<=1000",
            "--find-max",
            "rate",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1250 events/s at 40 connections"), "{out}");
    let v = read_json(&json);
    let fm = &v["find_max"];
    assert_eq!(fm["over"], "rate");
    assert_eq!(fm["highest_passing"], 1250.0);
    let steps = fm["steps"].as_array().expect("steps");
    let rates: Vec<f64> = steps
        .iter()
        .map(|s| s["parameters"]["rate"].as_f64().expect("rate"))
        .collect();
    assert_eq!(&rates[..4], &[1000.0, 2000.0, 1500.0, 1250.0], "{rates:?}");
    for s in steps {
        let expected = s["figures"]["expected"].as_f64().expect("expected figure");
        assert_eq!(s["passed"], expected <= 1000.0, "{s}");
        assert_eq!(s["parameters"]["connections"], 40);
        if s["passed"] == false {
            assert_eq!(s["failed"][0], "expected<=1000");
        }
    }
    assert!(fm["ended_by"]
        .as_str()
        .expect("ended_by")
        .starts_with("bracketed"));

    let (code, out, err) = loadtest(&[
        "capacity",
        "--from",
        json.to_str().expect("utf-8"),
        "--connections",
        "100",
        "--events-per-sec",
        "5000",
        "--fd-limit",
        "65536",
    ]);
    assert_eq!(code, 0, "{err}");
    // 5000 × fan-out 4 = 20000 deliveries/s ÷ (1250 × 4 × 50 %) = 8 processes.
    assert!(
        out.contains("by rate:") && out.contains("processes:      8"),
        "{out}"
    );
}

#[test]
fn rate_search_needs_the_rate_model() {
    let (code, _, err) = loadtest(&["-s", SMOKE, "--find-max", "rate"]);
    assert_eq!(code, 2);
    assert!(err.contains("--model rate"), "{err}");
}

#[test]
fn connection_search_steps_until_a_threshold_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("fm.json");
    let json_s = json.to_str().expect("utf-8");
    let (code, out, err) = loadtest(&[
        "-s",
        SMOKE,
        "--no-progress",
        "--json",
        json_s,
        "-c",
        "20",
        "-u",
        "5",
        "--bursts",
        "1",
        "-t",
        "established<50",
        "--find-max",
        "--step",
        "20",
        "--max-connections",
        "200",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = read_json(&json);
    let fm = &v["find_max"];
    assert_eq!(fm["over"], "connections");
    assert_eq!(fm["highest_passing"], 40.0);
    let tried: Vec<(u64, u64)> = fm["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let p = &s["parameters"];
            (
                p["connections"].as_u64().expect("c"),
                p["users"].as_u64().expect("u"),
            )
        })
        .collect();
    assert_eq!(
        tried,
        vec![(20, 5), (40, 10), (60, 15)],
        "groups keep their size"
    );
    assert_eq!(fm["ended_by"], "a threshold failed at 60 connections");
    assert_eq!(
        v["connections"]["established"], 40,
        "the report is the best step's"
    );
}
