// Command querybench measures the state engine's queries and open time on
// generated journals of several sizes and prints one table with the
// issue's targets checked (the generator and the measurements live in
// bench/querybench):
//
//	go run ./bench/cmd/querybench                   # 1M, 2M, 5M, 10M records, ~3 min
//	go run ./bench/cmd/querybench -smoke            # one 200k journal, a few seconds (CI)
//	go run ./bench/cmd/querybench -sizes 10M -json  # the figures as JSON
//	go run ./bench/cmd/querybench -cpuprofile q.prof -sizes 10M
//
// Each size is generated (archives written in parallel in the engine's
// on-disk layout, plus a hot tail of -hot records through RecordBatch),
// measured, and deleted before the next one (-keep keeps them). The data
// goes under -dir (default $QUERYBENCH_DIR or $TMPDIR); use a real disk,
// since on tmpfs a cold open reads memory.
//
// The columns:
//
//	records        journal size (archives + hot tail)
//	archives, MiB  archive files and their size on disk
//	build          time to generate the journal
//	rare-50        Query{Surfaces: [rare], NewestFirst, Limit: 50}: median and p99 of
//	               200 runs after one warm-up; the rare surface holds 1 record in 20,000
//	stale p50      Stale(head-100), median of 10,000 calls
//	cursor-1k p50  Query{After: head-1000, Limit: 1000}, median of 50
//	scan p50       every record of one ordinary surface (~1 in 400), median of 3,
//	               with the number of records it returned
//	open no-ckpt   Open after deleting state/index.ckpt, median of 3 (Close not timed)
//	open ckpt      Open with the checkpoint the last Close wrote, page cache warm
//	ckpt cold      the same after evicting the journal's files from the page cache
//	               (posix_fadvise DONTNEED on those files only)
//	RSS+ MiB       the largest growth of the process's RSS across one Open,
//	               without / with the checkpoint
//	checks         rare-50 p50 < 5 ms, stale p50 < 100 µs, open ckpt p50 < 1 s; the line
//	               below checks flatness: rare-50 p50 at the largest size ≤ 2× at the smallest
//
// Every answer is checked against what the generator wrote (a fast wrong
// answer is a failed run). The header prints the 1-minute load average at
// start and end: above the CPU count, other work skewed the figures. The
// command exits 1 when a run fails, and with -strict also when a target is
// missed.
package main
