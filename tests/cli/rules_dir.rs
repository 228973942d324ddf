//! Every file in rules/ is a valid config: examples that do not load are worse than none.

use std::path::Path;

use dingtail::config;

#[test]
fn every_rules_file_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let env = |name: &str| {
        Some(format!("dummy-{}", name.to_lowercase())).map(|v| {
            // Secrets must look like secrets to pass the checks.
            if name.contains("SECRET") {
                format!("SEC{v}")
            } else {
                v
            }
        })
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let c = config::parse_str(&text, &path.display().to_string(), &env)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!c.rules.is_empty(), "{} has no rules", path.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected default.yaml and at least one example, saw {seen}"
    );
}
