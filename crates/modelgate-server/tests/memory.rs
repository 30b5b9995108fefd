//! The server's allocator asks the kernel for no transparent huge pages.
//! mimalloc advises them on its regions by default; the kernel then keeps
//! each 2 MiB region it touched resident whole, which made the gateway's
//! RSS at 1,000 streams 40 MB larger, at no measured gain in CPU
//! (BENCHMARKS.md). Linux: read from the process's `smaps`.

mod common;

#[test]
fn no_memory_of_the_server_is_advised_into_huge_pages() {
    let dir = std::env::temp_dir().join(format!("mg-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cmd = common::command(&dir.join("db.sqlite"), "memory-test-admin-key-0123456789");
    let (server, _) = common::start(cmd);
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", server.0.id())).unwrap();
    let flags: Vec<&str> = smaps
        .lines()
        .filter(|l| l.starts_with("VmFlags:"))
        .collect();
    assert!(!flags.is_empty(), "no mappings read");
    let advised = flags
        .iter()
        .filter(|l| l.split_whitespace().any(|f| f == "hg"))
        .count();
    assert_eq!(
        advised, 0,
        "mappings advised into huge pages (MADV_HUGEPAGE)"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
