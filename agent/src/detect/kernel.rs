//! The kernel's own out-of-space messages, matched by their exact printk form.
//!
//! The kernel writes user-chosen words into some messages (an unknown mount option in a user
//! namespace logs `tmpfs: Unknown parameter '<text>'`, with facility 0 and
//! `_TRANSPORT=kernel` like any kernel line), so "the text contains No space left on device"
//! proves nothing. Each form below is anchored at both ends, starts with the file system's
//! printk prefix, and has only kernel-formatted values (device names, numbers, function
//! names) in its variable parts, so no such echo can take its shape. Checked against the
//! format strings of Linux 6.x (fs/ext4/inode.c `mpage_map_and_submit_extent`,
//! fs/ext4/super.c `__ext4_std_error` and `ext4_decode_error`, fs/btrfs/messages.c
//! `__btrfs_handle_fs_error` and `btrfs_decode_error`; -28 is ENOSPC).

use std::sync::LazyLock;

use regex::Regex;

use super::trust;
use crate::journal::Entry;

/// A block device name as the kernel prints it (`sda1`, `dm-0`, `nvme0n1p2`, `loop3`).
const DEV: &str = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}";

/// (form name, regex with a `dev` group).
static FORMS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let forms = [
        // ext4 delayed allocation failing at writeback (the common ENOSPC trace):
        // "EXT4-fs (sda1): Delayed block allocation failed for inode 12 at logical offset 0
        //  with max blocks 2 with error 28"
        (
            "ext4-delalloc-enospc",
            format!(r"^EXT4-fs \((?P<dev>{DEV})\): Delayed block allocation failed for inode [0-9]+ at logical offset [0-9]+ with max blocks [0-9]+ with error 28$"),
        ),
        // ext4_std_error with ENOSPC: "EXT4-fs error (device sda1) in ext4_foo:123: error 28"
        (
            "ext4-std-error-enospc",
            format!(r"^EXT4-fs error \(device (?P<dev>{DEV})\) in [a-z_][a-z0-9_]*:[0-9]+: error 28$"),
        ),
        // btrfs aborting on ENOSPC: "BTRFS: error (device sda1: state A) in
        // __btrfs_free_extent:3090: errno=-28 No space left" (older kernels: no state part).
        (
            "btrfs-error-enospc",
            format!(r"^BTRFS: error \(device (?P<dev>{DEV})(?:: state [A-Za-z]+)?\) in [a-z_][a-z0-9_]*:[0-9]+: errno=-28 No space left$"),
        ),
    ];
    forms
        .into_iter()
        .map(|(name, re)| (name, Regex::new(&re).unwrap_or_else(|e| panic!("kernel form {name}: {e}"))))
        .collect()
});

/// A kernel out-of-space message: which form matched and the device it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNoSpace {
    /// The form's name (recorded as `details.kernel_form`).
    pub form: &'static str,
    /// The block device, as printed (`sda1`, `dm-0`).
    pub device: String,
}

/// `Some` when `e` was written by the kernel itself ([`trust::is_kernel`]) and its whole
/// message is one of the out-of-space forms above.
pub fn no_space(e: &Entry) -> Option<KernelNoSpace> {
    if !trust::is_kernel(e) {
        return None;
    }
    let msg = e.get_str("MESSAGE")?;
    FORMS.iter().find_map(|(form, re)| {
        let c = re.captures(msg)?;
        Some(KernelNoSpace { form, device: c.name("dev")?.as_str().to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(msg: &str) -> Entry {
        Entry::from_fields([("_TRANSPORT", &b"kernel"[..]), ("SYSLOG_FACILITY", b"0"), ("MESSAGE", msg.as_bytes())])
    }

    #[test]
    fn exact_forms_match_and_echoes_do_not() {
        let m = no_space(&kernel("EXT4-fs (dm-1): Delayed block allocation failed for inode 131 at logical offset 0 with max blocks 2 with error 28")).unwrap();
        assert_eq!((m.form, m.device.as_str()), ("ext4-delalloc-enospc", "dm-1"));
        assert!(no_space(&kernel("BTRFS: error (device sda2: state A) in __btrfs_free_extent:3090: errno=-28 No space left")).is_some());
        assert!(no_space(&kernel("BTRFS: error (device sda2) in btrfs_run_delayed_refs:2150: errno=-28 No space left")).is_some());
        assert!(no_space(&kernel("EXT4-fs error (device vda) in ext4_reserve_inode_write:5784: error 28")).is_some());
        // Other errors, echoes of user text, and injected (facility 1) records do not.
        assert!(no_space(&kernel("EXT4-fs (dm-1): Delayed block allocation failed for inode 131 at logical offset 0 with max blocks 2 with error 5")).is_none());
        assert!(no_space(&kernel("tmpfs: Unknown parameter 'No space left on device'")).is_none());
        assert!(no_space(&kernel("tmpfs: Unknown parameter 'EXT4-fs (sda): Delayed block allocation failed for inode 1 at logical offset 0 with max blocks 1 with error 28'")).is_none());
        let injected = Entry::from_fields([
            ("_TRANSPORT", &b"kernel"[..]), ("SYSLOG_FACILITY", b"1"),
            ("MESSAGE", b"EXT4-fs (sda): Delayed block allocation failed for inode 1 at logical offset 0 with max blocks 1 with error 28"),
        ]);
        assert!(no_space(&injected).is_none());
    }
}
