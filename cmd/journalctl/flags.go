package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/agentruntime/statejournal/internal/parse"
	"github.com/agentruntime/statejournal/types"
)

// durationFlag is a pflag.Value read by internal/parse, so duration flags
// take the words every other duration takes (30s, 15m, 36h, 7d, 2w).
type durationFlag struct{ d *time.Duration }

func newDurationFlag(d *time.Duration, def time.Duration) durationFlag {
	*d = def
	return durationFlag{d}
}

// String writes the value as every duration is written
// (types.FormatDuration: 1d, 5m, 10s), which is also what Set reads back;
// zero is "0", which pflag leaves out of the help's defaults.
func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return "0"
	}
	return types.FormatDuration(*f.d)
}

func (f durationFlag) Set(s string) error {
	d, err := parse.Duration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func (f durationFlag) Type() string { return "duration" }

// boolFlag is a pflag.Value read by internal/parse: --flag alone is true,
// --flag=VALUE takes true, false, 1 or 0 (any case) and nothing else, the
// words the HTTP API takes (pflag's own parser also takes t, F, ...).
type boolFlag struct{ b *bool }

func (f boolFlag) String() string {
	if f.b == nil || !*f.b {
		return "false"
	}
	return "true"
}

func (f boolFlag) Set(s string) error {
	b, err := parse.Bool(s)
	if err != nil {
		return err
	}
	*f.b = b
	return nil
}

func (f boolFlag) Type() string { return "bool" }

// IsBoolFlag lets --flag stand alone.
func (f boolFlag) IsBoolFlag() bool { return true }

// boolVar defines a boolean flag (short may be "") read by boolFlag.
func boolVar(fs *pflag.FlagSet, p *bool, name, short string, def bool, usage string) {
	*p = def
	fl := fs.VarPF(boolFlag{p}, name, short, usage)
	fl.NoOptDefVal = "true"
}
