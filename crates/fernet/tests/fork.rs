//! A forked child must never repeat its parent's IVs.
//!
//! Runs without the test harness so the process is single-threaded when it
//! forks (forking a multi-threaded process and then allocating is unsound).

// `fork`, `pipe`, `read`, `write` and `waitpid` have no safe std equivalent.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;

use base64::Engine as _;
use secrets_manager_fernet::{Fernet, Key, UnverifiedToken};

const PER_PROCESS: usize = 200;

/// The IV of a token: bytes 9..25 of the decoded token.
fn iv_of(token: &str) -> [u8; 16] {
    assert!(UnverifiedToken::parse(token).is_ok());
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .unwrap();
    raw[9..25].try_into().unwrap()
}

fn ivs(f: &Fernet, n: usize) -> Vec<[u8; 16]> {
    (0..n).map(|_| iv_of(&f.encrypt(b"fork"))).collect()
}

#[cfg(unix)]
fn main() {
    let f = Fernet::new(&Key::generate());
    // Seed this thread's IV generator before forking, so the child inherits
    // it.
    let before = ivs(&f, 1);

    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: this process has one thread (no test harness), so the child
    // may allocate and run ordinary Rust code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let child: Vec<u8> = ivs(&f, PER_PROCESS).concat();
        // SAFETY: writes from a live buffer to the pipe's write end.
        let n = unsafe { libc::write(fds[1], child.as_ptr().cast(), child.len()) };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if n == child.len() as isize { 0 } else { 1 }) };
    }
    let parent = ivs(&f, PER_PROCESS);
    let mut buf = vec![0u8; 16 * PER_PROCESS];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the unfilled tail of a live buffer.
        let n = unsafe { libc::read(fds[0], buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        assert!(n > 0, "child sent {got} bytes");
        got += n as usize;
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);

    let mut seen: HashSet<[u8; 16]> = before.into_iter().chain(parent).collect();
    assert_eq!(seen.len(), PER_PROCESS + 1, "the parent repeated an IV");
    for iv in buf.chunks(16) {
        assert!(
            seen.insert(iv.try_into().unwrap()),
            "the child repeated one of the parent's IVs"
        );
    }
    println!(
        "fork: {} parent and {} child IVs, all distinct",
        PER_PROCESS + 1,
        PER_PROCESS
    );
    println!("1 passed, 0 failed");
}

#[cfg(not(unix))]
fn main() {
    println!("fork: not applicable on this platform");
}
