//! The binary: its exit codes (0 pass, 1 threshold failed, 2 usage/setup error) and flags shared
//! by several commands, defined once.

mod common;
use common::loadtest;

fn smoke() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml")
}

#[test]
fn failing_threshold_exits_1_with_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let html = dir.path().join("report.html");
    let (code, stdout, _) = loadtest(&[
        "--scenario",
        smoke(),
        "-c",
        "40",
        "-u",
        "10",
        "--threshold",
        "deliveries_per_sec>1000000000000",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--html",
        html.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("deliveries_per_sec"),
        "{stdout}"
    );
    // Both costs per delivery, side by side in the text report.
    let cost = |who: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(who))
            .unwrap_or_default()
            .to_owned()
    };
    for who in ["tester CPU", "server CPU"] {
        assert!(cost(who).contains("ns / delivery"), "{who}: {stdout}");
    }
    let xml = std::fs::read_to_string(junit).expect("junit");
    assert!(
        xml.contains("<failure") && xml.contains("testcase"),
        "{xml}"
    );
    let page = std::fs::read_to_string(html).expect("html");
    assert!(
        page.contains("<svg") && page.contains("polyline"),
        "inline SVG charts"
    );
}

#[test]
fn unknown_metric_is_a_usage_error() {
    let (code, _, stderr) = loadtest(&["--scenario", smoke(), "--threshold", "p98_ms<5"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown metric"), "{stderr}");
}

#[test]
fn bad_scenario_file_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[clients]\nconections = 5\n").expect("write");
    let (code, _, stderr) = loadtest(&["--scenario", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("Error:") && stderr.contains("conections"),
        "{stderr}"
    );
}

#[test]
fn remote_target_is_refused() {
    let (code, _, stderr) = loadtest(&[
        "--target",
        "ws://192.0.2.1:8000/ws/notifications/",
        "--jwt-secret",
        "s",
        "--api-key",
        "k",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}

#[test]
fn json_to_stdout_passes() {
    let (code, stdout, _) =
        loadtest(&["--scenario", smoke(), "-c", "20", "-u", "5", "--print-json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json on stdout");
    assert_eq!(v["deliveries"]["lost"], 0);
}

#[test]
fn shared_flags_are_one_definition_in_every_command() {
    use clap::CommandFactory;
    let top = loadtest::Opts::command();
    let help = |cmd: &clap::Command, id: &str| {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == id)
            .unwrap_or_else(|| panic!("{} has no {id}", cmd.get_name()));
        (
            arg.get_long().map(str::to_owned),
            arg.get_short(),
            arg.get_help().map(|h| h.to_string()),
            arg.get_env().map(|e| e.to_owned()),
        )
    };
    let sub = |name: &str| {
        top.find_subcommand(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let (merge, conform) = (sub("merge"), sub("conform"));
    for id in [
        "thresholds",
        "json",
        "junit",
        "html",
        "markdown",
        "print_json",
    ] {
        assert_eq!(help(&top, id), help(&merge, id), "{id}");
    }
    for id in [
        "target",
        "jwt_secret",
        "tokens_file",
        "api_key",
        "allow_remote",
    ] {
        assert_eq!(help(&top, id), help(&conform, id), "{id}");
    }
}
