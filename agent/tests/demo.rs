//! `msp-agent demo`: what can be checked without booting the clinic box (tests/box.rs runs it
//! end to end): it refuses clearly without root, and it ships every runbook of the repository.

use std::path::Path;
use std::process::Command;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn without_root_demo_exits_2_with_a_clear_message() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    let exe = env!("CARGO_BIN_EXE_msp-agent");
    let o = if nix::unistd::geteuid().is_root() {
        // Drop to nobody for this one command (the test itself runs as root in CI).
        Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups", exe, "demo", "--out"]).arg(&out).output().unwrap()
    } else {
        Command::new(exe).args(["demo", "--out"]).arg(&out).output().unwrap()
    };
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("msp-agent demo: needs root"), "{stderr}");
    assert!(stderr.contains("demo --out"), "tells how to run it: {stderr}");
    assert!(!out.exists(), "nothing is written before the root check");
}

#[test]
fn demo_embeds_every_runbook_of_the_repository_and_the_box_script() {
    let mut in_repo: Vec<String> = std::fs::read_dir(repo_root().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("RB-") && n.ends_with(".yaml"))
        .collect();
    in_repo.sort();
    let mut embedded: Vec<String> = msp_agent::demo::EMBEDDED_RUNBOOKS.iter().map(|(n, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(embedded, in_repo, "add a new runbooks/RB-*.yaml to demo::EMBEDDED_RUNBOOKS: the box approves every one");
    for (name, text) in msp_agent::demo::EMBEDDED_RUNBOOKS {
        assert!(*text == std::fs::read_to_string(repo_root().join("runbooks").join(name)).unwrap(), "{name} differs from the embedded copy");
    }
    let script = std::fs::read_to_string(repo_root().join("checks/box/clinic-box.sh")).unwrap();
    assert!(msp_agent::demo::CLINIC_BOX == script, "checks/box/clinic-box.sh differs from the embedded copy (rebuild)");
}

#[test]
fn the_box_script_is_shellcheck_clean() {
    match Command::new("shellcheck").arg(repo_root().join("checks/box/clinic-box.sh")).output() {
        Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout)),
        Err(e) => eprintln!("SKIPPED: shellcheck not runnable ({e}); scripts/setup-machine installs it"),
    }
}
