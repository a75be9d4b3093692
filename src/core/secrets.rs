//! Swarm secrets (pure part): names, which services mount a secret, and the
//! `docker service update` arguments that swap one secret for another.
//!
//! Swarm secrets are immutable and cannot be removed while a service mounts
//! them, so `secrets:set` replaces one in use in two rolling updates: the
//! services move to a temporary secret holding the new value, the secret is
//! recreated under its own name, and the services move back.

use serde::Deserialize;

/// Docker's limit on secret names.
const MAX_NAME: usize = 64;

pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        && n.as_bytes()[0].is_ascii_alphanumeric()
}

/// How a service mounts a secret (`Spec.TaskTemplate.ContainerSpec.Secrets[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mount {
    #[serde(rename = "SecretName")]
    pub secret: String,
    #[serde(rename = "File")]
    pub file: File,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct File {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "UID", default)]
    pub uid: String,
    #[serde(rename = "GID", default)]
    pub gid: String,
    #[serde(rename = "Mode", default)]
    pub mode: u32,
}

/// The mounts of `secret` in one service, from the JSON of
/// `docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}'`
/// (`null` when the service has none).
pub fn mounts_of(json: &str, secret: &str) -> Result<Vec<Mount>, serde_json::Error> {
    let all: Option<Vec<Mount>> = serde_json::from_str(json)?;
    Ok(all
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.secret == secret)
        .collect())
}

/// A temporary name next to `name`, unique per `salt`, within Docker's limit.
pub fn temporary_name(name: &str, salt: u32) -> String {
    let suffix = format!(".kata-{salt:08x}");
    let keep = name.len().min(MAX_NAME - suffix.len());
    format!("{}{suffix}", &name[..keep])
}

/// `docker service update` arguments that unmount `from` and mount `to` at
/// the same file, owner and mode, waiting until the update converged.
pub fn swap_args(service: &str, from: &str, to: &str, mounts: &[Mount]) -> Vec<String> {
    let mut args: Vec<String> = ["service", "update", "--detach=false", "--quiet"]
        .map(String::from)
        .to_vec();
    args.push("--secret-rm".into());
    args.push(from.into());
    for m in mounts {
        let mut add = format!("source={to},target={}", m.file.name);
        if !m.file.uid.is_empty() {
            add.push_str(&format!(",uid={}", m.file.uid));
        }
        if !m.file.gid.is_empty() {
            add.push_str(&format!(",gid={}", m.file.gid));
        }
        add.push_str(&format!(",mode=0{:o}", m.file.mode));
        args.push("--secret-add".into());
        args.push(add);
    }
    args.push(service.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"[{"File":{"Name":"s1","UID":"0","GID":"0","Mode":292},"SecretID":"abc","SecretName":"db_pw"},
        {"File":{"Name":"other","UID":"1000","GID":"1000","Mode":256},"SecretID":"def","SecretName":"api_key"}]"#;

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("db_pw.v2-1"));
        for bad in ["", "-x", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn mounts_are_found_by_secret_name() {
        let m = mounts_of(INSPECT, "db_pw").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].file.name, "s1");
        assert_eq!(m[0].file.mode, 0o444);
        assert!(mounts_of(INSPECT, "nope").unwrap().is_empty());
        assert!(mounts_of("null", "db_pw").unwrap().is_empty());
        assert!(mounts_of("{", "db_pw").is_err());
    }

    #[test]
    fn swap_keeps_file_owner_and_mode() {
        let m = mounts_of(INSPECT, "db_pw").unwrap();
        assert_eq!(
            swap_args("shop_web", "db_pw", "db_pw.kata-1", &m).join(" "),
            "service update --detach=false --quiet --secret-rm db_pw \
             --secret-add source=db_pw.kata-1,target=s1,uid=0,gid=0,mode=0444 shop_web"
        );
    }

    #[test]
    fn temporary_names_stay_valid() {
        assert_eq!(temporary_name("db_pw", 0xbeef), "db_pw.kata-0000beef");
        let long = "a".repeat(64);
        let t = temporary_name(&long, 1);
        assert_eq!(t.len(), 64);
        assert!(valid_name(&t));
    }
}
