//! The deployed stack's files, checked without a Docker daemon: compose/docker-compose.yml is
//! valid for `docker-compose config` and for the compose-spec JSON schema, and every file it
//! names agrees with the others (Prometheus targets, nginx upstreams, Toxiproxy proxies,
//! mounts, variables, ports, healthchecks, Grafana datasources, Kafka topics, the box office's
//! configuration). Also: [`compose::docker::docker_available`] says clearly when there is no
//! daemon, and the docker stack starts where there is one.
//!
//! Needs `docker-compose` (Debian: `apt-get install -y --no-install-recommends docker-compose`)
//! and `promtool` (`apt-get install -y prometheus`); a test fails, saying so, when one is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// compose/ (this crate's directory).
fn compose_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
fn repo_root() -> PathBuf {
    compose_dir()
        .parent()
        .expect("compose/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A YAML file as JSON, with `<<` merge keys applied (as Compose does).
fn yaml_file(path: &Path) -> Value {
    let mut doc: yaml_serde::Value = yaml_serde::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    doc.apply_merge()
        .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
    serde_json::to_value(&doc)
        .unwrap_or_else(|e| panic!("{}: not JSON-compatible: {e}", path.display()))
}

fn compose_file() -> PathBuf {
    compose_dir().join("docker-compose.yml")
}

fn compose() -> Value {
    yaml_file(&compose_file())
}

fn services(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["services"].as_object().expect("services is a mapping")
}

/// `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}` uses in `text` (not `$${…}`,
/// which Compose leaves to the container's shell): name → default.
fn variables(text: &str) -> Vec<(String, Option<String>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = text[i..].find("${") {
        let start = i + pos;
        i = start + 2;
        if start > 0 && bytes[start - 1] == b'$' {
            continue;
        }
        let end = text[start..]
            .find('}')
            .map(|e| start + e)
            .expect("closed ${");
        let inner = &text[start + 2..end];
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let (name, rest) = inner.split_at(name_len);
        let default = rest
            .strip_prefix(":-")
            .or_else(|| rest.strip_prefix('-'))
            .map(str::to_owned);
        out.push((name.to_owned(), default));
    }
    out
}

/// Replaces every `${VAR…}` by its default (empty when none).
fn interpolate_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        let end = rest[pos..].find('}').expect("closed ${") + pos;
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[pos..=end]);
        } else {
            let vars = variables(&rest[pos..=end]);
            out.push_str(vars[0].1.as_deref().unwrap_or(""));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `compose/.env.example` as name → value.
fn env_example() -> BTreeMap<String, String> {
    read(&compose_dir().join(".env.example"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!(".env.example: `{l}` is not NAME=value"));
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// The host part of `host:port` (or of a URL).
fn host_of(target: &str) -> String {
    let t = target.split("://").last().unwrap_or(target);
    let t = t.rsplit_once('@').map_or(t, |(_, h)| h);
    let t = t.split('/').next().unwrap_or(t);
    t.rsplit_once(':').map_or(t, |(h, _)| h).to_owned()
}

fn port_of(target: &str) -> u16 {
    let t = target.split("://").last().unwrap_or(target);
    let t = t.rsplit_once('@').map_or(t, |(_, h)| h);
    let t = t.split('/').next().unwrap_or(t);
    t.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {target}"))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A service's environment as a map (mapping or list syntax).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(_) => str_list(&service["environment"])
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv, String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Bind mounts of a service: (host source as written, container target).
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    str_list(&service["volumes"])
        .into_iter()
        .filter_map(|v| {
            let mut parts = v.splitn(3, ':');
            let source = parts.next()?.to_owned();
            let target = parts.next()?.to_owned();
            (source.starts_with('.') || source.starts_with('/')).then_some((source, target))
        })
        .collect()
}

fn is_one_shot(service: &Value) -> bool {
    service["restart"].as_str() == Some("no")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

// ───────────────────────────── validity ─────────────────────────────

#[test]
fn docker_compose_config_accepts_the_file() {
    let Some(dc) = which("docker-compose") else {
        panic!(
            "docker-compose is not installed, so the compose file cannot be validated: \
             apt-get install -y --no-install-recommends docker-compose"
        );
    };
    // With the example settings, and with none at all (every variable has a default).
    for env_file in [Some(compose_dir().join(".env.example")), None] {
        let mut cmd = Command::new(&dc);
        cmd.arg("-f").arg(compose_file());
        if let Some(f) = &env_file {
            cmd.arg("--env-file").arg(f);
        }
        // An empty project dir .env must not leak in: run from a temp dir.
        let tmp = tempfile::tempdir().unwrap();
        cmd.arg("--project-directory").arg(compose_dir());
        cmd.current_dir(tmp.path());
        let out = cmd
            .args(["config", "-q"])
            .env_remove("COMPOSE_PROFILES")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "docker-compose config ({env_file:?}) failed:\n{stderr}"
        );
        assert!(
            !stderr.contains("variable is not set"),
            "docker-compose config ({env_file:?}) warns about unset variables:\n{stderr}"
        );
    }
    // Every profile resolves.
    for profile in ["core", "observability", "logging", "tracing", "chaos"] {
        let out = Command::new(&dc)
            .arg("-f")
            .arg(compose_file())
            .args(["--profile", profile, "config", "--services"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker-compose --profile {profile} config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn compose_schema() -> jsonschema::Validator {
    let path = compose_dir().join("schema").join("compose_spec.json");
    let schema: Value = serde_json::from_str(&read(&path)).unwrap();
    jsonschema::validator_for(&schema).expect("the compose-spec schema compiles")
}

#[test]
fn the_compose_file_matches_the_compose_spec_schema() {
    let validator = compose_schema();
    let doc = compose();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema errors:\n{}", errors.join("\n"));

    // The check can fail: an unknown service key and a wrong depends_on condition are caught.
    let mut broken = doc.clone();
    broken["services"]["app-1"]["helthcheck"] = serde_json::json!({"test": ["CMD", "true"]});
    assert!(
        !validator.is_valid(&broken),
        "a misspelt key must be rejected"
    );
    let mut broken = doc;
    broken["services"]["nginx"]["depends_on"]["app-1"]["condition"] = "service_ready".into();
    assert!(
        !validator.is_valid(&broken),
        "a wrong condition must be rejected"
    );
}

#[test]
fn the_vendored_schema_is_the_one_docker_compose_ships_when_installed() {
    let installed = Path::new("/usr/lib/python3/dist-packages/compose/config/compose_spec.json");
    assert!(
        installed.exists(),
        "{} is absent: apt-get install -y --no-install-recommends docker-compose",
        installed.display()
    );
    let a: Value = serde_json::from_str(&read(installed)).unwrap();
    let b: Value =
        serde_json::from_str(&read(&compose_dir().join("schema/compose_spec.json"))).unwrap();
    assert_eq!(
        a,
        b,
        "compose/schema/compose_spec.json differs from {}",
        installed.display()
    );
}

// ───────────────────────────── services ─────────────────────────────

#[test]
fn the_stack_has_the_planned_services_and_profiles() {
    let doc = compose();
    let svc = services(&doc);
    for name in [
        "app-1",
        "app-2",
        "worker",
        "payments",
        "nginx",
        "toxiproxy",
        "postgres",
        "postgres-standby",
        "redis",
        "redis-replica",
        "redis-sentinel",
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "kafka-init",
        "prometheus",
        "pushgateway",
        "alertmanager",
        "grafana",
        "elasticsearch",
        "filebeat",
        "kibana",
        "kibana-init",
        "otel-collector",
        "jaeger",
        "chaos",
    ] {
        assert!(svc.contains_key(name), "no service {name}");
    }
    let known: BTreeSet<&str> = ["core", "observability", "logging", "tracing", "chaos"].into();
    let mut used = BTreeSet::new();
    for (name, s) in svc {
        let profiles = str_list(&s["profiles"]);
        assert!(!profiles.is_empty(), "{name} has no profile");
        for p in profiles {
            assert!(known.contains(p.as_str()), "{name}: unknown profile {p}");
            used.insert(p);
        }
    }
    assert_eq!(used.len(), known.len(), "profiles used: {used:?}");
}

#[test]
fn every_service_has_a_healthcheck_and_dependencies_wait_for_the_right_condition() {
    let doc = compose();
    let svc = services(&doc);
    let healthy = |name: &str| {
        let s = &svc[name];
        s["healthcheck"].is_object() && s["healthcheck"]["disable"] != Value::Bool(true)
    };
    for (name, s) in svc {
        if is_one_shot(s) {
            assert!(
                s["healthcheck"].is_null(),
                "{name} is a one-shot job: depend on it with service_completed_successfully"
            );
        } else if let Some(reason) = s["x-healthcheck-exempt"].as_str() {
            assert!(
                reason.trim().len() > 20,
                "{name}: x-healthcheck-exempt needs a real reason"
            );
            assert!(
                s["healthcheck"].is_null(),
                "{name}: exempt but has a healthcheck"
            );
        } else {
            assert!(healthy(name), "{name} has no healthcheck");
            let test = str_list(&s["healthcheck"]["test"]);
            assert!(
                matches!(test.first().map(String::as_str), Some("CMD" | "CMD-SHELL")),
                "{name}: healthcheck test {test:?}"
            );
        }
        let profiles: BTreeSet<String> = str_list(&s["profiles"]).into_iter().collect();
        let Some(deps) = s["depends_on"].as_object() else {
            assert!(
                s["depends_on"].is_null(),
                "{name}: use the long depends_on syntax with conditions"
            );
            continue;
        };
        for (dep, spec) in deps {
            assert!(svc.contains_key(dep), "{name} depends on unknown {dep}");
            let condition = spec["condition"].as_str().unwrap_or("(none)");
            match condition {
                "service_healthy" => {
                    assert!(
                        healthy(dep),
                        "{name} waits for {dep} to be healthy: no healthcheck"
                    )
                }
                "service_completed_successfully" => {
                    assert!(
                        is_one_shot(&svc[dep.as_str()]),
                        "{name} waits for {dep} to complete: it is not a one-shot job"
                    )
                }
                "service_started" => assert!(
                    !healthy(dep),
                    "{name}: {dep} has a healthcheck, wait for service_healthy"
                ),
                other => panic!("{name} -> {dep}: condition {other}"),
            }
            // `--profile X up` must bring the dependency up too.
            let dep_profiles: BTreeSet<String> = str_list(&svc[dep.as_str()]["profiles"])
                .into_iter()
                .collect();
            assert!(
                dep_profiles.is_subset(&profiles)
                    || dep_profiles.iter().any(|p| profiles.contains(p)),
                "{name} ({profiles:?}) depends on {dep} in other profiles {dep_profiles:?}"
            );
        }
    }
}

#[test]
fn every_mounted_host_path_and_build_context_exists() {
    let doc = compose();
    let dir = compose_dir();
    // Paths on the Docker host, not in this repository.
    let daemon_paths: BTreeSet<&str> =
        ["/var/run/docker.sock", "/var/lib/docker/containers"].into();
    let mut missing = Vec::new();
    for (name, s) in services(&doc) {
        for (source, target) in bind_mounts(s) {
            if source.starts_with('/') {
                assert!(
                    daemon_paths.contains(source.as_str()),
                    "{name}: absolute host path {source} (only the Docker host's own paths are allowed)"
                );
                continue;
            }
            let path = dir.join(&source);
            if !path.exists() {
                missing.push(format!("{name}: {source} -> {target}"));
            }
            // A file mounted onto a file path: Docker would create a directory otherwise.
            let target_is_file = Path::new(&target).extension().is_some();
            if target_is_file && path.exists() {
                assert!(
                    path.is_file(),
                    "{name}: {source} must be a file (target {target})"
                );
            }
        }
        if let Some(build) = s["build"].as_object() {
            let context = dir.join(build["context"].as_str().unwrap());
            assert!(
                context.is_dir(),
                "{name}: build context {}",
                context.display()
            );
            let dockerfile = context.join(build["dockerfile"].as_str().unwrap());
            assert!(dockerfile.is_file(), "{name}: {}", dockerfile.display());
        }
    }
    assert!(
        missing.is_empty(),
        "mounted host paths that do not exist (Docker would create empty directories):\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_variable_has_a_default_and_an_env_example_line() {
    let text = read(&compose_file());
    let example = env_example();
    let vars = variables(&text);
    assert!(vars.len() > 20, "variables found: {vars:?}");
    let mut used = BTreeSet::new();
    for (name, default) in &vars {
        used.insert(name.clone());
        assert!(
            example.contains_key(name),
            "${{{name}}} is not in compose/.env.example"
        );
        let default = default
            .as_ref()
            .unwrap_or_else(|| panic!("${{{name}}} has no default"));
        assert_eq!(
            &example[name], default,
            "{name}: .env.example and the compose default disagree"
        );
    }
    for name in example.keys() {
        assert!(
            used.contains(name) || name.starts_with("COMPOSE_"),
            ".env.example sets {name}, which the compose file does not use"
        );
    }
}

#[test]
fn published_host_ports_do_not_collide_and_bind_to_loopback() {
    let text = interpolate_defaults(&read(&compose_file()));
    let mut doc: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    doc.apply_merge().unwrap();
    let doc = serde_json::to_value(&doc).unwrap();
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for (name, s) in services(&doc) {
        for spec in str_list(&s["ports"]) {
            let parts: Vec<&str> = spec.split(':').collect();
            assert_eq!(
                parts.len(),
                3,
                "{name}: publish as 127.0.0.1:HOST:CONTAINER, not {spec}"
            );
            assert_eq!(
                parts[0], "127.0.0.1",
                "{name}: {spec} is open beyond this host"
            );
            let port: u16 = parts[1]
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {spec}"));
            if let Some(other) = seen.insert(port, name.clone()) {
                panic!("host port {port} published by {other} and {name}");
            }
        }
    }
    for (port, who) in [(8080, "nginx"), (3000, "grafana"), (9090, "prometheus")] {
        assert_eq!(seen.get(&port).map(String::as_str), Some(who), "{seen:?}");
    }
}

// ───────────────────────────── the box office ─────────────────────────────

/// Every `env = "…"` of system/src/config.rs.
fn boxoffice_env_names() -> BTreeSet<String> {
    let text = read(&repo_root().join("system/src/config.rs"));
    text.match_indices("env = \"")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn the_instances_are_configured_with_variables_the_box_office_reads() {
    let doc = compose();
    let svc = services(&doc);
    let known = boxoffice_env_names();
    assert!(
        known.contains("DATABASE_URL") && known.contains("BOXOFFICE_LISTEN"),
        "{known:?}"
    );
    let toxiproxy: Value =
        serde_json::from_str(&read(&compose_dir().join("toxiproxy.json"))).unwrap();
    let proxy_ports: BTreeMap<u16, String> = toxiproxy
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                port_of(p["listen"].as_str().unwrap()),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut secrets = BTreeSet::new();
    for name in ["app-1", "app-2", "worker"] {
        let s = &svc[name];
        assert_eq!(
            str_list(&s["command"]).first().map(String::as_str),
            Some(if name == "worker" {
                "worker"
            } else {
                "boxoffice"
            })
        );
        let env = environment(s);
        for key in env.keys() {
            let standard = key.starts_with("OTEL_") || key == "RUST_LOG";
            assert!(
                standard || known.contains(key),
                "{name}: {key} is not read by the box office (system/src/config.rs)"
            );
        }
        for key in [
            "DATABASE_URL",
            "REDIS_URL",
            "KAFKA_BROKERS",
            "BOXOFFICE_PAYMENTS_URL",
            "BOXOFFICE_JWT_SECRET",
            "BOXOFFICE_ADMIN_EMAIL",
            "BOXOFFICE_ADMIN_PASSWORD",
            "BOXOFFICE_ROLE",
        ] {
            assert!(env.contains_key(key), "{name}: no {key}");
        }
        assert_eq!(env["BOXOFFICE_LISTEN"], "0.0.0.0:8080", "{name}");
        assert_eq!(env["BOXOFFICE_LOG_FORMAT"], "json", "{name}");
        secrets.insert(env["BOXOFFICE_JWT_SECRET"].clone());
        // Every dependency is reached through Toxiproxy, on one of its proxies.
        let mut addresses = vec![
            env["DATABASE_URL"].clone(),
            env["REDIS_URL"].clone(),
            env["BOXOFFICE_PAYMENTS_URL"].clone(),
        ];
        addresses.extend(env["KAFKA_BROKERS"].split(',').map(str::to_owned));
        for a in addresses {
            assert_eq!(host_of(&a), "toxiproxy", "{name}: {a} bypasses Toxiproxy");
            assert!(
                proxy_ports.contains_key(&port_of(&a)),
                "{name}: {a}: no proxy listens there"
            );
        }
    }
    assert_eq!(
        secrets.len(),
        1,
        "the instances must share one JWT secret: {secrets:?}"
    );
    assert_eq!(environment(&svc["app-1"])["BOXOFFICE_ROLE"], "api");
    assert_eq!(environment(&svc["worker"])["BOXOFFICE_ROLE"], "worker");
}

#[test]
fn nginx_balances_over_the_instances_with_passive_health() {
    let doc = compose();
    let svc = services(&doc);
    let conf = read(&compose_dir().join("nginx/nginx.conf"));
    let start = conf.find("upstream boxoffice").expect("upstream boxoffice");
    let block = &conf[start..start + conf[start..].find('}').unwrap()];
    let servers: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("server "))
        .collect();
    let hosts: BTreeSet<String> = servers
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    assert!(hosts.len() >= 2, "{servers:?}");
    for line in &servers {
        let target = line.split_whitespace().nth(1).unwrap();
        let host = host_of(target);
        assert!(
            svc.contains_key(&host),
            "nginx upstream {host} is not a service"
        );
        let listen = environment(&svc[&host])["BOXOFFICE_LISTEN"].clone();
        assert_eq!(
            port_of(target),
            port_of(&listen),
            "{line} vs {host} listening on {listen}"
        );
        assert!(
            line.contains("max_fails="),
            "{line}: no passive health check"
        );
    }
    for name in svc.keys().filter(|n| n.starts_with("app-")) {
        assert!(
            hosts.iter().any(|h| host_of(h) == *name),
            "{name} is not behind nginx"
        );
    }
    assert!(conf.contains("proxy_pass http://boxoffice"));
    let nginx = &svc["nginx"];
    assert!(bind_mounts(nginx)
        .iter()
        .any(|(s, t)| s == "./nginx/nginx.conf" && t == "/etc/nginx/nginx.conf"));
}

#[test]
fn toxiproxy_fronts_every_dependency_and_its_upstreams_are_services() {
    let doc = compose();
    let svc = services(&doc);
    let proxies: Value =
        serde_json::from_str(&read(&compose_dir().join("toxiproxy.json"))).unwrap();
    let proxies = proxies.as_array().expect("an array of proxies");
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for p in proxies {
        let name = p["name"].as_str().unwrap();
        let upstream = p["upstream"].as_str().unwrap();
        assert!(names.insert(name.to_owned()), "proxy {name} twice");
        assert!(
            ports.insert(port_of(p["listen"].as_str().unwrap())),
            "{name}: listen port reused"
        );
        assert!(
            svc.contains_key(&host_of(upstream)),
            "proxy {name}: upstream {upstream} is not a service"
        );
    }
    for name in [
        "postgres", "redis", "payments", "kafka-1", "kafka-2", "kafka-3",
    ] {
        assert!(names.contains(name), "no proxy {name}");
    }
    // Each broker advertises its PROXIED listener as the Toxiproxy port whose proxy leads back
    // to that broker, so clients stay behind the proxy after the metadata round trip.
    for broker in ["kafka-1", "kafka-2", "kafka-3"] {
        let env = environment(&svc[broker]);
        let advertised = &env["KAFKA_ADVERTISED_LISTENERS"];
        let proxied = advertised
            .split(',')
            .find_map(|l| l.strip_prefix("PROXIED://"))
            .unwrap_or_else(|| panic!("{broker}: no PROXIED listener in {advertised}"));
        assert_eq!(host_of(proxied), "toxiproxy");
        let proxy = proxies
            .iter()
            .find(|p| port_of(p["listen"].as_str().unwrap()) == port_of(proxied))
            .unwrap_or_else(|| panic!("{broker}: no proxy listens on {proxied}"));
        let upstream = proxy["upstream"].as_str().unwrap();
        assert_eq!(host_of(upstream), broker, "{proxied} leads to {upstream}");
        let listeners = &env["KAFKA_LISTENERS"];
        assert!(
            listeners.contains(&format!("PROXIED://:{}", port_of(upstream))),
            "{broker}: {listeners}"
        );
    }
}

#[test]
fn the_topic_job_creates_the_topics_the_box_office_uses() {
    let outbox = read(&repo_root().join("system/src/store/outbox.rs"));
    let topic = |constant: &str| {
        let at = outbox
            .find(&format!("pub const {constant}: &str = \""))
            .unwrap_or_else(|| panic!("{constant} not in outbox.rs"));
        let rest = &outbox[at..];
        let q = rest.find('"').unwrap() + 1;
        rest[q..q + rest[q..].find('"').unwrap()].to_owned()
    };
    let script = read(&compose_dir().join("kafka/create-topics.sh"));
    for constant in ["BOOKING_TOPIC", "COUPON_TOPIC"] {
        let name = topic(constant);
        assert!(
            script.contains(&name),
            "kafka/create-topics.sh does not create {name}"
        );
    }
    let doc = compose();
    let init = &services(&doc)["kafka-init"];
    assert!(is_one_shot(init));
    for app in ["app-1", "app-2", "worker"] {
        assert_eq!(
            services(&doc)[app]["depends_on"]["kafka-init"]["condition"],
            "service_completed_successfully"
        );
    }
}

// ───────────────────────────── observability ─────────────────────────────

#[test]
fn prometheus_scrapes_services_with_the_project_job_names() {
    let doc = compose();
    let svc = services(&doc);
    let prom = yaml_file(&compose_dir().join("prometheus/prometheus.yml"));
    let extra_hosts: BTreeSet<String> = str_list(&svc["prometheus"]["extra_hosts"])
        .iter()
        .map(|h| h.split(':').next().unwrap().to_owned())
        .collect();
    let mut jobs = BTreeMap::new();
    for job in prom["scrape_configs"].as_array().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_owned();
        let mut targets = Vec::new();
        for sc in job["static_configs"].as_array().unwrap() {
            for t in str_list(&sc["targets"]) {
                let host = host_of(&t);
                assert!(
                    svc.contains_key(&host) || extra_hosts.contains(&host),
                    "job {name}: target {t} is neither a service nor an extra host of prometheus"
                );
                targets.push(host);
            }
        }
        assert!(
            jobs.insert(name.clone(), targets).is_none(),
            "job {name} twice"
        );
    }
    for job in ["boxoffice", "scenario", "chaos", "prometheus"] {
        assert!(
            jobs.contains_key(job),
            "no scrape job {job}: {:?}",
            jobs.keys()
        );
    }
    for app in ["app-1", "app-2", "worker"] {
        assert!(
            jobs["boxoffice"].iter().any(|t| t == app),
            "boxoffice job misses {app}"
        );
    }
    assert_eq!(jobs["scenario"], vec!["host.docker.internal".to_owned()]);
    // What the runner pushes keeps its own job and instance labels.
    assert_eq!(jobs["pushgateway"], vec!["pushgateway".to_owned()]);
    let pushgateway = prom["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "pushgateway")
        .unwrap();
    assert_eq!(pushgateway["honor_labels"], Value::Bool(true));
    assert_eq!(
        str_list(&svc["pushgateway"]["profiles"]),
        vec!["observability"]
    );
    assert_eq!(jobs["chaos"], vec!["toxiproxy".to_owned()]);
    let am = &prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0];
    assert_eq!(am, "alertmanager:9093");
}

/// Container path → host path, through the service's bind mounts.
fn host_path(service: &Value, container_path: &str) -> Option<PathBuf> {
    bind_mounts(service)
        .into_iter()
        .find_map(|(source, target)| {
            let rest = container_path.strip_prefix(&target)?;
            Some(
                compose_dir()
                    .join(source)
                    .join(rest.trim_start_matches('/')),
            )
        })
}

fn files_matching(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn prometheus_rule_globs_match_the_mounted_alert_rules() {
    let doc = compose();
    let prometheus = &services(&doc)["prometheus"];
    let prom = yaml_file(&compose_dir().join("prometheus/prometheus.yml"));
    let globs = str_list(&prom["rule_files"]);
    assert_eq!(globs, vec!["/etc/prometheus/rules/*.yml".to_owned()]);
    for glob in globs {
        let (dir, pattern) = glob.rsplit_once('/').unwrap();
        let suffix = pattern.strip_prefix('*').expect("a *.ext glob");
        let host_dir = host_path(prometheus, dir).unwrap_or_else(|| panic!("{dir} is not mounted"));
        assert!(host_dir.ends_with("alerts/rules"), "{}", host_dir.display());
        let all = files_matching(&host_dir, "");
        let matched = files_matching(&host_dir, suffix);
        assert!(
            !all.is_empty(),
            "{} holds no rule files",
            host_dir.display()
        );
        assert!(
            !matched.is_empty(),
            "{glob} matches none of {:?} (rule files must end in {suffix})",
            all
        );
    }
}

#[test]
fn promtool_accepts_the_prometheus_config_with_the_mounted_rules() {
    let Some(promtool) = which("promtool") else {
        panic!("promtool is not installed: apt-get install -y prometheus");
    };
    // The config as Prometheus sees it in the container, with container paths mapped to the
    // repository: the rule files are loaded and checked too.
    let doc = compose();
    let prometheus = &services(&doc)["prometheus"];
    let text = read(&compose_dir().join("prometheus/prometheus.yml"));
    let rules = host_path(prometheus, "/etc/prometheus/rules").unwrap();
    let text = text.replace("/etc/prometheus/rules", &rules.to_string_lossy());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("prometheus.yml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `"datasource": {"uid": …}` in a Grafana dashboard (panels, targets, variables).
fn datasource_uids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(ds)) = m.get("datasource") {
                if let Some(uid) = ds.get("uid").and_then(Value::as_str) {
                    // Grafana's built-ins and template references are not provisioned.
                    let builtin = matches!(
                        uid,
                        "grafana" | "-- Grafana --" | "-- Mixed --" | "-- Dashboard --"
                    );
                    if !builtin && !uid.starts_with('$') {
                        out.insert(uid.to_owned());
                    }
                }
            }
            for x in m.values() {
                datasource_uids(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| datasource_uids(x, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboards_use_provisioned_datasources_that_point_at_services() {
    let doc = compose();
    let svc = services(&doc);
    let grafana = &svc["grafana"];
    let provisioning =
        host_path(grafana, "/etc/grafana/provisioning").expect("provisioning mounted");
    let dashboards = host_path(grafana, "/var/lib/grafana/dashboards").expect("dashboards mounted");
    assert!(provisioning.ends_with("dashboards/provisioning"));
    assert!(dashboards.ends_with("dashboards/grafana"));

    let mut provisioned = BTreeMap::new();
    for file in files_matching(&provisioning.join("datasources"), ".yml")
        .into_iter()
        .chain(files_matching(&provisioning.join("datasources"), ".yaml"))
    {
        let y = yaml_file(&file);
        for ds in y["datasources"].as_array().into_iter().flatten() {
            let uid = ds["uid"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: a datasource without uid", file.display()));
            let url = ds["url"].as_str().unwrap_or_default().to_owned();
            if !url.is_empty() {
                let host = host_of(&url);
                assert!(
                    svc.contains_key(&host),
                    "{}: datasource {uid} url {url}: {host} is not a service",
                    file.display()
                );
            }
            provisioned.insert(uid.to_owned(), url);
        }
    }
    let dashboard_files = files_matching(&dashboards, ".json");
    assert!(
        !dashboard_files.is_empty(),
        "no dashboards in {}",
        dashboards.display()
    );
    for uid in ["prometheus", "elasticsearch", "jaeger"] {
        assert!(
            provisioned.contains_key(uid),
            "datasource uid {uid} is not provisioned: {provisioned:?}"
        );
    }
    for file in &dashboard_files {
        let json: Value =
            serde_json::from_str(&read(file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut uids = BTreeSet::new();
        datasource_uids(&json, &mut uids);
        for uid in uids {
            assert!(
                provisioned.contains_key(&uid),
                "{} uses datasource uid {uid}, which is not provisioned ({:?})",
                file.display(),
                provisioned.keys()
            );
        }
    }
    // Dashboard providers read the directory the dashboards are mounted on.
    for file in files_matching(&provisioning.join("dashboards"), ".yml") {
        let y = yaml_file(&file);
        for p in y["providers"].as_array().into_iter().flatten() {
            let path = p["options"]["path"].as_str().unwrap_or_default();
            assert!(
                path.starts_with("/var/lib/grafana/dashboards"),
                "{}: provider path {path} is not where the dashboards are mounted",
                file.display()
            );
        }
    }
}

#[test]
fn logging_and_tracing_configs_point_at_services() {
    let doc = compose();
    let svc = services(&doc);
    let filebeat = yaml_file(&compose_dir().join("filebeat/filebeat.yml"));
    for host in str_list(&filebeat["output.elasticsearch"]["hosts"]) {
        assert!(svc.contains_key(&host_of(&host)), "filebeat output {host}");
    }
    let fb = read(&compose_dir().join("filebeat/filebeat.yml"));
    assert!(
        fb.contains("decode_json_fields"),
        "filebeat must decode the JSON log lines"
    );
    // The label filebeat selects on is set on the box office's containers.
    for app in ["app-1", "app-2", "worker", "payments"] {
        assert_eq!(svc[app]["labels"]["boxoffice_logs"], "json", "{app}");
    }
    let otel = yaml_file(&compose_dir().join("otel/collector.yml"));
    let exporters = otel["exporters"].as_object().unwrap();
    for (name, e) in exporters {
        if let Some(endpoint) = e["endpoint"].as_str() {
            assert!(
                svc.contains_key(&host_of(endpoint)),
                "otel exporter {name}: {endpoint}"
            );
        }
    }
    let pipelines = otel["service"]["pipelines"].as_object().unwrap();
    for (name, p) in pipelines {
        for section in ["receivers", "processors", "exporters"] {
            for c in str_list(&p[section]) {
                assert!(
                    otel[section][&c].is_object(),
                    "otel pipeline {name}: {section} {c} is not defined"
                );
            }
        }
    }
    let endpoint = &environment(&svc["app-1"])["OTEL_EXPORTER_OTLP_ENDPOINT"];
    assert_eq!(host_of(endpoint), "otel-collector");
    let receivers = &otel["receivers"]["otlp"]["protocols"];
    let listening: Vec<u16> = ["grpc", "http"]
        .iter()
        .filter_map(|p| receivers[p]["endpoint"].as_str())
        .map(port_of)
        .collect();
    assert!(
        listening.contains(&port_of(endpoint)),
        "{endpoint} vs collector {listening:?}"
    );
    // Kibana's saved objects are imported from the mounted dashboards/kibana.
    let init = &svc["kibana-init"];
    let saved = host_path(init, "/saved-objects").expect("saved objects mounted");
    assert!(saved.ends_with("dashboards/kibana"));
    let script = read(&compose_dir().join("kibana/import-saved-objects.sh"));
    assert!(script.contains("/api/saved_objects/_import"));
}

/// Filebeat writes the logs where the Kibana data view and the Grafana datasource read them:
/// one index pattern across the three files (a mismatch leaves every log dashboard empty).
#[test]
fn logs_land_in_the_index_the_dashboards_read() {
    let filebeat = yaml_file(&compose_dir().join("filebeat/filebeat.yml"));
    let index = filebeat["output.elasticsearch"]["index"]
        .as_str()
        .expect("filebeat sets output.elasticsearch.index");
    let prefix = index.split("%{").next().unwrap();
    assert!(!prefix.is_empty(), "index {index} has no fixed prefix");
    let pattern = format!("{prefix}*");
    assert_eq!(
        filebeat["setup.template.pattern"].as_str(),
        Some(pattern.as_str()),
        "filebeat's template must cover the index it writes"
    );
    assert_eq!(filebeat["setup.ilm.enabled"], Value::Bool(false));

    let datasources =
        yaml_file(&repo_root().join("dashboards/provisioning/datasources/datasources.yml"));
    let elastic: Vec<&Value> = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "elasticsearch")
        .collect();
    assert!(!elastic.is_empty(), "no Elasticsearch datasource");
    for d in elastic {
        assert_eq!(
            d["jsonData"]["index"].as_str(),
            Some(pattern.as_str()),
            "Grafana datasource {}",
            d["uid"]
        );
    }

    let saved = read(&repo_root().join("dashboards/kibana/boxoffice.ndjson"));
    let titles: Vec<String> = saved
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["type"] == "index-pattern")
        .map(|o| o["attributes"]["title"].as_str().unwrap().to_owned())
        .collect();
    assert!(!titles.is_empty(), "no Kibana data view");
    for title in titles {
        assert_eq!(title, pattern, "Kibana data view");
    }
}

#[test]
fn the_dockerfile_builds_every_binary_the_compose_file_runs() {
    let doc = compose();
    let dockerfile = read(&compose_dir().join("Dockerfile"));
    let mut programs = BTreeSet::new();
    for (_, s) in services(&doc) {
        if s["build"].is_object() {
            let first = str_list(&s["entrypoint"])
                .into_iter()
                .next()
                .or_else(|| str_list(&s["command"]).into_iter().next());
            programs.insert(first.expect("a command"));
        }
    }
    assert_eq!(
        programs,
        ["boxoffice", "chaos", "payment-provider", "worker"]
            .map(String::from)
            .into(),
    );
    for p in &programs {
        assert!(
            dockerfile.contains(&format!("target/release/{p}")),
            "the Dockerfile does not ship {p}"
        );
    }
    assert!(
        dockerfile.contains("cargo chef cook"),
        "dependencies are not cached in a layer"
    );
    for bin in ["boxoffice.rs", "payment-provider.rs", "worker.rs"] {
        assert!(
            repo_root().join("system/src/bin").join(bin).is_file(),
            "no system/src/bin/{bin}"
        );
    }
    // BuildKit reads `<Dockerfile>.dockerignore` beside the Dockerfile, so the ignore file
    // lives in compose/ with it rather than at the top of the repository.
    let ignore = read(&compose_dir().join("Dockerfile.dockerignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "compose/Dockerfile.dockerignore must exclude target/"
    );
}

// ───────────────────────────── the docker stack ─────────────────────────────

/// Set (to a socket path that does not exist) on the child that
/// [`no_daemon_helper`] runs in.
const NO_DAEMON_ENV: &str = "BOXOFFICE_TEST_NO_DAEMON";

/// Whatever runs on this machine, a daemon at a socket that does not exist is absent: the test
/// runs this binary again with `DOCKER_HOST` pointing there, so it never depends on whether a
/// Docker daemon happens to run here.
#[test]
fn without_a_daemon_the_docker_stack_says_so_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/no-docker.sock", dir.path().display());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "deploy::no_daemon_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DOCKER_HOST", &host)
        .env(NO_DAEMON_ENV, &host)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("NO_DAEMON_CHECKED"),
        "the helper failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by [`without_a_daemon_the_docker_stack_says_so_clearly`] with `DOCKER_HOST` pointing at a
/// socket that does not exist.
#[tokio::test]
#[ignore = "helper process, run by without_a_daemon_the_docker_stack_says_so_clearly"]
async fn no_daemon_helper() {
    let host = std::env::var(NO_DAEMON_ENV).expect("run by the test above, which sets the host");
    assert_eq!(compose::docker::docker_host(), host);
    let message = compose::docker::docker_available()
        .await
        .expect_err("no daemon answers at a socket that does not exist")
        .to_string();
    println!("docker_available(): {message}");
    assert!(
        message.starts_with("Docker is not available here: "),
        "{message}"
    );
    assert!(message.ends_with("; use --stack local"), "{message}");
    assert!(message.contains(&host), "{message}");
    // What a caller gets from starting the stack is the same sentence.
    let err = compose::docker::DockerStack::start(Default::default())
        .await
        .expect_err("the docker stack cannot start without Docker");
    assert!(
        format!("{err:#}").contains("Docker is not available here"),
        "{err:#}"
    );
    println!("NO_DAEMON_CHECKED");
}

/// The whole docker stack, for machines with a Docker daemon that can pull the public images
/// (PostgreSQL, Redis, Kafka, Toxiproxy, nginx). Opt-in, so the default suite never depends on
/// what else runs on the machine:
///
/// ```text
/// cargo test -p compose --test it -- --ignored --exact deploy::the_docker_stack_starts_where_docker_is
/// ```
///
/// It builds the box office image from `compose/Dockerfile` when `$BOXOFFICE_IMAGE` (default
/// `boxoffice-lab:latest`) is not there yet, and fails with what is missing otherwise.
#[tokio::test]
#[ignore = "opt-in: needs a Docker daemon that can pull images (see compose/README.md)"]
async fn the_docker_stack_starts_where_docker_is() {
    if let Err(e) = compose::docker::docker_available().await {
        panic!("this opt-in test needs a Docker daemon: {e}");
    }
    let image = std::env::var("BOXOFFICE_IMAGE")
        .unwrap_or_else(|_| compose::docker::DEFAULT_APP_IMAGE.to_owned());
    let present = Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        eprintln!("building {image} from compose/Dockerfile (the first build takes minutes)");
        compose::docker::build_app_image(&repo_root(), &image).unwrap_or_else(|e| {
            panic!(
                "the box office image {image} could not be built: {e:#} \
                 (the build needs the rust and debian base images from a registry)"
            )
        });
    }
    let stack = compose::docker::DockerStack::start(compose::docker::DockerOptions {
        instances: 2,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| {
        panic!("the docker stack did not start (are the public images reachable?): {e:#}")
    });
    let names: Vec<String> = stack.components().into_iter().map(|c| c.name).collect();
    for n in [
        "postgres",
        "redis",
        "kafka",
        "payments",
        "app-1",
        "app-2",
        "toxiproxy",
        "nginx",
    ] {
        assert!(names.iter().any(|x| x == n), "{names:?}");
    }
    let targets = stack.targets();
    for n in ["postgres", "redis", "kafka", "payments", "app-1", "app-2"] {
        assert!(targets.contains_key(n), "no chaos target {n}");
    }
    // The instances answer directly and through nginx.
    for (name, url) in stack.instance_urls() {
        let out = Command::new("curl")
            .args(["-fsS", &format!("{url}/health/ready")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("curl")
        .args(["-fsS", &format!("{}/health/live", stack.url())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "through nginx: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stack.stop().await;
}

// ───────────────────────────── checked by the real tools ─────────────────────────────
//
// Each config the deployed stack mounts is handed to the program that reads it in production
// (Debian's builds of them), with only what cannot exist outside Docker rewritten: service
// names become loopback addresses and fixed ports become free ones. Every rewrite must hit, so
// a renamed service or port fails here instead of being silently left unchecked.

/// `text` with `from` replaced by `to`, which must occur exactly `times` times.
fn rewrite(text: &str, from: &str, to: &str, times: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        times,
        "expected `{from}` {times} time(s) in the file under test"
    );
    text.replace(from, to)
}

fn tool(program: &str, hint: &str) -> PathBuf {
    which(program).unwrap_or_else(|| panic!("{program} is not installed: {hint}"))
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `nginx -t` on compose/nginx/nginx.conf, with app-1/app-2 mapped to loopback addresses (nginx
/// resolves upstream names while parsing) and the pid file moved into a temp dir.
///
/// What Debian's nginx 1.22 cannot check: the upstream `resolve` parameter (re-resolving a
/// recreated container's address), which needs nginx >= 1.27.3 and is removed from the copy;
/// the test asserts that the shipped file does carry it on every server line, and that 1.22
/// rejects exactly that parameter and nothing else.
#[test]
fn nginx_accepts_the_config_with_service_names_on_loopback() {
    let nginx = tool("nginx", "apt-get install -y --no-install-recommends nginx");
    let original = read(&compose_dir().join("nginx/nginx.conf"));
    let tmp = tempfile::tempdir().unwrap();
    let pid = tmp.path().join("nginx.pid");
    let check = |text: &str| {
        let path = tmp.path().join("nginx.conf");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(&nginx)
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(tmp.path())
            .args(["-e", "stderr"])
            .output()
            .unwrap();
        (out.status.success(), output_text(&out))
    };
    let loopback = rewrite(&original, "server app-1:", "server 127.0.0.1:", 1);
    let loopback = rewrite(&loopback, "server app-2:", "server 127.0.0.2:", 1);
    let loopback = rewrite(
        &loopback,
        "pid /tmp/nginx.pid;",
        &format!("pid {};", pid.display()),
        1,
    );

    // As shipped (names mapped), 1.22 stops at `resolve` and at nothing else.
    let (ok, out) = check(&loopback);
    assert!(!ok, "nginx 1.22 accepted `resolve`?\n{out}");
    assert!(
        out.contains("invalid parameter \"resolve\""),
        "nginx rejected something other than `resolve`:\n{out}"
    );
    let checkable = rewrite(&loopback, " resolve;", ";", 2);
    let (ok, out) = check(&checkable);
    assert!(ok, "nginx -t:\n{out}");
    assert!(out.contains("test is successful"), "{out}");

    // And a typo is caught: the check is real.
    let (ok, out) = check(&rewrite(&checkable, "least_conn;", "least_con;", 1));
    assert!(
        !ok && out.contains("unknown directive"),
        "a typo passed:\n{out}"
    );
}

#[test]
fn promtool_resolves_every_rule_file_the_prometheus_config_names() {
    let promtool = tool("promtool", "apt-get install -y prometheus");
    let doc = compose();
    let prometheus = &services(&doc)["prometheus"];
    let text = read(&compose_dir().join("prometheus/prometheus.yml"));
    let rules = host_path(prometheus, "/etc/prometheus/rules").unwrap();
    let text = text.replace("/etc/prometheus/rules", &rules.to_string_lossy());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("prometheus.yml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "promtool check config:\n{text}");
    let expected = files_matching(&rules, ".yml").len();
    assert!(expected > 0);
    assert!(
        text.contains(&format!("{expected} rule files found")),
        "promtool did not load the {expected} mounted rule files:\n{text}"
    );
    for file in files_matching(&rules, ".yml") {
        assert!(
            text.contains(&format!(
                "Checking {}",
                file.canonicalize().unwrap().display()
            )),
            "{} was not checked:\n{text}",
            file.display()
        );
    }
}

/// The Alertmanager config the compose service mounts passes `amtool check-config`, and every
/// secret file it reads (`api_url_file`) is one the service's command writes before starting.
#[test]
fn amtool_accepts_the_mounted_alertmanager_config_and_its_secret_files_are_written() {
    let amtool = tool("amtool", "apt-get install -y prometheus-alertmanager");
    let doc = compose();
    let am = &services(&doc)["alertmanager"];
    let config = host_path(am, "/etc/alertmanager/alertmanager.yml").expect("config mounted");
    // The mount is the file itself: no trailing separator.
    let config = PathBuf::from(config.to_string_lossy().trim_end_matches('/'));
    let out = Command::new(amtool)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "amtool check-config:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let command = str_list(&am["command"]).join("\n");
    let yaml = read(&config);
    let files: Vec<&str> = yaml
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .strip_prefix("api_url_file:")
        })
        .map(str::trim)
        .collect();
    assert!(!files.is_empty(), "no api_url_file in {}", config.display());
    for file in files {
        assert!(
            command.contains(&format!("> {file}")),
            "{file} is read by Alertmanager but not written by its command:\n{command}"
        );
    }
}

/// Runs `sh`/`bash` on a script as `owner` (uid, gid) when that is not us.
fn as_owner(command: &mut Command, owner: (u32, u32)) {
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::process::CommandExt as _;
    let probe = tempfile::NamedTempFile::new().unwrap();
    let me = std::fs::metadata(probe.path()).unwrap();
    if (me.uid(), me.gid()) != owner {
        command.uid(owner.0).gid(owner.1);
    }
}

/// A child stopped on drop, its output kept in a file for the failure message.
struct Running {
    child: std::process::Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGQUIT: PostgreSQL's immediate shutdown, and Sentinel exits on it as well.
        let _ = chaos::process::send(self.child.id(), chaos::process::Signal::SIGQUIT);
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(mut command: Command, log: PathBuf) -> Running {
    let file = std::fs::File::create(&log).unwrap();
    command
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    Running {
        child: command.spawn().unwrap(),
        log,
    }
}

/// compose/postgres/primary-init.sh on a real primary, then standby-entrypoint.sh cloning it,
/// both with Debian's PostgreSQL binaries, as the unprivileged owner of the data directories:
/// the standby streams what the primary commits and stays read-only. Rewritten for the check:
/// the primary's fixed port 5432 (a free port instead); the standby's port comes from PGPORT,
/// and its unix socket goes to a temp dir (the image's /var/run/postgresql is not ours here).
#[tokio::test]
async fn the_postgres_replication_scripts_make_a_streaming_standby() {
    use std::os::unix::fs::MetadataExt as _;
    let bin = compose::postgres::find_postgres_bin_dir().expect("PostgreSQL binaries");
    // The image's default max_connections (100): a hot standby refuses to run with fewer
    // connections than its primary, and the compose stack sets neither.
    let primary = compose::LocalPostgres::start_with(&[("max_connections", "100")])
        .await
        .expect("a primary");
    let data = primary.data_dir().to_path_buf();
    let meta = std::fs::metadata(&data).unwrap();
    let owner = (meta.uid(), meta.gid());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(work.path(), Some(owner.0), Some(owner.1)).unwrap();

    // The init script as docker-entrypoint-initdb.d runs it: psql to the primary, PGDATA set.
    let mut init = Command::new("bash");
    init.arg(compose_dir().join("postgres/primary-init.sh"))
        .env("PATH", &path)
        .env("POSTGRES_USER", "postgres")
        .env("POSTGRES_DB", "postgres")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", primary.port().to_string())
        .env("PGDATA", &data)
        .env("REPLICATION_USER", "replicator")
        .env("REPLICATION_PASSWORD", "replicator-secret")
        .env("HOME", work.path())
        .current_dir(work.path());
    as_owner(&mut init, owner);
    let out = init.output().unwrap();
    assert!(
        out.status.success(),
        "primary-init.sh:\n{}",
        output_text(&out)
    );
    let hba = read(&data.join("pg_hba.conf"));
    assert!(
        hba.lines()
            .any(|l| l == "host replication replicator all scram-sha-256"),
        "{hba}"
    );
    // The docker image reloads after the init scripts; so do we. Trust lines come first in
    // the test cluster's pg_hba.conf, so the replicator is authenticated as `trust` here.
    let admin = sqlx::PgPool::connect(&primary.url("postgres"))
        .await
        .unwrap();
    sqlx::raw_sql("SELECT pg_reload_conf()")
        .execute(&admin)
        .await
        .unwrap();
    // The standby inherits the primary's postgresql.auto.conf through pg_basebackup.
    sqlx::raw_sql(&format!(
        "ALTER SYSTEM SET unix_socket_directories = '{}'",
        work.path().display()
    ))
    .execute(&admin)
    .await
    .unwrap();

    let script = read(&compose_dir().join("postgres/standby-entrypoint.sh"));
    let script = rewrite(&script, "-p 5432", &format!("-p {}", primary.port()), 2);
    let script_path = work.path().join("standby-entrypoint.sh");
    std::fs::write(&script_path, script).unwrap();
    let pgdata = work.path().join("data");
    std::fs::create_dir(&pgdata).unwrap();
    std::os::unix::fs::chown(&pgdata, Some(owner.0), Some(owner.1)).unwrap();
    let standby_port = compose::free_port().unwrap();
    let mut command = Command::new("bash");
    command
        .arg(&script_path)
        .env("PATH", &path)
        .env("PRIMARY_HOST", "127.0.0.1")
        .env("REPLICATION_USER", "replicator")
        .env("REPLICATION_PASSWORD", "replicator-secret")
        .env("PGDATA", &pgdata)
        .env("PGPORT", standby_port.to_string())
        .env("HOME", work.path())
        .env("LC_ALL", "C")
        .current_dir(work.path());
    as_owner(&mut command, owner);
    let mut standby = spawn_logged(command, work.path().join("standby.log"));

    let standby_url = format!("postgres://postgres@127.0.0.1:{standby_port}/postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let replica = loop {
        if let Ok(pool) = sqlx::PgPool::connect(&standby_url).await {
            break pool;
        }
        if let Ok(Some(status)) = standby.child.try_wait() {
            panic!("the standby exited ({status}):\n{}", standby.log());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby did not accept connections in 60 s:\n{}",
            standby.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&replica)
        .await
        .unwrap();
    assert!(recovering, "the standby is not in recovery");
    let slot_active: bool =
        sqlx::query_scalar("SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_1'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(
        slot_active,
        "the standby does not stream through slot standby_1"
    );

    sqlx::raw_sql(
        "CREATE TABLE replicated (v text); INSERT INTO replicated VALUES ('from the primary')",
    )
    .execute(&admin)
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let row: Option<String> = sqlx::query_scalar("SELECT v FROM replicated")
            .fetch_optional(&replica)
            .await
            .ok()
            .flatten();
        if row.as_deref() == Some("from the primary") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the row did not reach the standby:\n{}",
            standby.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let write = sqlx::raw_sql("CREATE TABLE on_standby (v int)")
        .execute(&replica)
        .await;
    assert!(write.is_err(), "the standby accepted a write");
    replica.close().await;
    admin.close().await;
    drop(standby);
}

/// compose/redis/sentinel-entrypoint.sh with Debian's redis-sentinel against a real Redis: the
/// Sentinel it starts monitors the master by host name and has its quorum. Rewritten for the
/// check: the `redis` service name becomes `localhost` (still a name Sentinel must resolve,
/// `resolve-hostnames yes`), and the fixed ports and config path become free ones.
#[tokio::test]
async fn the_sentinel_entrypoint_monitors_redis_by_name() {
    let sentinel = tool("redis-sentinel", "apt-get install -y redis-sentinel");
    let redis = compose::LocalRedis::start().await.expect("a Redis server");
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("sentinel.conf");
    let port = compose::free_port().unwrap();
    let script = read(&compose_dir().join("redis/sentinel-entrypoint.sh"));
    let script = rewrite(
        &script,
        "CONF=/tmp/sentinel.conf",
        &format!("CONF={}", conf.display()),
        1,
    );
    let script = rewrite(&script, "port 26379", &format!("port {port}"), 1);
    let script = rewrite(
        &script,
        "} redis 6379 1",
        &format!("}} localhost {} 1", redis.port()),
        1,
    );
    let script_path = work.path().join("sentinel-entrypoint.sh");
    std::fs::write(&script_path, script).unwrap();
    let mut command = Command::new("sh");
    command
        .arg(&script_path)
        .env(
            "PATH",
            format!(
                "{}:{}",
                sentinel.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("SENTINEL_MASTER_NAME", "boxoffice")
        .env("SENTINEL_DOWN_AFTER_MS", "5000")
        .current_dir(work.path());
    let running = spawn_logged(command, work.path().join("sentinel.log"));

    let ask = |cmd: &str| -> Option<String> {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let quorum = loop {
        match ask("SENTINEL ckquorum boxoffice") {
            Some(reply) if reply.starts_with("+OK") => break reply,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "Sentinel never had its quorum (last reply {other:?}):\n{}",
                    running.log()
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    assert!(quorum.contains("1 usable Sentinels"), "{quorum}");
    let master = ask("SENTINEL get-master-addr-by-name boxoffice").unwrap();
    assert!(
        master.contains("localhost") && master.contains(&redis.port().to_string()),
        "{master}"
    );
    let down_after = ask("SENTINEL master boxoffice").unwrap();
    assert!(
        down_after.contains("down-after-milliseconds"),
        "{down_after}"
    );
    assert!(down_after.contains("\r\n5000\r\n"), "{down_after}");
    // Sentinel rewrote its config file in place (why the script writes it somewhere writable).
    assert!(read(&conf).contains("# Generated by CONFIG REWRITE"));
    drop(running);
}
