//! The type compose v2 gives each typed key of a service. compose v2 casts
//! what a file writes (`replicas: "2"`, `read_only: "yes"`, `cpus: 0.5`,
//! `traefik.enable: true` in `labels`) to the type its schema wants;
//! docker-compose 1.x and `docker stack deploy` check types strictly and
//! refuse such a file, or read it another way (1.x labels a `true` as
//! `True`). kata writes each value in the type compose v2 reads it as, so
//! that every target reads the same value; the labels of top-level
//! networks, volumes, secrets and configs too. Measured against the real
//! tools.

use serde_json::{Map, Value as Json, json};

/// A path below a service: `*` is any key of a mapping, `[]` any item of a list.
type Path = &'static [&'static str];

/// Keys compose v2 reads as booleans (`"yes"`, `"on"`, `"True"` included).
const BOOLS: &[Path] = &[
    &["privileged"],
    &["read_only"],
    &["tty"],
    &["stdin_open"],
    &["init"],
    &["oom_kill_disable"],
    &["healthcheck", "disable"],
    &["volumes", "[]", "read_only"],
    &["volumes", "[]", "bind", "create_host_path"],
    &["volumes", "[]", "volume", "nocopy"],
];

/// Keys compose v2 reads as integers (`"2"` included).
const INTS: &[Path] = &[
    &["ports", "[]", "target"],
    &["ports", "[]", "published"],
    &["deploy", "replicas"],
    &["deploy", "update_config", "parallelism"],
    &["deploy", "rollback_config", "parallelism"],
    &["deploy", "restart_policy", "max_attempts"],
    &["deploy", "placement", "max_replicas_per_node"],
    &["deploy", "resources", "limits", "pids"],
    &["healthcheck", "retries"],
    &["ulimits", "*"],
    &["ulimits", "*", "soft"],
    &["ulimits", "*", "hard"],
    &["scale"],
    &["cpu_shares"],
    &["pids_limit"],
    &["oom_score_adj"],
    &["mem_swappiness"],
];

/// Keys compose v2 reads as strings (`cpus: 0.5` included).
const STRINGS: &[Path] = &[
    &["deploy", "resources", "limits", "cpus"],
    &["deploy", "resources", "reservations", "cpus"],
    &["shm_size"],
];

/// Mappings of strings in which compose v2 reads `true` as `"true"` (and
/// a label without a value as `""`).
const STRING_MAPS: &[Path] = &[
    &["labels"],
    &["deploy", "labels"],
    &["build", "labels"],
    &["build", "args"],
];

/// compose v2's words for a boolean (YAML 1.1's, which it still casts).
fn boolean(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

/// Writes the typed keys of one rendered service as compose v2 reads them.
pub(crate) fn service(out: &mut Map<String, Json>) {
    let mut svc = Json::Object(std::mem::take(out));
    for p in BOOLS {
        each(&mut svc, p, &mut |v| {
            if let Some(b) = v.as_str().and_then(boolean) {
                *v = json!(b);
            }
        });
    }
    for p in INTS {
        each(&mut svc, p, &mut |v| {
            if let Some(n) = v.as_str().and_then(|s| s.parse::<i64>().ok()) {
                *v = json!(n);
            }
        });
    }
    for p in STRINGS {
        each(&mut svc, p, &mut |v| {
            if let Json::Number(n) = v {
                *v = json!(n.to_string());
            }
        });
    }
    for p in STRING_MAPS {
        string_map(&mut svc, p);
    }
    if let Json::Object(m) = svc {
        *out = m;
    }
}

/// The labels of the top-level networks, volumes, secrets and configs, as
/// compose v2 reads them (`true` is `"true"`).
pub(crate) fn top_level(doc: &mut Json) {
    for section in ["networks", "volumes", "secrets", "configs"] {
        string_map(doc, &[section, "*", "labels"]);
    }
}

/// The mapping at `path` with its booleans as strings (and, for labels, a
/// missing value as `""`).
fn string_map(v: &mut Json, path: &[&str]) {
    let label = path.last() == Some(&"labels");
    each(v, path, &mut |m| {
        for v in m.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
            match v {
                Json::Bool(b) => *v = json!(b.to_string()),
                Json::Null if label => *v = json!(""),
                _ => {}
            }
        }
    });
}

/// Calls `f` on every value at `path` below `v`.
fn each(v: &mut Json, path: &[&str], f: &mut dyn FnMut(&mut Json)) {
    let Some((head, rest)) = path.split_first() else {
        return f(v);
    };
    match (*head, v) {
        ("[]", Json::Array(items)) => items.iter_mut().for_each(|i| each(i, rest, f)),
        ("*", Json::Object(m)) => m.values_mut().for_each(|i| each(i, rest, f)),
        (key, Json::Object(m)) => {
            if let Some(i) = m.get_mut(key) {
                each(i, rest, f)
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(v: Json) -> Json {
        let Json::Object(mut m) = v else {
            unreachable!()
        };
        service(&mut m);
        Json::Object(m)
    }

    #[test]
    fn top_level_labels_are_strings() {
        let mut doc = json!({"networks": {"lan": {"labels": {"x": true, "y": null, "z": 1}}},
            "volumes": {"v": {"labels": {"x": false}}}, "secrets": {"s": null}});
        top_level(&mut doc);
        assert_eq!(
            doc,
            json!({"networks": {"lan": {"labels": {"x": "true", "y": "", "z": 1}}},
                "volumes": {"v": {"labels": {"x": "false"}}}, "secrets": {"s": null}})
        );
    }

    #[test]
    fn typed_keys_get_the_type_compose_v2_casts_them_to() {
        let got = typed(json!({
            "read_only": "yes", "tty": "on", "init": "True", "privileged": "n",
            "stdin_open": "maybe",
            "ports": [{"target": "80", "published": "8080"}, {"target": 53, "published": "5353-5354"}],
            "ulimits": {"nproc": "65535", "nofile": {"soft": "1024", "hard": 2048}},
            "healthcheck": {"retries": "3", "disable": "true"},
            "deploy": {"replicas": "2", "update_config": {"parallelism": "1"},
                "resources": {"limits": {"cpus": 0.5, "pids": "100"},
                    "reservations": {"cpus": "0.25"}},
                "labels": {"a": true}},
            "labels": {"traefik.enable": true, "port": 8080, "flag": null},
            "build": {"args": {"DEBUG": false, "FROM_ENV": null, "N": 7}},
            "shm_size": 67108864,
            "environment": {"KEEP": "yes"},
        }));
        assert_eq!(
            got,
            json!({
                "read_only": true, "tty": true, "init": true, "privileged": false,
                "stdin_open": "maybe",
                "ports": [{"target": 80, "published": 8080}, {"target": 53, "published": "5353-5354"}],
                "ulimits": {"nproc": 65535, "nofile": {"soft": 1024, "hard": 2048}},
                "healthcheck": {"retries": 3, "disable": true},
                "deploy": {"replicas": 2, "update_config": {"parallelism": 1},
                    "resources": {"limits": {"cpus": "0.5", "pids": 100},
                        "reservations": {"cpus": "0.25"}},
                    "labels": {"a": "true"}},
                "labels": {"traefik.enable": "true", "port": 8080, "flag": ""},
                "build": {"args": {"DEBUG": "false", "FROM_ENV": null, "N": 7}},
                "shm_size": "67108864",
                "environment": {"KEEP": "yes"},
            })
        );
    }
}
