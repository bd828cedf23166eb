//! Zed starts the language servers its extensions declare: this one declares
//! slotguard's and starts `slotguard server` from the project's `PATH`.

use zed_extension_api::{self as zed, LanguageServerId, Result, Worktree};

struct Slotguard;

impl zed::Extension for Slotguard {
    fn new() -> Self {
        Slotguard
    }

    fn language_server_command(
        &mut self,
        _language_server_id: &LanguageServerId,
        worktree: &Worktree,
    ) -> Result<zed::Command> {
        let command = worktree.which("slotguard").ok_or_else(|| {
            "`slotguard` is not on the project's PATH: pip install 'slotguard[server]'".to_string()
        })?;
        Ok(zed::Command {
            command,
            args: vec!["server".to_string()],
            env: worktree.shell_env(),
        })
    }
}

zed::register_extension!(Slotguard);
