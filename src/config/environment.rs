//! Where robot fields come from: `${VAR}` from the environment, and values read from
//! `*_file`s (Kubernetes secrets mounted as files).

use super::*;

/// What a `webhook_file`/`secret_file` holds, and its permission bits (`None` where there are
/// none), which decide the "readable by other users" warning.
#[derive(Debug, Clone)]
pub struct SecretFile {
    /// The file's text, untrimmed.
    pub text: String,
    /// `st_mode & 0o777`.
    pub mode: Option<u32>,
}

/// Reads a secret file from disk: the one file the config reads besides itself.
pub fn read_secret_file(path: &Path) -> std::io::Result<SecretFile> {
    let text = std::fs::read_to_string(path)?;
    Ok(SecretFile {
        text,
        mode: file_mode(path),
    })
}

impl Checker<'_> {
    /// A value given inline (`field`) or read from a file (`field_file`, for Kubernetes secrets
    /// mounted as files), `${VAR}`-expanded and trimmed. Both at once is an error. A file that
    /// other users can read gets a warning: it holds a credential.
    pub(super) fn inline_or_file<'r>(
        &mut self,
        name: &str,
        field: &str,
        inline: &'r Option<Spanned<String>>,
        file: &'r Option<Spanned<String>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<(&'r Spanned<String>, String)> {
        let ctx = |f: &str| format!("robot '{name}', field '{f}'");
        match (inline, file) {
            (Some(_), Some(f)) => {
                self.problem(
                    f,
                    ctx(&format!("{field}_file")),
                    format!("give `{field}` or `{field}_file`, not both"),
                );
                None
            }
            (Some(v), None) => match expand_env(&v.value, env) {
                Ok(value) => Some((v, value.trim().to_owned())),
                Err(e) => {
                    self.problem(v, ctx(field), e);
                    None
                }
            },
            (None, Some(f)) => {
                let fctx = ctx(&format!("{field}_file"));
                let path = match expand_env(&f.value, env) {
                    Ok(p) => PathBuf::from(p),
                    Err(e) => {
                        self.problem(f, fctx, e);
                        return None;
                    }
                };
                let path = match (path.is_relative(), Path::new(self.origin).parent()) {
                    (true, Some(dir)) if !self.origin.starts_with('<') => dir.join(path),
                    _ => path,
                };
                match (self.read_file)(&path) {
                    Ok(SecretFile { text: value, mode }) => {
                        if let Some(mode) = mode.filter(|m| m & 0o077 != 0) {
                            self.warnings.push(Problem {
                                file: self.origin.to_owned(),
                                line: f.referenced.line(),
                                column: f.referenced.column(),
                                context: fctx,
                                message: format!(
                                    "{} is readable by other users (mode {mode:o}); chmod 600 it",
                                    shown_path(&f.value, &path, Some(value.trim()))
                                ),
                            });
                        }
                        Some((f, value.trim().to_owned()))
                    }
                    Err(e) => {
                        let shown = shown_path(&f.value, &path, None);
                        self.problem(f, fctx, format!("cannot read {shown}: {e}"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

/// A `webhook_file`/`secret_file` path as an error may show it: only when written without
/// `${VAR}`, when no part of it looks like a credential (see [`shown`]) and it does not hold
/// the value read from the file; otherwise `the file` (the line and column point at it).
pub(super) fn shown_path(raw: &str, path: &Path, value: Option<&str>) -> String {
    let text = path.display().to_string();
    let safe = !raw.contains('$')
        && text.split('/').all(|part| part.is_empty() || shown(part))
        && value.is_none_or(|v| v.is_empty() || !text.contains(v));
    if safe { text } else { "the file".to_owned() }
}

#[cfg(unix)]
pub(super) fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
pub(super) fn file_mode(_: &Path) -> Option<u32> {
    None
}

/// Expands `${VAR}` (and `$$` to a literal `$`). The error names the variable only.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "has `${` without a closing `}`".to_owned())?;
            let name = &body[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}
