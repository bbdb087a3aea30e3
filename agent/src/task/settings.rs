//! Settings files: `permissions:` and `hooks:` kept outside task files, for every run of a
//! user (`$AGENT_HOME/settings.yaml`) or of a project (`.agent/settings.yaml` in the folder
//! the agent runs in). A task's own keys come last: its `default` wins, and rule lists and
//! hooks from all three add up (so a deny in any of them holds).

use std::path::{Path, PathBuf};

use agent_tools::permissions::{Mode, Permissions, Rule};

#[cfg(test)]
use super::Task;
use super::{FrontMatter, TaskError, parse_settings};

/// The user's settings file: `$AGENT_HOME/settings.yaml`.
pub fn user_settings() -> PathBuf {
    crate::models::agent_home().join("settings.yaml")
}

/// The project's settings file under `dir`: `.agent/settings.yaml`.
pub fn project_settings(dir: &Path) -> PathBuf {
    dir.join(".agent").join("settings.yaml")
}

/// The settings in `path` (`None` when there is no such file), checked as a task file's
/// keys are, errors naming the file and line.
///
/// # Errors
/// A file that cannot be read, is not YAML, or holds keys other than `permissions` and
/// `hooks` or bad values.
pub fn read_settings(path: &Path) -> Result<Option<FrontMatter>, TaskError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TaskError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let front = parse_settings(path, &text)?;
    let only = FrontMatter {
        permissions: front.permissions.clone(),
        hooks: front.hooks.clone(),
        ..FrontMatter::default()
    };
    if only != front {
        return Err(TaskError::Invalid {
            path: path.to_owned(),
            line: None,
            key: None,
            message: "a settings file holds `permissions` and `hooks` only".into(),
        });
    }
    Ok(Some(front))
}

/// `front` over the user's and then the project's (in `dir`) settings, with `default: ask`
/// when none of them sets a default: what a person runs asks before calls no rule decides
/// (a program's own runs let them through unless told otherwise).
///
/// # Errors
/// As [`read_settings`], for either file.
pub fn with_settings(front: FrontMatter, dir: &Path) -> Result<FrontMatter, TaskError> {
    layered(front, &user_settings(), &project_settings(dir))
}

fn layered(front: FrontMatter, user: &Path, project: &Path) -> Result<FrontMatter, TaskError> {
    let user = read_settings(user)?.unwrap_or_default();
    let project = read_settings(project)?.unwrap_or_default();
    let mut all = user.overlay(project).overlay(front);
    all.permissions
        .get_or_insert_with(Permissions::default)
        .default
        .get_or_insert(Mode::Ask);
    Ok(all)
}

/// Adds `rule` to the `permissions.allow` list of the settings file at `path` (made when
/// missing), for "always allow" answers. The file is rewritten as YAML: comments in it are
/// not kept.
///
/// # Errors
/// The file cannot be read, parsed or written.
pub fn remember_allow(path: &Path, rule: &Rule) -> Result<(), String> {
    let shown = path.display();
    let mut front = read_settings(path)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let perms = front.permissions.get_or_insert_with(Permissions::default);
    if !perms.allow.contains(rule) {
        perms.allow.push(rule.clone());
    }
    let yaml =
        serde_yaml_ng::to_string(&front).map_err(|e| format!("{shown}: cannot write: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{shown}: cannot write: {e}"))?;
    }
    std::fs::write(path, yaml).map_err(|e| format!("{shown}: cannot write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layers_and_remembered_rules() {
        let dir = std::env::temp_dir().join(format!("agent-settings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (user, project) = (dir.join("user.yaml"), project_settings(&dir));
        std::fs::write(
            &user,
            "permissions:\n  allow: [fs__read_*]\n  default: allow\nhooks:\n  stop: [./u.sh]\n",
        )
        .unwrap();
        // No project file yet: "always" makes it.
        remember_allow(&project, &"fs__write_file".parse().unwrap()).unwrap();
        remember_allow(&project, &"fs__write_file".parse().unwrap()).unwrap();
        let task = Task::parse(
            Path::new("t.md"),
            "---\npermissions:\n  deny: [fs__write_file]\n  default: deny\nhooks:\n  stop: [./t.sh]\n---\nGo.\n",
        )
        .unwrap();
        let front = layered(task.front, &user, &project).unwrap();
        assert_eq!(
            serde_json::to_value((&front.permissions, &front.hooks)).unwrap(),
            json!([
                {"allow": ["fs__read_*", "fs__write_file"], "deny": ["fs__write_file"], "default": "deny"},
                {"stop": [{"command": "./u.sh"}, {"command": "./t.sh"}]}
            ])
        );
        // A settings file holds permissions and hooks only, and errors name it.
        std::fs::write(&user, "max_steps: 3\n").unwrap();
        assert_eq!(
            read_settings(&user).unwrap_err().to_string(),
            format!(
                "{}: a settings file holds `permissions` and `hooks` only",
                user.display()
            )
        );
        std::fs::write(&user, "permissions:\n  deny: [\"x(\"]\n").unwrap();
        assert_eq!(
            read_settings(&user).unwrap_err().to_string(),
            format!(
                "{}:2: permissions.deny[0]: rule \"x(\": the conditions' `(` is not closed",
                user.display()
            )
        );
        assert_eq!(read_settings(&dir.join("none.yaml")).unwrap(), None);
        // Nothing sets a default: a person's run asks.
        let none = dir.join("none.yaml");
        let front = layered(FrontMatter::default(), &none, &none).unwrap();
        assert_eq!(
            serde_json::to_value(&front.permissions).unwrap(),
            json!({"default": "ask"})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
