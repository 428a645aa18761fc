//! The container and Kubernetes artifacts hold together (they cannot be run here: no Docker
//! engine, no cluster): their configs are valid Sightline configs, the probes and ports match
//! the HTTP server, every file the kustomization and the Dockerfile name exists, and the
//! StatefulSet has what the platform team needs.

use sightline::config::Config;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads a config written for the container, with its absolute paths (mounted at run time)
/// moved under a temporary directory that has what the mounts would bring.
fn config(rel: &str) -> Config {
    let path = root().join(rel);
    let fake = std::env::temp_dir().join(format!("sightline-deploy-{}", std::process::id()));
    let etc = fake.join("etc/sightline");
    std::fs::create_dir_all(etc.join("secrets")).unwrap();
    for f in ["kafka-password", "registry-password", "ca.crt"] {
        std::fs::write(etc.join("secrets").join(f), "placeholder\n").unwrap();
    }
    for d in ["topologies", "schemas"] {
        std::fs::create_dir_all(etc.join(d)).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"/etc/sightline/", &format!("\"{}/", etc.display()));
    Config::from_str_with_env(&text, rel, path.parent().unwrap(), &[])
        .unwrap_or_else(|e| panic!("{rel} is not a valid config: {e}"))
}

fn yaml(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap()
}

#[test]
fn the_image_and_kubernetes_configs_are_valid_and_listen_beyond_localhost() {
    for rel in ["deploy/docker/sightline.toml", "deploy/k8s/sightline.toml"] {
        let cfg = config(rel);
        assert_eq!(cfg.http.bind.to_string(), "0.0.0.0:9464", "{rel}");
        assert!(cfg.state.dir.starts_with("/var/lib/sightline"), "{rel}");
    }
    let k8s = config("deploy/k8s/sightline.toml");
    assert_eq!(
        format!("{:?}", k8s.kafka.security_protocol).to_lowercase(),
        "saslssl"
    );
}

#[test]
fn the_kustomization_names_only_files_that_exist() {
    let k = yaml("deploy/k8s/kustomization.yaml");
    let dir = root().join("deploy/k8s");
    let mut files: Vec<String> = k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    for g in k["configMapGenerator"].as_sequence().unwrap() {
        files.extend(
            g["files"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string()),
        );
    }
    for f in &files {
        assert!(dir.join(f).is_file(), "deploy/k8s/{f} is missing");
    }
    // Every topology of the repository is in the topologies ConfigMap.
    for t in std::fs::read_dir(root().join("topologies")).unwrap() {
        let name = t.unwrap().file_name().into_string().unwrap();
        assert!(
            files.contains(&format!("../../topologies/{name}")),
            "topologies/{name} is not in the ConfigMap"
        );
    }
}

#[test]
fn the_statefulset_has_a_state_volume_probes_resources_and_a_disruption_budget() {
    let s = yaml("deploy/k8s/statefulset.yaml");
    assert_eq!(s["kind"], "StatefulSet");
    let pod = &s["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["ports"][0]["containerPort"], 9464);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    let state = config("deploy/k8s/sightline.toml").state.dir;
    assert!(
        mounts.iter().any(|m| state.starts_with(Path::new(m))),
        "state.dir {state:?} is on no volume: {mounts:?}"
    );
    assert_eq!(
        s["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "state"
    );
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"/etc/sightline/config/sightline.toml"));
    let pdb = yaml("deploy/k8s/pdb.yaml");
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
    assert_eq!(
        yaml("deploy/k8s/servicemonitor.yaml")["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
}

#[test]
fn the_dockerfile_builds_with_the_readme_steps_and_runs_as_non_root() {
    let d = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
    assert!(d.contains("deploy/local/bootstrap"));
    assert!(d.contains("cargo build --release --locked --bin sightline"));
    assert!(d.contains("USER 10001"));
    assert!(d.contains("VOLUME /var/lib/sightline"));
    for copied in ["topologies", "schemas", "deploy/docker/sightline.toml"] {
        assert!(root().join(copied).exists(), "{copied}");
    }
}
