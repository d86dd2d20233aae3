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

// plural writes n with the noun's singular or plural form ("1 segment",
// "2 segments").
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// column is one column of a table.
type column struct {
	title string
	// shrink > 0 makes the column give up width, down to min, when the
	// table is wider than the terminal; the highest shrink gives first.
	// Cut cells end in "…". 0 keeps the column whole.
	shrink int
	min    int
	// drop > 0 lets the column be left out when the table does not fit
	// even with every shrinkable column at its minimum; the highest drop
	// goes first.
	drop int
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

// natural returns each column's width: its widest cell.
func (t *table) natural() []int {
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
	return w
}

// layout decides which columns to print (their indexes) and how wide:
// it shrinks the shrinkable columns, and when that is not enough leaves
// out droppable ones, until the row fits width (0: no limit).
func layout(cols []column, natural []int, width int) (keep []int, w []int) {
	for i := range cols {
		keep = append(keep, i)
	}
	for {
		kc := make([]column, len(keep))
		w = make([]int, len(keep))
		for k, i := range keep {
			kc[k], w[k] = cols[i], natural[i]
		}
		w = fit(kc, w, width)
		if width <= 0 || rowWidth(w) <= width {
			return keep, w
		}
		drop := -1
		for k, i := range keep {
			if cols[i].drop > 0 && (drop < 0 || cols[i].drop > cols[keep[drop]].drop) {
				drop = k
			}
		}
		if drop < 0 {
			return keep, w
		}
		keep = append(keep[:drop:drop], keep[drop+1:]...)
	}
}

func rowWidth(w []int) int {
	n := colGap * (len(w) - 1)
	for _, x := range w {
		n += x
	}
	return n
}

// pick returns the cells of the kept columns.
func pick(cells []string, keep []int) []string {
	out := make([]string, 0, len(keep))
	for _, i := range keep {
		if i < len(cells) {
			out = append(out, cells[i])
		}
	}
	return out
}

// fit narrows the elastic columns of w until the row fits width.
func fit(cols []column, w []int, width int) []int {
	if width <= 0 {
		return w
	}
	for rowWidth(w) > width {
		best := -1
		for i, c := range cols {
			if c.shrink > 0 && w[i] > max(c.min, utf8.RuneCountInString(c.title)) && (best < 0 || c.shrink > cols[best].shrink) {
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

// line renders one row at the given widths, cutting longer cells; the
// last column is not padded.
func line(cells []string, w []int) string { return render(cells, w, true) }

// lineWhole renders one row at the given widths without cutting: a
// longer cell pushes the rest of its row right.
func lineWhole(cells []string, w []int) string { return render(cells, w, false) }

func render(cells []string, w []int, cutCells bool) string {
	var b strings.Builder
	for i, cell := range cells {
		if i >= len(w) {
			break
		}
		if cutCells {
			cell = cut(cell, w[i])
		}
		b.WriteString(cell)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", max(w[i]-utf8.RuneCountInString(cell), 0)+colGap))
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
	keep, w := layout(t.cols, t.natural(), t.width)
	titles := make([]string, len(t.cols))
	for i, c := range t.cols {
		titles[i] = c.title
	}
	if _, err := fmt.Fprintln(out, line(pick(titles, keep), w)); err != nil {
		return err
	}
	for _, r := range t.rows {
		if _, err := fmt.Fprintln(out, line(pick(r, keep), w)); err != nil {
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
