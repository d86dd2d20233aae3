package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/agentruntime/statejournal/types"
)

// Human output formats. Every time a person reads is RFC 3339 in UTC with
// exactly three fractional digits (milliseconds), so columns line up;
// JSON carries types.TimeLayout (nine digits).
const humanTimeLayout = "2006-01-02T15:04:05.000Z"

// humanTime formats t for tables and short lines.
func humanTime(t time.Time) string { return t.UTC().Format(humanTimeLayout) }

// humanDuration formats d for people, in the syntax the flags accept:
// whole days as "30d", otherwise Go's syntax without zero units ("36h",
// "1h30m", "90s" as "1m30s").
func humanDuration(d time.Duration) string { return types.FormatDuration(d) }

// column is one column of a table.
type column struct {
	title string
	// elastic columns give up width, down to min, when the table is wider
	// than the terminal; their cells are cut with "…".
	elastic bool
	min     int
}

// table collects rows and prints them aligned, fitting width (0: no
// limit).
type table struct {
	cols  []column
	rows  [][]string
	width int
}

func (g *globals) newTable(cols ...column) *table {
	return &table{cols: cols, width: g.width()}
}

// width is the terminal width of standard output, or $COLUMNS when set,
// or 0 (no limit) when output goes to a file or a pipe: a script that
// greps or cuts the table gets every value whole.
func (g *globals) width() int {
	if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c > 0 {
		return c
	}
	if f, ok := g.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
		return 80
	}
	return 0
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

const colGap = 2

// widths returns each column's width: its widest cell, shrunk so that the
// table fits t.width by narrowing elastic columns, widest first.
func (t *table) widths() []int {
	w := make([]int, len(t.cols))
	for i, c := range t.cols {
		w[i] = utf8.RuneCountInString(c.title)
	}
	for _, r := range t.rows {
		for i, cell := range r {
			if n := utf8.RuneCountInString(cell); i < len(w) && n > w[i] {
				w[i] = n
			}
		}
	}
	return fit(t.cols, w, t.width)
}

// fit narrows the elastic columns of w until the row fits width.
func fit(cols []column, w []int, width int) []int {
	if width <= 0 {
		return w
	}
	total := func() int {
		n := 0
		for _, x := range w {
			n += x
		}
		return n + colGap*(len(w)-1)
	}
	for total() > width {
		best := -1
		for i, c := range cols {
			if c.elastic && w[i] > max(c.min, utf8.RuneCountInString(c.title)) && (best < 0 || w[i] > w[best]) {
				best = i
			}
		}
		if best < 0 {
			break // nothing left to give: the terminal is narrower than the fixed columns
		}
		w[best]--
	}
	return w
}

// line renders one row at the given widths; the last column is not
// padded.
func line(cells []string, w []int) string {
	var b strings.Builder
	for i, cell := range cells {
		if i >= len(w) {
			break
		}
		cell = cut(cell, w[i])
		b.WriteString(cell)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", w[i]-utf8.RuneCountInString(cell)+colGap))
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// cut shortens s to n runes, marking the cut with "…".
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return string([]rune(s)[:n-1]) + "…"
}

// print writes the header and the rows.
func (t *table) print(out io.Writer) error {
	w := t.widths()
	titles := make([]string, len(t.cols))
	for i, c := range t.cols {
		titles[i] = c.title
	}
	if _, err := fmt.Fprintln(out, line(titles, w)); err != nil {
		return err
	}
	for _, r := range t.rows {
		if _, err := fmt.Fprintln(out, line(r, w)); err != nil {
			return err
		}
	}
	return nil
}

// keyValues prints aligned "key  value" rows (a vertical table) fitting
// the width by cutting values.
func (g *globals) keyValues(rows [][2]string) error {
	kw := 0
	for _, r := range rows {
		kw = max(kw, utf8.RuneCountInString(r[0]))
	}
	width := g.width()
	for _, r := range rows {
		v := r[1]
		if width > 0 {
			v = cut(v, max(width-kw-colGap, 10))
		}
		if _, err := fmt.Fprintln(g.out, strings.TrimRight(r[0]+strings.Repeat(" ", kw-utf8.RuneCountInString(r[0])+colGap)+v, " ")); err != nil {
			return err
		}
	}
	return nil
}
