//! CPU time of a process (user + system, all its threads) from `/proc/<pid>/stat`: what the
//! server and this load generator spend per call, which a shared machine's wall-clock rates
//! cannot show.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`): 100 on every Linux architecture
/// this runs on (the kernel fixes it for user space whatever its internal `HZ`).
const TICKS_PER_SECOND: u64 = 100;

/// Which process to read.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    /// This load generator.
    Me,
    /// Another process, e.g. the server.
    Pid(u32),
}

/// CPU time consumed so far by `process` (user + system); `None` if it cannot be read (not
/// Linux, or gone).
pub fn used(process: Process) -> Option<Duration> {
    split(process).map(|(user, system)| user + system)
}

/// CPU time consumed so far by `process`, in user space and in the kernel.
pub fn split(process: Process) -> Option<(Duration, Duration)> {
    let path = match process {
        Process::Me => "/proc/self/stat".to_owned(),
        Process::Pid(pid) => format!("/proc/{pid}/stat"),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let (user, system) = parse_stat(&stat)?;
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
    Some((time(user), time(system)))
}

/// utime and stime (fields 14 and 15) of a stat line. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing one.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// CPU time of the load generator and (when its pid is known) the server over one window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    /// Of `server`, the time in the kernel (system calls, networking, fsync).
    pub server_system: Option<Duration>,
}

/// Readings at the start of a window.
pub struct Meter {
    server_pid: Option<u32>,
    client: Option<Duration>,
    server: Option<(Duration, Duration)>,
}

impl Meter {
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            client: used(Process::Me),
            server: server_pid.and_then(|pid| split(Process::Pid(pid))),
        }
    }

    /// CPU time used since [`Meter::start`].
    pub fn stop(&self) -> Usage {
        let now = self.server_pid.and_then(|pid| split(Process::Pid(pid)));
        let server = self.server.zip(now);
        let delta = |before: Duration, after: Duration| after.saturating_sub(before);
        Usage {
            client: self
                .client
                .zip(used(Process::Me))
                .map(|(before, after)| delta(before, after)),
            server: server.map(|((u0, s0), (u1, s1))| delta(u0, u1) + delta(s0, s1)),
            server_system: server.map(|((_, s0), (_, s1))| delta(s0, s1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let line = "4242 (tokio rt) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 269 0 0 20 0 9 0";
        assert_eq!(parse_stat(line), Some((731, 269)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(used(Process::Me).is_some());
    }
}
