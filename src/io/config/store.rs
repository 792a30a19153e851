//! `[store]`, validated into the `store` module's own [`StoreConfig`]; the S3 credentials and
//! region fall back on the standard `AWS_*` variables.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::value::Problems;
use crate::io::store::{Secret, StoreConfig};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(rename = "type")]
    kind: Option<String>,
    dir: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    path_style: Option<bool>,
    access_key: Option<String>,
    secret_key: Option<Secret>,
    prefix: Option<String>,
}

/// The standard AWS variables `[store]` falls back on when the file and `IMGSERV_STORE_*` leave
/// a key unset (or empty): below the file in precedence, above the defaults.
#[derive(Clone, Default)]
pub(super) struct AwsEnv {
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    region: Option<String>,
}

impl AwsEnv {
    pub(super) fn from_vars(vars: &[(String, String)]) -> AwsEnv {
        let get = |name: &str| {
            vars.iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        AwsEnv {
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY").map(Secret::new),
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
        }
    }

    /// Fills `store.access_key`, `store.secret_key` and `store.region` where they are unset.
    pub(super) fn fill(&self, store: &mut RawStore) {
        fn unset<T: AsRef<str>>(value: &Option<T>) -> bool {
            value.as_ref().is_none_or(|v| v.as_ref().is_empty())
        }
        if unset(&store.access_key) {
            store.access_key.clone_from(&self.access_key_id);
        }
        if store
            .secret_key
            .as_ref()
            .is_none_or(|s| s.expose().is_empty())
        {
            store.secret_key.clone_from(&self.secret_access_key);
        }
        if unset(&store.region) {
            store.region.clone_from(&self.region);
        }
    }
}

/// `[store]`: the filesystem store by default; the S3 keys are read only with `type = "s3"`
/// (the sample file sets them all, empty).
pub(super) fn validate_store(
    raw: RawStore,
    cache_dir: &Path,
    base: &Path,
    p: &mut Problems,
) -> StoreConfig {
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    match raw.kind.as_deref().unwrap_or("fs") {
        "fs" => {
            let dir = p.dir(
                "store.dir",
                raw.dir.as_deref(),
                "/var/lib/imgserv/originals",
                base,
            );
            if dir.starts_with(cache_dir) {
                p.add(
                    "store.dir",
                    "must not be inside cache.dir: the web server would publish the originals",
                );
            }
            StoreConfig::Fs { dir }
        }
        "s3" => {
            let required = |p: &mut Problems, key: &str, value: Option<String>, extra: &str| {
                value.unwrap_or_else(|| {
                    p.add(key, format!("required when store.type = \"s3\"{extra}"));
                    String::new()
                })
            };
            let endpoint = required(
                p,
                "store.endpoint",
                given(raw.endpoint),
                " (an http(s) URL like \"https://s3.eu-west-1.amazonaws.com\")",
            );
            let endpoint = endpoint.trim_end_matches('/').to_string();
            let bucket = required(p, "store.bucket", given(raw.bucket), "");
            if bucket.contains(|c: char| c == '/' || c.is_whitespace() || c.is_control()) {
                p.add(
                    "store.bucket",
                    format!("expected a bucket name, got {bucket:?}"),
                );
            }
            let path_style = raw.path_style.unwrap_or(true);
            if !endpoint.is_empty()
                && !bucket.is_empty()
                && let Err(msg) = crate::io::store::s3::check_bucket(&endpoint, &bucket, path_style)
            {
                p.add("store.endpoint", msg);
            }
            let access_key = required(
                p,
                "store.access_key",
                given(raw.access_key),
                " (or set IMGSERV_STORE_ACCESS_KEY or AWS_ACCESS_KEY_ID)",
            );
            let secret_key = match raw.secret_key.filter(|s| !s.expose().is_empty()) {
                Some(secret) => secret,
                None => {
                    p.add(
                        "store.secret_key",
                        "required when store.type = \"s3\" (or set IMGSERV_STORE_SECRET_KEY or AWS_SECRET_ACCESS_KEY)",
                    );
                    Secret::default()
                }
            };
            let mut prefix = raw.prefix.unwrap_or_default();
            if prefix.starts_with('/') {
                p.add(
                    "store.prefix",
                    format!("must not start with \"/\", got {prefix:?}"),
                );
            }
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            StoreConfig::S3 {
                endpoint,
                region: given(raw.region).unwrap_or_else(|| "us-east-1".into()),
                bucket,
                path_style,
                access_key,
                secret_key,
                prefix,
            }
        }
        other => {
            p.add(
                "store.type",
                format!("expected \"fs\" or \"s3\", got {other:?}"),
            );
            StoreConfig::Fs {
                dir: PathBuf::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::config::tests::{dirs, minimal};
    use crate::io::config::{from_str, from_str_env};

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn store_defaults_to_fs_and_refuses_the_web_root() {
        let d = dirs();
        let c = from_str(minimal(), d.path()).unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Fs {
                dir: PathBuf::from("/var/lib/imgserv/originals")
            }
        );
        let text = format!("{}[store]\ndir = \"cache/originals\"\n", minimal());
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("store.dir: must not be inside cache.dir"),
            "{errs}"
        );
    }

    #[test]
    fn store_problems_name_their_keys() {
        let d = dirs();
        for (store, want) in [
            (
                "type = \"gcs\"",
                "store.type: expected \"fs\" or \"s3\", got \"gcs\"",
            ),
            (
                "type = \"s3\"",
                "store.endpoint: required when store.type = \"s3\"",
            ),
            (
                "type = \"s3\"",
                "store.bucket: required when store.type = \"s3\"",
            ),
            ("type = \"s3\"", "store.access_key: required"),
            ("type = \"s3\"", "store.secret_key: required"),
            (
                "type = \"s3\"\nendpoint = \"ftp://x\"\nbucket = \"b\"",
                "store.endpoint: the endpoint must be http:// or https://",
            ),
            (
                "type = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\npath_style = false",
                "store.endpoint: no virtual-host bucket URL",
            ),
            (
                "type = \"s3\"\nprefix = \"/x\"",
                "store.prefix: must not start with",
            ),
            ("typ = \"s3\"", "typ"),
        ] {
            let text = format!("{}[store]\n{store}\n", minimal());
            let errs = from_str(&text, d.path()).unwrap_err().to_string();
            assert!(errs.contains(want), "{store}: missing {want:?} in:\n{errs}");
        }
    }

    #[test]
    fn store_s3_credentials_come_from_the_file_then_imgserv_then_aws_variables() {
        let d = dirs();
        let s3 = "[store]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:9000/\"\nbucket = \"originals\"\nprefix = \"img\"\n";
        let aws = vars(&[
            ("AWS_ACCESS_KEY_ID", "aws-key"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_REGION", "eu-west-3"),
        ]);
        let c = from_str_env(&format!("{}{s3}", minimal()), d.path(), &aws).unwrap();
        let StoreConfig::S3 {
            endpoint,
            region,
            bucket,
            path_style,
            access_key,
            secret_key,
            prefix,
        } = &c.store
        else {
            panic!("{:?}", c.store)
        };
        assert_eq!(endpoint, "http://127.0.0.1:9000");
        assert_eq!(bucket, "originals");
        assert!(path_style);
        assert_eq!(prefix, "img/");
        assert_eq!(
            (access_key.as_str(), secret_key.expose(), region.as_str()),
            ("aws-key", "aws-secret", "eu-west-3")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("aws-secret") && shown.contains("Secret(***)"),
            "{shown}"
        );

        // The file beats the AWS variables, IMGSERV_* beats the file.
        let text = format!(
            "{}{s3}access_key = \"file-key\"\nsecret_key = \"file-secret\"\nregion = \"r1\"\n",
            minimal()
        );
        let c = from_str_env(&text, d.path(), &aws).unwrap();
        let StoreConfig::S3 {
            access_key,
            secret_key,
            region,
            ..
        } = &c.store
        else {
            panic!()
        };
        assert_eq!(
            (access_key.as_str(), secret_key.expose(), region.as_str()),
            ("file-key", "file-secret", "r1")
        );
        let mut env = aws.clone();
        env.push(("IMGSERV_STORE_SECRET_KEY".into(), "env-secret".into()));
        let c = from_str_env(&text, d.path(), &env).unwrap();
        let StoreConfig::S3 { secret_key, .. } = &c.store else {
            panic!()
        };
        assert_eq!(secret_key.expose(), "env-secret");

        // Empty values in the file (as in the sample) count as unset; from_str reads no env.
        let text = format!("{}{s3}access_key = \"\"\nsecret_key = \"\"\n", minimal());
        let c = from_str_env(&text, d.path(), &aws).unwrap();
        assert!(
            matches!(&c.store, StoreConfig::S3 { access_key, region, .. } if access_key == "aws-key" && region == "eu-west-3")
        );
        let errs = from_str(&text, d.path()).unwrap_err().to_string();
        assert!(
            errs.contains("store.access_key: required") && errs.contains("AWS_ACCESS_KEY_ID"),
            "{errs}"
        );
        let c = from_str_env(
            &format!("{}{s3}", minimal()),
            d.path(),
            &vars(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap();
        assert!(matches!(&c.store, StoreConfig::S3 { region, .. } if region == "us-east-1"));
    }
}
