package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agentruntime/statejournal/engine"
	"github.com/agentruntime/statejournal/types"
)

// Message is one relayed record read back from the stream.
type Message struct {
	Host           string
	Subject        string
	StreamSequence uint64
	Change         engine.Change
}

// FollowConfig selects what FollowStream reads.
type FollowConfig struct {
	URL    string
	Stream string // default DefaultStream
	// Hosts and ChangeTypes filter by subject token (empty: all); the
	// other filters are the caller's, on Message.Change (engine.Filter).
	// Surfaces are not a subject filter: a subject names the record's own
	// surface, and a record is also found under every surface it lists in
	// changed_surfaces.
	Hosts, ChangeTypes []string
	// After, when set (HasAfter), starts after this stream sequence;
	// otherwise the last Last messages of the stream (before filtering)
	// come first, then the new ones.
	After    uint64
	HasAfter bool
	Last     uint64
	// NATSOptions are added to the connection's options.
	NATSOptions []nats.Option
}

// FilterSubjects are the subjects cfg selects.
func (cfg FollowConfig) FilterSubjects() []string {
	or := func(l []string) []string {
		if len(l) == 0 {
			return []string{"*"}
		}
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = subjectToken(s)
		}
		return out
	}
	if len(cfg.Hosts) == 0 && len(cfg.ChangeTypes) == 0 {
		return []string{"state.>"}
	}
	var subs []string
	for _, h := range or(cfg.Hosts) {
		if len(cfg.ChangeTypes) == 0 {
			subs = append(subs, "state."+h+".>")
			continue
		}
		for _, c := range or(cfg.ChangeTypes) {
			subs = append(subs, "state."+h+".*."+c)
		}
	}
	return subs
}

// FollowStream calls fn for each message of the stream that cfg
// selects, in stream order (each host's records in its journal's order,
// but for one republished after a leader change: see doc.go),
// until ctx ends (nil), fn returns an error (returned), or the stream
// cannot be read. An ordered consumer: nothing is acknowledged and no
// state is left on the server.
func FollowStream(ctx context.Context, cfg FollowConfig, fn func(Message) error) error {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	nc, err := nats.Connect(cfg.URL, append([]nats.Option{nats.Name("journalctl state-journal -f"), nats.MaxReconnects(-1), nats.Timeout(5 * time.Second)}, cfg.NATSOptions...)...)
	if err != nil {
		return fmt.Errorf("%w: connect to %s: %v", types.ErrNATSUnavailable, cfg.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := js.Stream(ictx, cfg.Stream)
	cancel()
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s does not exist on %s: start a relay (journalctl relay) to create it, or name another with --stream", cfg.Stream, cfg.URL)
		}
		return fmt.Errorf("%w: stream %s on %s: %v", types.ErrNATSUnavailable, cfg.Stream, cfg.URL, err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: cfg.FilterSubjects(), DeliverPolicy: jetstream.DeliverNewPolicy}
	if st := s.CachedInfo().State; cfg.HasAfter {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.After+1
	} else if cfg.Last > 0 && st.LastSeq > 0 {
		occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		occ.OptStartSeq = max(st.FirstSeq, st.LastSeq-min(st.LastSeq-1, cfg.Last-1))
	}
	cons, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return fmt.Errorf("%w: consumer on %s: %v", types.ErrNATSUnavailable, cfg.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: read %s: %v", types.ErrNATSUnavailable, cfg.Stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		m := Message{Subject: msg.Subject(), StreamSequence: md.Sequence.Stream, Host: msg.Headers().Get(HeaderHost)}
		if m.Host == "" {
			if t := strings.Split(m.Subject, "."); len(t) > 1 {
				m.Host = t[1]
			}
		}
		if err := json.Unmarshal(msg.Data(), &m.Change); err != nil {
			return fmt.Errorf("stream %s message %d (%s) is not a journal record: %v", cfg.Stream, m.StreamSequence, m.Subject, err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}
