package coverage

import "syscall"

// oNoatime opens the files the watcher hashes without updating their
// access time: with relatime the first read of every new version would
// dirty its inode, a metadata write on the disk the journal fsyncs, for
// each change the watcher observes. The kernel allows it only to the
// file's owner (or CAP_FOWNER); openForHash falls back without it.
const oNoatime = syscall.O_NOATIME
