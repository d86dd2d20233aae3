// Package coverage is the coverage proof of the State Engine (SPEC
// sections 4 and 10): it watches the storage of every file- and
// dir-backed surface, matches each change it sees to a journal record, and
// keeps per surface the evidence that says whether the surface's file
// watcher can be retired. It sits beside the server and imports engine;
// engine never imports it.
//
// # What is watched
//
// Every surface whose journal mode is not disabled and whose storage is a
// file or a directory: fallback, dual and proven alike (fallback to
// gather evidence before a surface is moved on, dual to build the proof,
// proven to catch a regression). A file-backed surface is watched through
// its parent directory, because a watch on the file itself is lost at the
// first atomic rename over it; a dir-backed surface through its directory
// (its entries, one level deep). Disabled surfaces reject records, so
// every change would be a miss: they are not observed; neither are memory
// and db storage.
//
// # From events to changes
//
// Events are settled per path: a path is fingerprinted once no event came
// for SettleIdle, or SettleCap after its first event, whichever is first.
// The fingerprint is size, mtime and the SHA-256 of the content; a path
// whose hash did not change (a touch, a rewrite of the same bytes) is no
// change. Temp files of writers and editors are ignored by name (Ignored).
//
// # Matching
//
// A change at time t (the file's mtime; the event time for a deletion)
// matches one record of its surface, or of a record listing the surface
// in changed_surfaces, committed in [t-Window, t+Window]: the record may
// precede the write or follow it. A record whose metadata "fingerprint"
// holds a fingerprint matches only the change with that content (an exact
// match, decided at once). Any other change is decided once its window
// closed (t+Window+grace): it takes the nearest unused record without a
// fingerprint, unless another waiting change is nearer to that record. A
// record accounts for one change per surface. A change that finds none is
// unjournaled and kept (the last KeepMisses) with its path and time.
// Records come from the journal's one Follow, restricted to the surfaces
// with a change inside the window (backfilled from a window before the
// change when a surface becomes active), read twice a second.
//
// # Gaps
//
// An overflow of the kernel's queue, a watch that cannot be added or is
// lost, a watcher restart, and the time the watcher was not running open
// a gap. A rescan by content hash closes it; the changes it finds are
// unattributable (neither matched nor unjournaled). A scheduled rescan
// that finds a change no event reported is a gap too. Gap time is not
// observation time, and a gap ends the streak: proven needs a streak of at
// least MinMatched matched changes over MinObserved of watched time with
// no miss and no gap.
//
// # Persistence
//
// The figures and the fingerprints last seen are written to
// <data dir>/state/coverage.json (temp file, fsync, rename, directory
// fsync) at most every Flush when counts changed, at the next settle tick
// after a miss, gap or verdict change, and at Close, with the journal's id and a
// CRC32C; a file of another journal, damaged or of an unknown version is
// not believed: the figures start afresh and the reason is logged and
// reported. At start the files are compared with the fingerprints kept:
// what changed while nobody watched is a gap with unattributable changes;
// when nothing changed the streak goes on.
//
// # Concurrency
//
// One goroutine owns the watcher's state (events, records, settling,
// rescans, persistence); a second follows the journal and hands it the
// records in batches (it reads the set of active surfaces under the same
// lock, and is woken when the set changes). Report takes the same lock
// for a consistent view. Close stops both. Both yield to the journal's
// writers before each unit of work (see yield in watcher.go).
package coverage
