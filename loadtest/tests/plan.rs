//! Plan validation: flags over scenario values, and what is refused before any I/O.

use clap::Parser;
use loadtest::plan::Scenario;
use loadtest::plan::{ArrivalModel, Target};
use loadtest::{Error, Opts, Plan};

fn opts(args: &[&str]) -> Opts {
    Opts::parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
}

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, "test").expect("scenario")
}

#[test]
fn defaults_are_the_builtin_scenario() {
    let plan = Plan::from_opts(&opts(&[])).expect("plan");
    assert!(matches!(plan.target, Target::Embedded { .. }));
    assert_eq!(plan.scenario, "default");
    assert!(plan.connections >= 1000 && plan.connections / plan.users >= 2);
    assert!(
        loadtest::plan::limits::fds_needed(&plan) < 19_000,
        "embedded default fits the fd limit"
    );
    assert!(!plan.thresholds.is_empty());
}

#[test]
fn flags_override_the_scenario() {
    let s = scenario(
        "[clients]\nconnections = 100\nusers = 10\n[publish]\nbursts = 2\nevents_per_burst = 3\n",
    );
    let plan = Plan::build(&opts(&["-c", "50", "--bursts", "4"]), &s).expect("plan");
    assert_eq!((plan.connections, plan.users), (50, 10));
    assert!(matches!(
        plan.arrival,
        ArrivalModel::Burst {
            bursts: 4,
            per_user: 3,
            ..
        }
    ));
    assert_eq!(plan.total_events(), 4 * 3 * 10);
}

#[test]
fn rate_model_spreads_events_over_users() {
    let s = scenario("[clients]\nconnections = 10\nusers = 3\n[publish]\nmodel = \"rate\"\nrate = 10.0\nrate_duration = \"1s\"\n");
    let plan = Plan::build(&opts(&[]), &s).expect("plan");
    assert_eq!(plan.total_events(), 10);
    let per_user: Vec<u64> = (0..3).map(|u| plan.events_for_user(u)).collect();
    assert_eq!(per_user, vec![4, 3, 3]);
}

#[test]
fn refusals_are_usage_errors() {
    let s = Scenario::default();
    let cases: &[&[&str]] = &[
        &["-c", "10", "-u", "20"],
        &["--target", "ws://127.0.0.1:1/ws/notifications/"],
        &[
            "--target",
            "ws://127.0.0.1:1/",
            "--jwt-secret",
            "s",
            "--publisher",
            "embedded",
        ],
        &["--target", "ws://127.0.0.1:1/", "--jwt-secret", "s"],
        &[
            "--target",
            "wss://127.0.0.1:1/",
            "--jwt-secret",
            "s",
            "--api-key",
            "k",
            "--insecure",
            "--ca-cert",
            "ca.pem",
        ],
        &[
            "--target",
            "ws://127.0.0.1:1/",
            "--jwt-secret",
            "s",
            "--api-key",
            "k",
            "--insecure",
        ],
        &[
            "--target",
            "ws://8.8.8.8:80/",
            "--jwt-secret",
            "s",
            "--api-key",
            "k",
        ],
        &["--jwt-secret", "s"],
        &["--slow-fraction", "1.5"],
        &["--duration", "soon"],
        &["--find-max"],
        &["--bursts", "0"],
    ];
    for args in cases {
        match Plan::build(&opts(args), &s) {
            Err(Error::Usage(_) | Error::Threshold { .. }) => {}
            other => panic!("{args:?} should be a usage error, got {other:?}"),
        }
    }
}

#[test]
fn remote_targets_need_allow_remote() {
    let s = Scenario::default();
    let plan = Plan::build(
        &opts(&[
            "--target",
            "ws://192.0.2.1:9/ws/notifications/",
            "--jwt-secret",
            "s",
            "--api-key",
            "k",
            "--allow-remote",
        ]),
        &s,
    )
    .expect("allowed");
    assert!(
        plan.sources.is_empty(),
        "no 127.0.0.x source binding for a remote target"
    );
}

#[test]
fn slow_readers_are_spread_evenly() {
    let s = scenario("[clients]\nconnections = 100\nusers = 10\nslow_fraction = 0.1\n");
    let plan = Plan::build(&opts(&[]), &s).expect("plan");
    assert_eq!((0..100).filter(|i| plan.is_slow(*i)).count(), 10);
}

#[test]
fn a_description_that_flags_made_wrong_is_not_repeated() {
    let s = scenario("description = \"200 connections in groups of 4\"\n");
    let kept = Plan::build(&opts(&["--drain-timeout", "1s"]), &s).expect("plan");
    assert_eq!(kept.description, "200 connections in groups of 4");
    let reshaped = Plan::build(&opts(&["-c", "51000"]), &s).expect("plan");
    assert!(
        !reshaped.description.contains("200 connections"),
        "{}",
        reshaped.description
    );
}

#[test]
fn the_churn_scenario_is_a_valid_plan_and_flags_override_its_churn() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/churn-10k.toml");
    let args = ["-s", path, "--jwt-secret", "s", "--api-key", "k"];
    let plan = Plan::from_opts(&opts(&args)).expect("plan");
    let churn = plan.churn.as_ref().expect("churn");
    assert_eq!((plan.connections, churn.fraction), (10_000, 0.1));
    assert!(churn.resume && churn.reconnect_targets.is_empty());
    let churners = (0..plan.connections)
        .filter(|&i| churn.is_churner(i, plan.connections))
        .count();
    assert_eq!(churners, 1000);
    let mut more = args.to_vec();
    more.extend([
        "--churn-resume",
        "off",
        "--churn-mode",
        "stall",
        "--reconnect-target",
        "ws://127.0.0.1:8001/ws/notifications/",
        "--token-lifetime",
        "1m",
        "--refresh-before",
        "10s",
    ]);
    let plan = Plan::from_opts(&opts(&more)).expect("plan");
    let churn = plan.churn.as_ref().expect("churn");
    assert!(!churn.resume);
    assert_eq!(churn.mode.name(), "stall");
    assert_eq!(churn.reconnect_targets.len(), 1);
    assert_eq!(
        plan.tokens.refresh_before,
        Some(std::time::Duration::from_secs(10))
    );
    // A tokens file cannot mint the refreshed tokens.
    let refused = Plan::from_opts(&opts(&[
        "--target",
        "ws://127.0.0.1:8000/ws/notifications/",
        "--tokens-file",
        "t.json",
        "--refresh-before",
        "10s",
    ]));
    assert!(matches!(refused, Err(Error::Usage(_))), "{refused:?}");
}

#[test]
fn a_wss_target_gets_one_tls_client_and_port_443() {
    let s = Scenario::default();
    let args = [
        "--target",
        "wss://127.0.0.1/ws/notifications/",
        "--jwt-secret",
        "s",
        "--api-key",
        "k",
    ];
    let plan = Plan::build(&opts(&args), &s).expect("plan");
    let Target::External(ep) = &plan.target else {
        panic!("external target expected");
    };
    assert!(ep.is_tls());
    assert_eq!(ep.addr.port(), 443);
    assert_eq!(ep.host, "127.0.0.1:443", "Host from the URL");
    let tls = plan.tls.as_ref().expect("a TLS client");
    assert!(!tls.insecure());
    assert!(tls.trust().contains("built-in roots"), "{}", tls.trust());

    // A plain target has none.
    let plan = Plan::build(
        &opts(&[
            "--target",
            "ws://127.0.0.1:1/",
            "--jwt-secret",
            "s",
            "--api-key",
            "k",
        ]),
        &s,
    )
    .expect("plan");
    assert!(plan.tls.is_none());
}
