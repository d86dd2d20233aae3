package host

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// FSName names dir's file system from its statfs magic number.
func FSName(dir string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", err
	}
	switch uint64(st.Type) {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4", nil
	case unix.XFS_SUPER_MAGIC:
		return "xfs", nil
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs", nil
	case unix.TMPFS_MAGIC:
		return "tmpfs", nil
	case unix.RAMFS_MAGIC:
		return "ramfs", nil
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs", nil
	case unix.F2FS_SUPER_MAGIC:
		return "f2fs", nil
	case unix.NFS_SUPER_MAGIC:
		return "nfs", nil
	}
	return "0x" + strconv.FormatUint(uint64(st.Type), 16), nil
}

// Settle commits dir's file system (syncfs): the previous run's dirty pages
// and the discards its deleted files queued (ext4 mounted with -o discard
// trims at journal commit) are done before the next run starts, instead of
// stalling its fsyncs.
func Settle(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
