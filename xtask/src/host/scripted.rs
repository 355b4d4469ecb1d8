//! A scripted transport for unit tests: every command a task would run on a target is
//! answered by a closure the test writes (exit status, stdout, stderr), and recorded
//! with its standard input, so a task's branches (an unhealthy release, a connection
//! lost mid-way, a failed restore) can be tested without a host or a container.

use std::process::{ExitStatus, Output};
use std::sync::{Arc, Mutex};

use crate::support::command::Cmd;

/// What a scripted command answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn ok(stdout: impl Into<String>) -> Reply {
        Reply { status: 0, stdout: stdout.into(), stderr: String::new() }
    }

    pub fn fail(status: i32, stderr: impl Into<String>) -> Reply {
        Reply { status, stdout: String::new(), stderr: stderr.into() }
    }

    /// What ssh exits with when the connection drops (status 255).
    pub fn connection_lost() -> Reply {
        Reply::fail(255, "Connection to scripted closed by remote host.")
    }
}

/// One command the script was asked to run, with what it was given on stdin.
#[derive(Clone, Debug)]
pub struct Call {
    pub cmd: Cmd,
    pub input: Vec<u8>,
}

type Answer = dyn FnMut(&Cmd, &[u8]) -> Reply + Send;

/// The target, as a test scripts it. Cloning shares the script and the record.
#[derive(Clone)]
pub struct Scripted {
    answer: Arc<Mutex<Box<Answer>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Scripted {
    pub fn new(answer: impl FnMut(&Cmd, &[u8]) -> Reply + Send + 'static) -> Scripted {
        Scripted { answer: Arc::new(Mutex::new(Box::new(answer))), calls: Arc::default() }
    }

    /// Answers `cmd` and records it.
    pub fn run(&self, cmd: &Cmd, input: &[u8]) -> Output {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(Call { cmd: cmd.clone(), input: input.to_vec() });
        let reply = (self.answer.lock().unwrap_or_else(|p| p.into_inner()))(cmd, input);
        Output {
            status: exit_status(reply.status),
            stdout: reply.stdout.into_bytes(),
            stderr: reply.stderr.into_bytes(),
        }
    }

    /// Every command run so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The command lines run so far, as `--dry-run` would print them.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.cmd.to_string()).collect()
    }
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scripted({} calls)", self.calls.lock().map_or(0, |c| c.len()))
    }
}

fn exit_status(code: i32) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw((code & 0xff) << 8)
}
