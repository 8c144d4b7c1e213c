//! Where the client finds the server's address and the admin token.
//!
//! Three layers, the first that gives a setting wins: flags (`--server`, `--token`,
//! `--token-file`), the environment (`OCO_SERVER`, `OCO_TOKEN`, `OCO_TOKEN_FILE`), and the
//! config file (`--config`, `OCO_CONFIG`, else [`default_path`]), a TOML file with the keys
//! `server`, `token` and `token-file`. The token and a token file are one setting: a layer that
//! gives either decides the token, and a layer that gives both is a mistake.
//!
//! [`resolve`] combines layers that were already read and does no I/O, so the precedence is a
//! pure function (tested for every combination); [`load`] reads the environment and the files.
//!
//! A file holding a token (the config file with a `token`, or a token file) that others may
//! read or write is refused on Unix, as ssh refuses such a private key: the token would be
//! readable by every user of the machine. `chmod 600` makes it private.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings one layer gives; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    /// The server's address, e.g. `http://127.0.0.1:8080`.
    pub server: Option<String>,
    /// The admin token itself.
    pub token: Option<String>,
    /// A file whose content (trimmed) is the admin token.
    pub token_file: Option<PathBuf>,
}

/// Which layer a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env,
    /// The config file at this path.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("the command line"),
            Origin::Env => f.write_str("the environment"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Where the token is to be taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The token, given directly.
    Value(String),
    /// A file holding it.
    File(PathBuf),
}

/// The settings [`resolve`] chose, each with the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The server's address, as given (not yet checked).
    pub server: (String, Origin),
    /// The token, or the file holding it.
    pub token: (TokenSource, Origin),
}

/// What [`load`] found: the server's address and the token, each with where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The server's address, as given.
    pub server: String,
    /// Where it came from.
    pub server_origin: Origin,
    /// The admin token.
    pub token: String,
    /// Where it came from (for a token file: the layer that named the file).
    pub token_origin: Origin,
}

impl fmt::Debug for Settings {
    /// Everything but the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("server_origin", &self.server_origin)
            .field("token", &"***")
            .field("token_origin", &self.token_origin)
            .finish()
    }
}

/// The config file: TOML with these keys, all optional; any other key is a mistake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// The server's address.
    pub server: Option<String>,
    /// The admin token (the file must then be private to its owner).
    pub token: Option<String>,
    /// A file holding the admin token; relative to the config file's directory.
    pub token_file: Option<PathBuf>,
}

/// The config file to read: its path, and whether it was named (`--config`, `OCO_CONFIG`) and so
/// must exist, rather than being the default, which may be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    /// The path.
    pub path: PathBuf,
    /// Named by a flag or the environment.
    pub named: bool,
}

/// A setting the client could not find or use.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No layer gives the server's address.
    #[error(
        "no server address: give --server URL, set OCO_SERVER, or put `server = \"URL\"` in {}",
        config_hint(.config)
    )]
    NoServer {
        /// The config file that was looked at.
        config: Option<ConfigPath>,
    },
    /// No layer gives the token.
    #[error(
        "no admin token: give --token or --token-file, set OCO_TOKEN or OCO_TOKEN_FILE, or put \
         `token` or `token-file` in {}",
        config_hint(.config)
    )]
    NoToken {
        /// The config file that was looked at.
        config: Option<ConfigPath>,
    },
    /// One layer gives both a token and a token file.
    #[error("{origin} gives both a token and a token file; give one")]
    TokenTwice {
        /// Which layer.
        origin: Origin,
    },
    /// A named config file is missing, or a file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML with the known keys.
    #[error("{} is not a valid config file: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with the line and column.
        message: String,
    },
    /// A file holding the token is readable or writable by others.
    #[error(
        "{} holds the admin token but others may access it (mode {mode:04o}); make it private \
         with `chmod 600 {}`",
        .path.display(),
        .path.display()
    )]
    NotPrivate {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token file is empty.
    #[error("the token file {} is empty", .path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
}

/// Combines the layers: for each setting the flags' value, else the environment's, else the
/// file's. `config` is the file that was looked at, for the error messages.
///
/// # Errors
///
/// [`ConfigError::NoServer`] or [`ConfigError::NoToken`] when no layer gives one;
/// [`ConfigError::TokenTwice`] when the deciding layer gives both a token and a token file.
///
/// # Examples
///
/// ```
/// use oco_cli::config::{resolve, Layer, Origin, TokenSource};
///
/// let flags = Layer { server: Some("http://flag:8080".into()), ..Layer::default() };
/// let env = Layer { token: Some("from-env".into()), ..Layer::default() };
/// let file = Layer { server: Some("http://file:8080".into()), token: Some("from-file".into()),
///     token_file: None };
/// let resolved = resolve(&flags, &env, Some((&file, "/home/me/.config/oco/config.toml".as_ref())), None)?;
/// assert_eq!(resolved.server, ("http://flag:8080".to_owned(), Origin::Flag));
/// assert_eq!(resolved.token, (TokenSource::Value("from-env".into()), Origin::Env));
/// # Ok::<(), oco_cli::config::ConfigError>(())
/// ```
pub fn resolve(
    flags: &Layer,
    env: &Layer,
    file: Option<(&Layer, &Path)>,
    config: Option<&ConfigPath>,
) -> Result<Resolved, ConfigError> {
    let mut layers = vec![(flags, Origin::Flag), (env, Origin::Env)];
    if let Some((layer, path)) = file {
        layers.push((layer, Origin::File(path.to_owned())));
    }
    let server = layers
        .iter()
        .find_map(|(layer, origin)| Some((layer.server.clone()?, origin.clone())))
        .ok_or_else(|| ConfigError::NoServer {
            config: config.cloned(),
        })?;
    let mut token = None;
    for (layer, origin) in &layers {
        match (&layer.token, &layer.token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::TokenTwice {
                    origin: origin.clone(),
                })
            }
            (Some(value), None) => {
                token = Some((TokenSource::Value(value.clone()), origin.clone()))
            }
            (None, Some(path)) => token = Some((TokenSource::File(path.clone()), origin.clone())),
            (None, None) => continue,
        }
        break;
    }
    let token = token.ok_or_else(|| ConfigError::NoToken {
        config: config.cloned(),
    })?;
    Ok(Resolved { server, token })
}

/// The default config file: `$XDG_CONFIG_HOME/oco/config.toml`, else
/// `$HOME/.config/oco/config.toml` (on Windows `%APPDATA%\oco\config.toml`); `None` when the
/// variables it needs are unset. `env` reads a variable.
pub fn default_path(env: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| {
        env(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    let base = if cfg!(windows) {
        set("APPDATA")
    } else {
        set("XDG_CONFIG_HOME")
            .filter(|path| path.is_absolute())
            .or_else(|| set("HOME").map(|home| home.join(".config")))
    };
    base.map(|base| base.join("oco").join("config.toml"))
}

/// The environment's layer: `OCO_SERVER`, `OCO_TOKEN`, `OCO_TOKEN_FILE`; an empty variable counts
/// as unset.
pub fn env_layer(env: &dyn Fn(&str) -> Option<OsString>) -> Layer {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    Layer {
        server: set("OCO_SERVER").map(|value| value.to_string_lossy().into_owned()),
        token: set("OCO_TOKEN").map(|value| value.to_string_lossy().into_owned()),
        token_file: set("OCO_TOKEN_FILE").map(PathBuf::from),
    }
}

/// Reads the settings: the environment through `env`, the config file (`config_flag`, else
/// `OCO_CONFIG`, else [`default_path`]), and the token file if the chosen layer names one.
///
/// # Errors
///
/// As [`resolve`]; [`ConfigError::Read`] for a named config file that is missing or any file
/// that cannot be read, [`ConfigError::Parse`] for a bad config file,
/// [`ConfigError::NotPrivate`] for a file holding the token that others may access (Unix),
/// [`ConfigError::EmptyToken`].
pub fn load(
    flags: &Layer,
    config_flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Settings, ConfigError> {
    let config = match config_flag {
        Some(path) => Some(ConfigPath {
            path: path.to_owned(),
            named: true,
        }),
        None => match env("OCO_CONFIG").filter(|value| !value.is_empty()) {
            Some(path) => Some(ConfigPath {
                path: PathBuf::from(path),
                named: true,
            }),
            None => default_path(env).map(|path| ConfigPath { path, named: false }),
        },
    };
    let file = match &config {
        Some(config) => read_config(config)?,
        None => None,
    };
    let file_layer = file.as_ref().map(|(file, path)| {
        let base = path.parent().unwrap_or(Path::new("."));
        Layer {
            server: file.server.clone(),
            token: file.token.clone(),
            token_file: file.token_file.as_ref().map(|relative| base.join(relative)),
        }
    });
    let resolved = resolve(
        flags,
        &env_layer(env),
        file_layer
            .as_ref()
            .zip(file.as_ref())
            .map(|(layer, (_, path))| (layer, path.as_path())),
        config.as_ref(),
    )?;
    let (source, token_origin) = resolved.token;
    let token = match source {
        TokenSource::Value(token) => token,
        TokenSource::File(path) => read_token_file(&path)?,
    };
    let (server, server_origin) = resolved.server;
    Ok(Settings {
        server,
        server_origin,
        token,
        token_origin,
    })
}

/// The config file at `config`, parsed, with its path; `None` for a default path that does not
/// exist.
fn read_config(config: &ConfigPath) -> Result<Option<(ConfigFile, PathBuf)>, ConfigError> {
    let text = match std::fs::read_to_string(&config.path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !config.named => {
            return Ok(None)
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: config.path.clone(),
                source,
            })
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: config.path.clone(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    if file.token.is_some() {
        check_private(&config.path)?;
    }
    Ok(Some((file, config.path.clone())))
}

/// Where a missing setting could be put in a file, for the error message.
fn config_hint(config: &Option<ConfigPath>) -> String {
    match config {
        Some(config) if config.path.exists() => {
            format!("the config file {}", config.path.display())
        }
        Some(config) => format!("the config file {} (not found)", config.path.display()),
        None => "a config file given with --config (no default: neither XDG_CONFIG_HOME nor HOME \
                 is set)"
            .to_owned(),
    }
}

/// The token in the file at `path`, without surrounding white space.
fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::EmptyToken {
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

/// Refuses a regular file that its group or others may read or write (Unix only; a pipe such
/// as `<(pass show oco)` is not checked).
fn check_private(path: &Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o7777;
        if metadata.is_file() && mode & 0o077 != 0 {
            return Err(ConfigError::NotPrivate {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layer(server: Option<&str>, token: Option<&str>, token_file: Option<&str>) -> Layer {
        Layer {
            server: server.map(str::to_owned),
            token: token.map(str::to_owned),
            token_file: token_file.map(PathBuf::from),
        }
    }

    #[test]
    fn flags_win_over_env_and_env_over_the_file() {
        let file = layer(Some("http://file"), Some("file-token"), None);
        let path = Path::new("/c/config.toml");
        let resolved = resolve(
            &layer(Some("http://flag"), None, None),
            &layer(Some("http://env"), Some("env-token"), None),
            Some((&file, path)),
            None,
        )
        .unwrap();
        assert_eq!(resolved.server, ("http://flag".into(), Origin::Flag));
        assert_eq!(
            resolved.token,
            (TokenSource::Value("env-token".into()), Origin::Env)
        );
        let resolved = resolve(
            &Layer::default(),
            &Layer::default(),
            Some((&file, path)),
            None,
        )
        .unwrap();
        assert_eq!(
            resolved.server,
            ("http://file".into(), Origin::File(path.to_owned()))
        );
    }

    #[test]
    fn a_token_file_of_a_higher_layer_beats_a_token_below_it() {
        let resolved = resolve(
            &layer(None, None, Some("/run/token")),
            &layer(Some("http://env"), Some("env-token"), None),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            resolved.token,
            (TokenSource::File("/run/token".into()), Origin::Flag)
        );
    }

    #[test]
    fn a_layer_with_a_token_and_a_token_file_is_refused() {
        let error = resolve(
            &Layer::default(),
            &layer(Some("http://env"), Some("t"), Some("/f")),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the environment gives both a token and a token file; give one"
        );
    }

    #[test]
    fn missing_settings_name_every_place_looked_at() {
        let config = ConfigPath {
            path: "/nowhere/oco/config.toml".into(),
            named: false,
        };
        let error = resolve(&Layer::default(), &Layer::default(), None, Some(&config)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no server address: give --server URL, set OCO_SERVER, or put `server = \"URL\"` in \
             the config file /nowhere/oco/config.toml (not found)"
        );
        let error = resolve(
            &layer(Some("http://s"), None, None),
            &Layer::default(),
            None,
            Some(&config),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no admin token: give --token or --token-file, set OCO_TOKEN or OCO_TOKEN_FILE, or \
             put `token` or `token-file` in the config file /nowhere/oco/config.toml (not found)"
        );
    }

    #[test]
    fn the_default_path_follows_xdg_then_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| OsString::from(value))
            }
        };
        if cfg!(windows) {
            return;
        }
        assert_eq!(
            default_path(&env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/oco/config.toml"))
        );
        // A relative XDG_CONFIG_HOME is to be ignored, as the specification says.
        assert_eq!(
            default_path(&env(&[("XDG_CONFIG_HOME", "x"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/oco/config.toml"))
        );
        assert_eq!(default_path(&env(&[("XDG_CONFIG_HOME", "")])), None);
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let layer = env_layer(&|name: &str| {
            (name == "OCO_SERVER" || name == "OCO_TOKEN").then(OsString::new)
        });
        assert_eq!(layer, Layer::default());
    }

    fn arbitrary_layer() -> impl Strategy<Value = Layer> {
        (
            proptest::option::of("[a-z]{1,4}"),
            proptest::option::of("[a-z]{1,4}"),
            proptest::option::of("[a-z]{1,4}"),
        )
            .prop_map(|(server, token, token_file)| Layer {
                server,
                token,
                token_file: token_file.map(PathBuf::from),
            })
    }

    proptest! {
        /// For all layers: each setting comes from the first layer that gives it, and a
        /// deciding layer with both a token and a token file is refused.
        #[test]
        fn the_first_layer_that_gives_a_setting_decides_it(
            flags in arbitrary_layer(),
            env in arbitrary_layer(),
            file in proptest::option::of(arbitrary_layer()),
        ) {
            let path = Path::new("/c.toml");
            let result = resolve(&flags, &env, file.as_ref().map(|f| (f, path)), None);
            let mut layers = vec![(&flags, Origin::Flag), (&env, Origin::Env)];
            if let Some(file) = &file {
                layers.push((file, Origin::File(path.to_owned())));
            }
            let server = layers.iter().find_map(|(l, o)| Some((l.server.clone()?, o.clone())));
            let deciding = layers
                .iter()
                .find(|(l, _)| l.token.is_some() || l.token_file.is_some());
            match (server, deciding) {
                (None, _) => {
                    let refused = matches!(result, Err(ConfigError::NoServer { .. }));
                    prop_assert!(refused, "{:?}", result);
                }
                (Some(_), None) => {
                    let refused = matches!(result, Err(ConfigError::NoToken { .. }));
                    prop_assert!(refused, "{:?}", result);
                }
                (Some(_), Some((l, o))) if l.token.is_some() && l.token_file.is_some() => {
                    let refused =
                        matches!(&result, Err(ConfigError::TokenTwice { origin }) if origin == o);
                    prop_assert!(refused, "{:?}", result);
                }
                (Some(server), Some((l, o))) => {
                    let resolved = result.unwrap();
                    prop_assert_eq!(resolved.server, server);
                    let source = match (&l.token, &l.token_file) {
                        (Some(token), _) => TokenSource::Value(token.clone()),
                        (None, Some(path)) => TokenSource::File(path.clone()),
                        (None, None) => unreachable!("the deciding layer gives one"),
                    };
                    prop_assert_eq!(resolved.token, (source, o.clone()));
                }
            }
        }
    }
}
