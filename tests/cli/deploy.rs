//! `deploy/kubernetes/`: the sidecar example is parsed, its dingtail flags are checked against
//! `dingtail run --help`, its config against `dingtail check`, and its wiring (secret, ConfigMap,
//! state volume, probes) against what the README promises; then the real binary is started the
//! way the pod starts it (paths moved into a scratch directory, the listener on loopback) and
//! its probes answer.

use std::path::Path;
use std::process::Command;

use crate::support::env::{TestEnv, poll_until};
use crate::support::listener::{http_get, try_sample};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dingtail");

fn manifests() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/sidecar.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn sidecar(docs: &[Value]) -> &Value {
    let containers = kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    containers
        .iter()
        .find(|c| c["name"] == "dingtail")
        .expect("a dingtail container")
}

fn args(c: &Value) -> Vec<String> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The value after `flag` in the args.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[i + 1]
}

#[test]
fn the_sidecar_example_uses_only_real_flags_and_a_config_that_passes_check() {
    let docs = manifests();
    let c = sidecar(&docs);
    let args = args(c);
    assert_eq!(args[0], "run");
    let help = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for a in args.iter().filter(|a| a.starts_with('-')) {
        let long = a.split('=').next().unwrap();
        assert!(
            help.split(|c: char| c.is_whitespace() || c == ',')
                .any(|w| w == long),
            "{long} is not a flag of `dingtail run`:\n{help}"
        );
    }
    for needed in ["--config", "--watch-config", "--listen", "--state-dir"] {
        assert!(args.iter().any(|a| a == needed), "{needed} in {args:?}");
    }

    // The config comes from the ConfigMap, mounted as a directory (subPath never updates).
    let config_path = flag(&args, "--config");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |path: &str| {
        mounts
            .iter()
            .filter(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
            .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))
            .clone()
    };
    let volumes = kind(&docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .clone();
    let volume = |m: &Value| {
        volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap()
            .clone()
    };
    let config_mount = mount_of(config_path);
    assert!(config_mount.get("subPath").is_none(), "{config_mount}");
    let cm_name = volume(&config_mount)["configMap"]["name"].clone();
    let cm = kind(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"], cm_name);
    let file = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let yaml = cm["data"][file]
        .as_str()
        .expect("the config in the ConfigMap");

    // State on the persistent volume claim, one pod at a time.
    let state = mount_of(flag(&args, "--state-dir"));
    let claim = volume(&state)["persistentVolumeClaim"]["claimName"].clone();
    assert_eq!(
        kind(&docs, "PersistentVolumeClaim")["metadata"]["name"],
        claim
    );
    assert_eq!(
        kind(&docs, "Deployment")["spec"]["strategy"]["type"],
        "Recreate"
    );

    // Probes on the listener's port.
    let port = flag(&args, "--listen")
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let ports = c["ports"].as_array().unwrap();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path);
        let named = ports.iter().find(|p| p["name"] == get["port"]).unwrap();
        assert_eq!(named["containerPort"].as_u64().unwrap().to_string(), port);
    }

    // Every `${VAR}` of the config comes from a Secret.
    let env = c["env"].as_array().unwrap();
    let vars: Vec<&str> = yaml
        .split("${")
        .skip(1)
        .map(|s| s.split('}').next().unwrap())
        .collect();
    assert!(!vars.is_empty());
    for var in &vars {
        let e = env
            .iter()
            .find(|e| e["name"] == *var)
            .unwrap_or_else(|| panic!("{var} not in the container's env"));
        assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{e}");
    }

    // The config passes `check` with its variables set.
    let mut env = TestEnv::new().config(yaml);
    for var in &vars {
        env = env.env(var, "SECdummy-value-for-check");
    }
    let out = env.run(&["check"], b"");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// The binary started with the pod's arguments (paths moved under a scratch directory, the
/// listener on loopback) answers both probes, and follows the shared volume's logs.
#[test]
fn the_sidecar_starts_with_the_example_arguments_and_answers_its_probes() {
    let docs = manifests();
    let c = sidecar(&docs);
    let args = args(c);
    let cm = kind(&docs, "ConfigMap");
    let yaml = cm["data"]["dingtail.yaml"].as_str().unwrap();
    let env = TestEnv::new();
    let root = env.dir().to_owned();
    let moved = |p: &str| root.join(p.trim_start_matches('/')).display().to_string();
    // The ConfigMap's config, its paths moved; no robot is reachable from here: dry run.
    let yaml = yaml.replace("/logs/", &format!("{}/", moved("/logs")));
    std::fs::create_dir_all(moved("/logs")).unwrap();
    std::fs::create_dir_all(moved("/etc/dingtail")).unwrap();
    std::fs::write(moved("/etc/dingtail/dingtail.yaml"), &yaml).unwrap();
    std::fs::write(moved("/logs/app.log"), "").unwrap();
    let mut run_args: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        run_args.push(a.clone());
        match a.as_str() {
            "--config" | "--state-dir" => run_args.push(moved(it.next().unwrap())),
            "--listen" => {
                it.next();
                run_args.push("127.0.0.1:0".into());
            }
            _ => {}
        }
    }
    run_args.push("--dry-run".into());
    let argv: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let env = env
        .env("DINGTALK_TOKEN", "tok-dummy")
        .env("DINGTALK_SECRET", "SECdummy");
    let run = env.start(&argv);
    let addr = run.listen_addr();
    run.wait_for(crate::support::files::FOLLOWING);
    assert_eq!(http_get(&format!("http://{addr}/healthz")).0, 200);
    let ready = poll_until(|| http_get(&format!("http://{addr}/readyz")).0 == 200);
    assert!(ready, "{}", run.stderr());
    let at_least = |text: &str, series: &str| try_sample(text, series).is_some_and(|v| v >= 1.0);
    // Files present at start are read from their end: write once it is taken up.
    run.wait_for_metrics(|t| at_least(t, "dingtail_files_followed"));
    std::fs::write(moved("/logs/app.log"), "ERROR from the app\n").unwrap();
    // The window is a minute: wait for the hit to be counted, then stop the pod.
    run.wait_for_metrics(|t| at_least(t, "dingtail_hits_total{rule=\"error\"}"));
    run.signal(libc::SIGTERM);
    let stdout = run.finish().success().stdout;
    assert!(stdout.contains("ERROR from the app"), "{stdout}");
}
