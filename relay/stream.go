package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of the stream the relay creates.
const (
	DefaultStream     = "STATE_JOURNAL"
	DefaultSubjects   = "state.>"
	DefaultDuplicates = 2 * time.Minute
)

// StreamConfig is what the relay asks of the stream. A zero field is
// "not given": the relay creates the stream with the default and leaves
// an existing stream's setting as it is. A given field that differs from
// an existing stream's is changed, and the change is logged and
// reported.
type StreamConfig struct {
	Name       string        // default DefaultStream
	Subjects   []string      // default [DefaultSubjects]; must cover state.<host>.>
	Replicas   int           // 1, 3 or 5; default 1
	MaxAge     time.Duration // the stream's own retention; 0 keeps messages without age limit
	Duplicates time.Duration // the dedupe window, at most MaxAge; default DefaultDuplicates (or MaxAge when shorter)
	MaxBytes   int64         // 0: no limit on create
	MaxMsgs    int64         // 0: no limit on create
}

// StreamReport says what the relay found and did to the stream at start.
type StreamReport struct {
	Name     string   `json:"name"`
	Created  bool     `json:"created"`
	Changed  []string `json:"changed,omitempty"` // "max_age 0s -> 24h0m0s", ...
	Subjects []string `json:"subjects"`
	Replicas int      `json:"replicas"`
	MaxAge   string   `json:"max_age"`
	Dupes    string   `json:"duplicates"`
	MaxBytes int64    `json:"max_bytes"`
	MaxMsgs  int64    `json:"max_msgs"`
}

func (s StreamConfig) withDefaults() StreamConfig {
	if s.Name == "" {
		s.Name = DefaultStream
	}
	return s
}

// check refuses settings JetStream would refuse, naming the flag.
func (s StreamConfig) check() error {
	if s.Name == "" || strings.ContainsAny(s.Name, " \t.*>/\\") {
		return fmt.Errorf("stream name %q: use letters, digits, - and _ (no spaces, dots, * or >)", s.Name)
	}
	if s.Replicas < 0 || s.Replicas > 5 {
		return fmt.Errorf("stream replicas %d: allowed 1 to 5 (1 or 3 in practice)", s.Replicas)
	}
	if s.MaxAge < 0 || s.Duplicates < 0 || s.MaxBytes < 0 || s.MaxMsgs < 0 {
		return errors.New("stream limits must not be negative")
	}
	if s.MaxAge > 0 && s.Duplicates > s.MaxAge {
		return fmt.Errorf("stream duplicates window %s is longer than max age %s: JetStream needs duplicates <= max age", s.Duplicates, s.MaxAge)
	}
	for _, subj := range s.Subjects {
		if !validSubject(subj) {
			return fmt.Errorf("stream subject %q is not a NATS subject (dot-separated tokens, * and > as wildcards, > last)", subj)
		}
	}
	return nil
}

func validSubject(s string) bool {
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" || strings.ContainsAny(t, " \t\r\n") || (t == ">" && i != len(toks)-1) || (len(t) > 1 && strings.ContainsAny(t, "*>")) {
			return false
		}
	}
	return true
}

// covers reports whether stream subject pattern p takes every subject
// that filter f (which may end in >) matches.
func covers(p, f string) bool {
	pt, ft := strings.Split(p, "."), strings.Split(f, ".")
	for i, t := range pt {
		if t == ">" {
			return i < len(ft)
		}
		if i >= len(ft) || ft[i] == ">" {
			return false
		}
		if t != "*" && t != ft[i] {
			return false
		}
	}
	return len(pt) == len(ft)
}

// ensureStream creates the stream, or checks an existing one and
// changes the settings cfg gives that differ; filter is the relay's host
// filter, which the stream's subjects must cover.
func ensureStream(ctx context.Context, js jetstream.JetStream, want StreamConfig, filter string) (jetstream.Stream, StreamReport, error) {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := jetstream.StreamConfig{
			Name: want.Name, Subjects: want.Subjects, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Discard: jetstream.DiscardOld, Replicas: max(want.Replicas, 1), MaxAge: want.MaxAge, Duplicates: want.Duplicates,
			MaxBytes: -1, MaxMsgs: -1, AllowDirect: true,
			Description: "runtime-state-change-v1 records relayed from each host's state journal (journalctl relay)",
		}
		if len(cfg.Subjects) == 0 {
			cfg.Subjects = []string{DefaultSubjects}
		}
		if cfg.Duplicates == 0 {
			cfg.Duplicates = DefaultDuplicates
			if cfg.MaxAge > 0 && cfg.MaxAge < cfg.Duplicates {
				cfg.Duplicates = cfg.MaxAge
			}
		}
		if want.MaxBytes > 0 {
			cfg.MaxBytes = want.MaxBytes
		}
		if want.MaxMsgs > 0 {
			cfg.MaxMsgs = want.MaxMsgs
		}
		if !slices.ContainsFunc(cfg.Subjects, func(p string) bool { return covers(p, filter) }) {
			return nil, StreamReport{}, fmt.Errorf("stream %s: subjects %v do not take %s, this host's records", want.Name, cfg.Subjects, filter)
		}
		s, err = js.CreateStream(ctx, cfg)
		if err != nil {
			return nil, StreamReport{}, fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		rep := reportOf(s.CachedInfo().Config)
		rep.Created = true
		return s, rep, nil
	}
	if err != nil {
		return nil, StreamReport{}, fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Storage != jetstream.FileStorage {
		return nil, StreamReport{}, fmt.Errorf("stream %s keeps its messages in memory; the relay ships to file storage only (a restart of the server would lose what it acknowledged): use another --stream, or recreate it", want.Name)
	}
	var changed []string
	change := func(what string, from, to any) { changed = append(changed, fmt.Sprintf("%s %v -> %v", what, from, to)) }
	if len(want.Subjects) > 0 {
		for _, subj := range want.Subjects {
			if !slices.Contains(cfg.Subjects, subj) {
				change("subjects", cfg.Subjects, append(slices.Clone(cfg.Subjects), subj))
				cfg.Subjects = append(cfg.Subjects, subj)
			}
		}
	}
	if !slices.ContainsFunc(cfg.Subjects, func(p string) bool { return covers(p, filter) }) {
		return nil, StreamReport{}, fmt.Errorf("stream %s: subjects %v do not take %s, this host's records: pass --stream-subjects to add them", want.Name, cfg.Subjects, filter)
	}
	if want.Replicas > 0 && want.Replicas != cfg.Replicas {
		change("replicas", cfg.Replicas, want.Replicas)
		cfg.Replicas = want.Replicas
	}
	if want.MaxAge > 0 && want.MaxAge != cfg.MaxAge {
		change("max_age", cfg.MaxAge, want.MaxAge)
		cfg.MaxAge = want.MaxAge
	}
	if want.MaxBytes > 0 && want.MaxBytes != cfg.MaxBytes {
		change("max_bytes", cfg.MaxBytes, want.MaxBytes)
		cfg.MaxBytes = want.MaxBytes
	}
	if want.MaxMsgs > 0 && want.MaxMsgs != cfg.MaxMsgs {
		change("max_msgs", cfg.MaxMsgs, want.MaxMsgs)
		cfg.MaxMsgs = want.MaxMsgs
	}
	dupes := want.Duplicates
	if dupes == 0 && cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		dupes = cfg.MaxAge
	}
	if dupes > 0 && dupes != cfg.Duplicates {
		if cfg.MaxAge > 0 && dupes > cfg.MaxAge {
			return nil, StreamReport{}, fmt.Errorf("stream %s: duplicates window %s is longer than its max age %s: JetStream needs duplicates <= max age", want.Name, dupes, cfg.MaxAge)
		}
		change("duplicates", cfg.Duplicates, dupes)
		cfg.Duplicates = dupes
	}
	if len(changed) > 0 {
		if s, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, StreamReport{}, fmt.Errorf("update stream %s (%s): %w", want.Name, strings.Join(changed, ", "), err)
		}
	}
	rep := reportOf(s.CachedInfo().Config)
	rep.Changed = changed
	return s, rep, nil
}

func reportOf(c jetstream.StreamConfig) StreamReport {
	return StreamReport{Name: c.Name, Subjects: c.Subjects, Replicas: c.Replicas, MaxAge: c.MaxAge.String(), Dupes: c.Duplicates.String(), MaxBytes: c.MaxBytes, MaxMsgs: c.MaxMsgs}
}
