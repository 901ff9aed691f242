//! The CLI configuration: OpenWhisk's `~/.wskprops` file and the overrides on top of it.
//!
//! Resolution order, first wins: the global flags `--apihost` / `--auth` (`-u`), then the
//! environment (`WISP_APIHOST`, `WISP_AUTH`), then the `APIHOST=` / `AUTH=` lines of the config
//! file (`$WSK_CONFIG_FILE`, else `~/.wskprops`). An existing OpenWhisk user's file works as is.
//!
//! [`Props`] edits the file line by line, so keys wisp does not know (`NAMESPACE=`, `APIGW_*`,
//! comments) survive a `wisp property set` or a `wisp up`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The config-file key of the API host.
pub const APIHOST: &str = "APIHOST";
/// The config-file key of the `uuid:key` credentials.
pub const AUTH: &str = "AUTH";

/// The config file in use: `$WSK_CONFIG_FILE` if set and non-empty, else `$HOME/.wskprops`.
pub fn config_path() -> PathBuf {
    if let Some(p) = std::env::var_os("WSK_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    home_dir().join(".wskprops")
}

/// `$HOME`, or the current directory when it is unset (a CLI must still work in odd shells).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A `.wskprops`-style file: `KEY=VALUE` lines, `#` comments, blank lines; all kept in order.
#[derive(Clone, Debug, Default)]
pub struct Props {
    path: PathBuf,
    lines: Vec<String>,
}

impl Props {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> anyhow::Result<Props> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read config {}", path.display()));
            }
        };
        Ok(Props {
            path: path.to_path_buf(),
            lines: text.lines().map(str::to_string).collect(),
        })
    }

    /// The file this configuration was read from (and is saved to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `key` (the last assignment wins, as when the file is sourced by a shell).
    pub fn get(&self, key: &str) -> Option<String> {
        self.lines
            .iter()
            .filter_map(|l| parse_line(l))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
            .filter(|v| !v.is_empty())
    }

    /// Sets `key`, replacing its first line in place (and dropping later duplicates) or
    /// appending it.
    pub fn set(&mut self, key: &str, value: &str) {
        let line = format!("{key}={value}");
        let mut placed = false;
        self.lines.retain_mut(|l| {
            if parse_line(l).is_some_and(|(k, _)| k == key) {
                if placed {
                    return false;
                }
                *l = line.clone();
                placed = true;
            }
            true
        });
        if !placed {
            self.lines.push(line);
        }
    }

    /// Removes every line assigning `key`; returns whether there was one.
    pub fn unset(&mut self, key: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| parse_line(l).is_none_or(|(k, _)| k != key));
        before != self.lines.len()
    }

    /// Writes the file atomically (temporary file + rename), readable by its owner only since it
    /// holds a secret.
    pub fn save(&self) -> anyhow::Result<()> {
        let mut text = self.lines.join("\n");
        text.push('\n');
        write_private(&self.path, text.as_bytes())
            .with_context(|| format!("cannot write config {}", self.path.display()))
    }
}

/// Writes `bytes` to `path` atomically with mode 0600, creating the parent directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `KEY=VALUE` (optionally `export KEY=VALUE`, optionally quoted value); `None` for comments,
/// blank lines and anything else.
fn parse_line(line: &str) -> Option<(&str, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((key, value.to_string()))
}

/// Where a setting's value came from, for `wisp property get` and error hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
}

/// The API host and credentials a command talks with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Normalised API host (`scheme://host[:port]`, no trailing slash), if any is configured.
    pub apihost: Option<(String, Source)>,
    /// `uuid:key`, if any is configured.
    pub auth: Option<(String, Source)>,
    /// The config file consulted.
    pub config_file: PathBuf,
}

impl Settings {
    /// Resolves flags over environment over file. `flag_*` are the global flags' values
    /// (`Some("")` means the flag was given without a value, which counts as not given here).
    pub fn resolve(flag_apihost: Option<&str>, flag_auth: Option<&str>) -> anyhow::Result<Self> {
        let config_file = config_path();
        let props = Props::load(&config_file)?;
        let pick = |flag: Option<&str>, env: &str, key: &str| -> Option<(String, Source)> {
            if let Some(v) = flag.filter(|v| !v.is_empty()) {
                return Some((v.to_string(), Source::Flag));
            }
            if let Some(v) = std::env::var(env).ok().filter(|v| !v.is_empty()) {
                return Some((v, Source::Env));
            }
            props.get(key).map(|v| (v, Source::File))
        };
        let apihost = pick(flag_apihost, "WISP_APIHOST", APIHOST)
            .map(|(v, s)| normalize_apihost(&v).map(|v| (v, s)))
            .transpose()?;
        let auth = pick(flag_auth, "WISP_AUTH", AUTH);
        Ok(Settings {
            apihost,
            auth,
            config_file,
        })
    }

    /// The API host, or a clear error saying how to configure one.
    pub fn require_apihost(&self) -> anyhow::Result<&str> {
        match &self.apihost {
            Some((h, _)) => Ok(h),
            None => bail!(
                "no API host configured: start a local platform with `wisp up`, or run \
                 `wisp property set --apihost URL` (config file {})",
                self.config_file.display()
            ),
        }
    }

    /// The `uuid:key` credentials, or a clear error saying how to configure them.
    pub fn require_auth(&self) -> anyhow::Result<&str> {
        match &self.auth {
            Some((a, _)) => Ok(a),
            None => bail!(
                "no auth key configured: start a local platform with `wisp up`, or run \
                 `wisp property set --auth UUID:KEY` (config file {})",
                self.config_file.display()
            ),
        }
    }
}

/// Normalises an API host as `wsk` does: no scheme means `https://`, except for loopback hosts
/// (`127.0.0.1`, `localhost`, `[::1]`) which mean `http://`; trailing slashes are dropped.
pub fn normalize_apihost(raw: &str) -> anyhow::Result<String> {
    let host = raw.trim().trim_end_matches('/');
    if host.is_empty() {
        bail!("the API host is empty");
    }
    let with_scheme = if host.contains("://") {
        host.to_string()
    } else {
        let name = host.split([':', '/']).next().unwrap_or(host);
        let loopback = matches!(name, "127.0.0.1" | "localhost") || host.starts_with("[::1]");
        format!("{}://{host}", if loopback { "http" } else { "https" })
    };
    let url = reqwest::Url::parse(&with_scheme)
        .with_context(|| format!("the API host {raw:?} is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("the API host {raw:?} must use http or https");
    }
    if url.host_str().is_none() {
        bail!("the API host {raw:?} has no host name");
    }
    Ok(with_scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apihost_without_scheme_is_https_except_loopback() {
        assert_eq!(
            normalize_apihost("openwhisk.example.com").unwrap(),
            "https://openwhisk.example.com"
        );
        assert_eq!(
            normalize_apihost("127.0.0.1:3233").unwrap(),
            "http://127.0.0.1:3233"
        );
        assert_eq!(
            normalize_apihost("localhost:3233/").unwrap(),
            "http://localhost:3233"
        );
        assert_eq!(
            normalize_apihost("[::1]:3233").unwrap(),
            "http://[::1]:3233"
        );
        assert_eq!(normalize_apihost("http://h:1").unwrap(), "http://h:1");
        assert!(normalize_apihost("ftp://h").is_err());
        assert!(normalize_apihost("  ").is_err());
    }

    #[test]
    fn props_keep_unknown_lines_and_replace_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wskprops");
        std::fs::write(
            &path,
            "# mine\nNAMESPACE=guest\nAPIHOST=old\nAUTH='a:b'\nAPIHOST=older\n",
        )
        .unwrap();
        let mut props = Props::load(&path).unwrap();
        assert_eq!(props.get(APIHOST).as_deref(), Some("older"));
        assert_eq!(props.get(AUTH).as_deref(), Some("a:b"));
        props.set(APIHOST, "http://127.0.0.1:1");
        props.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# mine\nNAMESPACE=guest\nAPIHOST=http://127.0.0.1:1\nAUTH='a:b'\n"
        );
        let mut props = Props::load(&path).unwrap();
        assert!(props.unset(AUTH));
        assert!(!props.unset(AUTH));
        props.set("NEW", "1");
        props.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "# mine\nNAMESPACE=guest\nAPIHOST=http://127.0.0.1:1\nNEW=1\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let props = Props::load(&dir.path().join("nope")).unwrap();
        assert_eq!(props.get(APIHOST), None);
    }
}
