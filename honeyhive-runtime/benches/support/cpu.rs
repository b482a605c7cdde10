//! CPU time of the process and of the calling thread (Linux, through libc).
//!
//! Shared by several benches (`#[path = "support/cpu.rs"] mod cpu;`); each uses a part.
#![allow(dead_code)]

use std::time::Duration;

/// User plus system CPU time of the whole process so far (`getrusage(RUSAGE_SELF)`): every
/// thread, live or ended.
pub(crate) fn process() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right type; getrusage only writes it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_SELF) failed");
    // SAFETY: getrusage succeeded, so it filled the struct (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time of the calling thread so far (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`): user and
/// system time, not the time it waited or was preempted.
pub(crate) fn thread() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
}

/// CPU time of each live thread of this process, by name (`/proc/self/task/*/schedstat`, else
/// `stat`, Linux),
/// busiest first; for diagnostics.
pub(crate) fn threads() -> Vec<(String, Duration)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    let ticks = u64::try_from(ticks).unwrap_or(100);
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After comm: state is field 3, utime 14 and stime 15 (1-based over the whole line).
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // `schedstat` has the time on the CPU in nanoseconds; `stat` only in clock ticks.
        let on_cpu = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        let t = match on_cpu {
            Some(ns) => Duration::from_nanos(ns),
            None => Duration::from_millis((tick(11) + tick(12)) * 1000 / ticks),
        };
        out.push((name, t));
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.1));
    out
}
