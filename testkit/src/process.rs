//! Child processes whose output a test reads line by line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A child process with its output read line by line. Dropping it kills the
/// child (by its own pid) if it still runs.
pub struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout_rx: Receiver<String>,
    stderr_rx: Receiver<String>,
    readers: Vec<thread::JoinHandle<()>>,
}

fn read_lines(
    source: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    forward: Option<std::sync::mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line.clone());
            if let Some(tx) = &forward {
                let _ = tx.send(line);
            }
        }
    })
}

impl Running {
    /// Starts `cmd` with stdin closed.
    pub fn spawn(cmd: Command) -> Result<Running> {
        Self::start(cmd, false)
    }

    /// Starts `cmd` with a pipe to its stdin (see [`Running::write_stdin`]).
    pub fn spawn_with_stdin(cmd: Command) -> Result<Running> {
        Self::start(cmd, true)
    }

    fn start(mut cmd: Command, stdin: bool) -> Result<Running> {
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (out_tx, stdout_rx) = channel();
        let (err_tx, stderr_rx) = channel();
        let readers = vec![
            read_lines(child.stdout.take().unwrap(), stdout.clone(), Some(out_tx)),
            read_lines(child.stderr.take().unwrap(), stderr.clone(), Some(err_tx)),
        ];
        Ok(Running {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            stdout_rx,
            stderr_rx,
            readers,
        })
    }

    /// Writes `text` to the child's stdin (started with `spawn_with_stdin`).
    pub fn write_stdin(&mut self, text: &str) -> Result<()> {
        use std::io::Write;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("started without a stdin pipe"))?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits until a line of stdout contains `needle`; returns that line.
    pub fn wait_for_stdout(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        wait_for_line(&self.stdout_rx, &self.stdout, needle, timeout, "stdout")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line of stderr contains `needle`; returns that line.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        wait_for_line(&self.stderr_rx, &self.stderr, needle, timeout, "stderr")
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: kill() on the pid of a child we started and have not reaped.
        if unsafe { libc::kill(self.child.id() as i32, signal) } != 0 {
            return Err(std::io::Error::last_os_error()).context("kill");
        }
        Ok(())
    }

    /// Waits for the child to exit (killing it after `timeout`) and returns
    /// its status and all of its stdout and stderr lines.
    pub fn finish(mut self, timeout: Duration) -> Result<(ExitStatus, Vec<String>, Vec<String>)> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(anyhow!("the process did not exit within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        Ok((status, out, err))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for_line(
    rx: &Receiver<String>,
    seen: &Mutex<Vec<String>>,
    needle: &str,
    timeout: Duration,
    stream: &str,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => bail!(
                "no {stream} line with {needle:?} within {timeout:?}; {stream} so far: {:?}",
                seen.lock().unwrap()
            ),
            Err(RecvTimeoutError::Disconnected) => bail!(
                "the process closed {stream} before printing {needle:?}; {stream}: {:?}",
                seen.lock().unwrap()
            ),
        }
    }
}
