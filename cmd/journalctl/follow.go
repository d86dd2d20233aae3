package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/server"
	"github.com/agentruntime/statejournal/types"
)

// serverCheck is how often -f, while tailing the files, looks for a
// server to follow again.
const serverCheck = time.Second

// tailer prints records after a cursor, from whichever source can
// give them. The cursor is the only state carried across a switch of
// source: each source is asked for the records after it, and a record
// at or below it is never printed again, so nothing is missed or
// repeated.
type tailer struct {
	g      *globals
	q      engine.Query // the filters; After is replaced by cursor
	cursor uint64
	w      *bufio.Writer
	format string
	keep   []int // table columns of -f: which are printed
	widths []int // and how wide
	fitted bool  // the widths fit a terminal: cut longer cells
}

// emit prints c unless it is at or below the cursor, and reports whether
// the output still takes writes.
func (f *tailer) emit(c engine.Change) bool {
	if c.Sequence <= f.cursor {
		return true
	}
	f.cursor = c.Sequence
	if f.format == outTable {
		cells := pick(changeCells(c), f.keep)
		if f.fitted {
			f.w.WriteString(line(cells, f.widths))
		} else {
			f.w.WriteString(lineWhole(cells, f.widths))
		}
		f.w.WriteByte('\n')
	} else {
		writeLine(f.w, c, f.format)
	}
	return f.w.Flush() == nil
}

// note tells the operator on stderr how the follow goes on.
func (f *tailer) note(format string, a ...any) {
	fmt.Fprintf(f.g.errOut, "journalctl: "+format+"\n", a...)
}

// runFollow prints the newest records (10 unless -n was given), then
// every new matching record as it commits, like journalctl -f. It
// follows the server's stream while a server holds the directory and
// tails the files otherwise, switching both ways as servers stop and
// start. It ends with exit 0 on SIGINT/SIGTERM or when the output is
// closed, and with exit 1 only when it cannot go on.
func runFollow(g *globals, cmd *cobra.Command, lq server.ListQuery, format string, limitSet bool) error {
	if format == outJSON {
		format = outJSONL // a stream is one object per line
	}
	// A token file that cannot be read would otherwise only show as
	// never reaching the server.
	if _, err := g.token(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := &tailer{g: g, q: lq.Query, w: bufio.NewWriter(g.out), format: format}
	defer f.w.Flush()
	j, err := g.openRead()
	if err != nil {
		return g.fail(exitProblems, err)
	}
	defer j.Close()
	// The backlog: the newest n, printed oldest first; or, from a cursor,
	// everything after it (the loops below page through it, and one
	// record is read here). Either read checks the query — an unknown
	// surface, a cursor below the horizon — before the header is printed,
	// so a refused follow prints nothing but its error.
	var backlog []engine.Change
	head := lq.After // where following starts once the backlog is out
	if lq.Cursor {
		probe := lq
		probe.Limit = 1
		if res, err := j.Query(ctx, probe.Engine()); err != nil {
			return f.failed(err, res.Horizon)
		}
	} else {
		first := lq
		first.OldestFirst = true
		if !limitSet {
			first.Limit = 10
		}
		res, err := j.Query(ctx, first.Engine())
		if err != nil {
			return f.failed(err, res.Horizon)
		}
		backlog = server.NewList(first, res).Changes
		head = res.Head
	}
	if format == outTable {
		f.keep, f.widths = layout(changeColumns, followWidths, g.width())
		f.fitted = g.width() > 0
		titles := make([]string, len(changeColumns))
		for i, c := range changeColumns {
			titles[i] = c.title
		}
		f.w.WriteString(line(pick(titles, f.keep), f.widths))
		f.w.WriteByte('\n')
	}
	f.cursor = lq.After // emit prints what is above it
	for _, c := range backlog {
		if !f.emit(c) {
			return nil
		}
	}
	f.cursor = max(f.cursor, head)
	f.w.Flush()
	tailed := false // the files were tailed: a server found now is news
	for {
		if c := f.liveServer(ctx); c != nil {
			if tailed {
				f.note("a server holds the journal again; following its stream from sequence %d", f.cursor)
			}
			err := f.fromServer(ctx, c)
			c.Close()
			switch {
			case ctx.Err() != nil || err == nil:
				return nil
			case errors.Is(err, types.ErrCompacted), errors.Is(err, server.ErrUnauthorized):
				return f.failed(err, 0)
			case errors.Is(err, server.ErrServerShutdown):
				f.note("the server is shutting down; tailing the files from sequence %d", f.cursor)
			default:
				f.note("the server's stream ended (%v); tailing the files from sequence %d", err, f.cursor)
			}
		}
		tailed = true
		done, err := f.fromFiles(ctx, j)
		if err != nil {
			return f.failed(err, j.Status().Horizon)
		}
		if done {
			return nil
		}
	}
}

// failed reports why the follow cannot go on.
func (f *tailer) failed(err error, horizon uint64) error {
	f.w.Flush()
	var fe *types.FieldError
	if errors.As(err, &fe) {
		return queryFlagErr(fe) // a bad filter: exit 2, as without -f
	}
	if ce, ok := server.AsCompacted(err, f.cursor, horizon); ok {
		return f.g.fail(exitProblems, ce)
	}
	return f.g.fail(exitProblems, err)
}

// liveServer returns a client of the server holding the directory when
// one answers healthy, or nil.
func (f *tailer) liveServer(ctx context.Context) *server.Client {
	held, h := engine.LockHolder(f.g.dir)
	if !held || h == nil || (h.Socket == "" && h.Address == "") {
		return nil
	}
	c, err := f.g.dial(h)
	if err != nil {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Healthz(hctx); err != nil {
		c.Close()
		return nil
	}
	return c
}

// fromServer follows the server's stream from the cursor until it ends.
func (f *tailer) fromServer(ctx context.Context, c *server.Client) error {
	q := f.q
	q.After, q.NewestFirst, q.Limit = f.cursor, false, 1000
	return c.Follow(ctx, q, f.emit)
}

// fromFiles tails the files from the cursor until a server answers
// (false, nil), ctx ends or the output is closed (true, nil), or the
// journal cannot be read (an error).
func (f *tailer) fromFiles(ctx context.Context, j *engine.Journal) (bool, error) {
	q := f.q
	q.After = f.cursor
	errServerBack := errors.New("a server answers")
	errOutputClosed := errors.New("output closed")
	err := j.Follow(ctx, q, engine.FollowOptions{Tick: serverCheck}, func(ev engine.FollowEvent) error {
		if ev.Change != nil {
			if !f.emit(*ev.Change) {
				return errOutputClosed
			}
			return nil
		}
		// Every record up to the cursor was considered; look for a server.
		f.cursor = max(f.cursor, ev.Cursor)
		if held, h := engine.LockHolder(f.g.dir); held && h != nil && (h.Socket != "" || h.Address != "") {
			if c := f.liveServer(ctx); c != nil {
				c.Close()
				return errServerBack
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errServerBack):
		return false, nil
	case errors.Is(err, errOutputClosed), ctx.Err() != nil:
		return true, nil
	}
	return false, err
}
