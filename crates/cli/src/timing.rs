//! Where a user's run spends its time: wall and CPU time (of the thread running the user)
//! per phase, logged as one `timing:` line in the user's log. A batch of a thousand small
//! users is dominated by these fixed costs, so they are what to look at first.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

/// Phases measured one after the other.
#[derive(Debug)]
pub(crate) struct PhaseTimer {
    wall: Instant,
    cpu: Duration,
    phases: Vec<(&'static str, Duration, Duration)>,
}

impl PhaseTimer {
    /// Starts the first phase now.
    pub(crate) fn start() -> PhaseTimer {
        PhaseTimer { wall: Instant::now(), cpu: thread_cpu(), phases: Vec::new() }
    }

    /// Ends the running phase as `name` (one word: the line is parsed by benchmarks) and
    /// starts the next.
    pub(crate) fn lap(&mut self, name: &'static str) {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        self.phases.push((name, wall - self.wall, cpu.saturating_sub(self.cpu)));
        self.wall = wall;
        self.cpu = cpu;
    }

    /// `timing: destination 0.31 ms (cpu 0.20), source 2.10 ms (cpu 0.90), …`.
    pub(crate) fn line(&self) -> String {
        let mut line = String::from("timing:");
        for (index, (name, wall, cpu)) in self.phases.iter().enumerate() {
            let separator = if index == 0 { " " } else { ", " };
            let _ = write!(
                line,
                "{separator}{name} {:.2} ms (cpu {:.2})",
                wall.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3
            );
        }
        line
    }
}

/// CPU time (user + system) of the calling thread so far; zero where it cannot be read.
fn thread_cpu() -> Duration {
    let Ok(usage) = getrusage(UsageWho::RUSAGE_THREAD) else { return Duration::ZERO };
    let time = |t: nix::sys::time::TimeVal| {
        Duration::new(
            u64::try_from(t.tv_sec()).unwrap_or(0),
            u32::try_from(t.tv_usec()).unwrap_or(0).saturating_mul(1000),
        )
    };
    time(usage.user_time()) + time(usage.system_time())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_named_in_order_with_their_cpu() {
        let mut timer = PhaseTimer::start();
        // Spin until the thread has had 20 ms of CPU (a loaded machine gives it slowly).
        let (spin, cpu) = (Instant::now(), thread_cpu());
        let mut x = 0u64;
        while thread_cpu().saturating_sub(cpu) < Duration::from_millis(20)
            && spin.elapsed() < Duration::from_secs(20)
        {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        timer.lap("busy");
        std::thread::sleep(Duration::from_millis(30));
        timer.lap("idle");
        let line = timer.line();
        assert!(line.starts_with("timing: busy "), "{line}");
        assert!(line.contains(", idle "), "{line}");
        let busy_cpu = timer.phases[0].2;
        let (idle_wall, idle_cpu) = (timer.phases[1].1, timer.phases[1].2);
        assert!(idle_wall >= Duration::from_millis(30), "{line}");
        assert!(busy_cpu >= Duration::from_millis(20), "spinning costs CPU: {line}");
        assert!(idle_cpu < Duration::from_millis(10), "sleeping does not: {line}");
    }
}
