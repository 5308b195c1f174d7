//! `make run`'s launcher, as a person uses it: it starts the four service
//! binaries, loads the demo data once, stops everything cleanly on Ctrl-C,
//! keeps the data for the next run, and names a taken port.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use tradewatch_common::testing::restartable_port;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_tradewatch-demo");

/// The service binaries sit beside the launcher; build them if this test
/// runs alone.
fn ensure_service_binaries() {
    let dir = Path::new(LAUNCHER).parent().unwrap();
    if ["tariff", "dispute", "dialogue", "relations"].iter().all(|s| dir.join(format!("{s}-service")).exists()) {
        return;
    }
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--bins",
            "-p",
            "tariff-service",
            "-p",
            "dispute-service",
            "-p",
            "dialogue-service",
            "-p",
            "relations-service",
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

struct Launch {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

fn launch(var: &Path, ports: &str) -> Launch {
    let mut child = Command::new(LAUNCHER)
        .args(["run", "--var", var.to_str().unwrap(), "--ports", ports])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    Launch { child, lines, seen: vec![] }
}

impl Launch {
    /// Reads output until a line contains `text`.
    fn wait_for(&mut self, text: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(90)) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("no {text:?} in the launcher's output:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn pids(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|l| l.split("(pid ").nth(1).and_then(|rest| rest.split(')').next()).map(str::to_owned))
            .collect()
    }

    /// Ctrl-C, then the exit status and everything it printed.
    fn interrupt(&mut self) -> (bool, Vec<String>) {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        (status.success(), self.seen.clone())
    }
}

/// Whatever happened, a test leaves no launcher and no service behind.
impl Drop for Launch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in self.pids() {
            // Only one of ours: a pid the kernel handed on is left alone.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("-service") {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

fn ports() -> (u16, String) {
    let (t, d, l, r) = (restartable_port(), restartable_port(), restartable_port(), restartable_port());
    (d, format!("{t},{d},{l},{r}"))
}

#[test]
fn the_launcher_loads_once_stops_cleanly_and_names_a_taken_port() {
    ensure_service_binaries();
    let var = tempfile::tempdir().unwrap();
    let (dispute_port, ports) = ports();

    let mut first = launch(var.path(), &ports);
    first.wait_for("Ctrl-C stops all four");
    assert!(first.seen.iter().any(|l| l.starts_with("Loaded the Canada–China demo data")), "{:#?}", first.seen);
    let pids = first.pids();
    assert_eq!(pids.len(), 4, "{:#?}", first.seen);
    let (ok, out) = first.interrupt();
    assert!(ok, "exit 0 on Ctrl-C:\n{}", out.join("\n"));
    assert!(out.iter().any(|l| l == "All four services stopped cleanly."), "{}", out.join("\n"));
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "service process {pid} outlived the launcher");
    }

    let mut second = launch(var.path(), &ports);
    second.wait_for("Ctrl-C stops all four");
    assert!(second.seen.iter().any(|l| l.contains("already there")), "{:#?}", second.seen);
    let (ok, out) = second.interrupt();
    assert!(ok, "exit 0 on Ctrl-C:\n{}", out.join("\n"));

    let _taken = std::net::TcpListener::bind(("127.0.0.1", dispute_port)).unwrap();
    let mut third = launch(var.path(), &ports);
    third.wait_for("is taken");
    let status = third.child.wait().unwrap();
    assert!(!status.success());
    assert!(
        third.seen.iter().any(|l| l.contains(&format!("port {dispute_port} for the dispute service is taken"))),
        "{:#?}",
        third.seen
    );
}
